package io.pegaflow.fabric.metrics;

import io.grpc.Status;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.function.Supplier;
import kamon.Kamon;
import kamon.metric.MeasurementUnit;
import kamon.metric.Metric;
import kamon.tag.TagSet;
import org.apache.pekko.grpc.GrpcServiceException;

/**
 * Counts and times every gRPC call by service, method and status code:
 * {@code pegaflow_grpc_requests_total} and {@code pegaflow_grpc_request_duration_seconds}.
 */
public final class GrpcMetrics {
    private static final String REQUESTS = "pegaflow.grpc.requests";
    private static final String DURATION = "pegaflow.grpc.request.duration";

    private final String service;

    public GrpcMetrics(String service) {
        this.service = service;
    }

    /** Runs {@code call} and records its outcome when the returned stage completes. */
    public <T> CompletionStage<T> timed(String method, Supplier<CompletionStage<T>> call) {
        long startNs = System.nanoTime();
        CompletionStage<T> stage;
        try {
            stage = call.get();
        } catch (RuntimeException e) {
            stage = CompletableFuture.failedFuture(e);
        }
        return stage.whenComplete(
                (value, error) -> record(method, error == null ? "OK" : statusOf(error), System.nanoTime() - startNs));
    }

    /** Counts a call whose duration means nothing (a stream's start). */
    public void count(String method, String status) {
        counter()
                .withTags(TagSet.builder()
                        .add("service", service)
                        .add("method", method)
                        .add("status", status)
                        .build())
                .increment();
    }

    private void record(String method, String status, long durationNs) {
        TagSet tags = TagSet.builder()
                .add("service", service)
                .add("method", method)
                .add("status", status)
                .build();
        counter().withTags(tags).increment();
        histogram().withTags(tags).record(durationNs);
    }

    /** The gRPC status code name a failure maps to (unknown exceptions are INTERNAL, as the server reports them). */
    public static String statusOf(Throwable error) {
        Throwable e = error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
        if (e instanceof GrpcServiceException g) {
            return g.getStatus().getCode().name();
        }
        return Status.fromThrowable(e).getCode() == Status.Code.UNKNOWN
                ? "INTERNAL"
                : Status.fromThrowable(e).getCode().name();
    }

    private static Metric.Counter counter() {
        return Kamon.counter(REQUESTS, "gRPC requests served, by service, method and status code");
    }

    private static Metric.Histogram histogram() {
        return Kamon.histogram(
                DURATION,
                "gRPC request latency, by service, method and status code",
                MeasurementUnit.time().nanoseconds());
    }
}
