package io.pegaflow.bench.fabric;

import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.protobuf.ProtoUtils;
import io.pegaflow.proto.fabric.Fabric;
import io.pegaflow.proto.fabric.LocateRequest;
import io.pegaflow.proto.fabric.LocateResponse;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A lean {@code Fabric/Locate} client: grpc-java's Netty channel and one hand-built {@link MethodDescriptor} with
 * protobuf marshallers (as the node binds its methods by hand, {@code NodeServices}), no generated stub and no
 * pekko-http. What a router would use; the bench's default, so that the client's own cost (the pekko-grpc client
 * spent 1.3-1.6 ms of CPU per call decoding a 1 KB reply) does not hide the server's latency.
 *
 * <p>Threading: {@link #locate} blocks its caller until the reply (or {@code timeout}); the call's listener runs on
 * the channel's event loop (direct executor) and only completes a future. One channel, any number of callers.
 */
final class PlainLocateClient implements AutoCloseable {
    static final MethodDescriptor<LocateRequest, LocateResponse> LOCATE =
            MethodDescriptor.<LocateRequest, LocateResponse>newBuilder()
                    .setType(MethodDescriptor.MethodType.UNARY)
                    .setFullMethodName(MethodDescriptor.generateFullMethodName(Fabric.name, "Locate"))
                    .setRequestMarshaller(ProtoUtils.marshaller(LocateRequest.getDefaultInstance()))
                    .setResponseMarshaller(ProtoUtils.marshaller(LocateResponse.getDefaultInstance()))
                    .build();

    private final ManagedChannel channel;

    PlainLocateClient(String host, int port) {
        channel = NettyChannelBuilder.forAddress(host, port)
                .usePlaintext()
                .directExecutor()
                .build();
    }

    /** The reply, or the call's status as a {@link StatusRuntimeException}; waits at most {@code timeout}. */
    LocateResponse locate(LocateRequest request, Duration timeout)
            throws InterruptedException, ExecutionException, TimeoutException {
        ClientCall<LocateRequest, LocateResponse> call =
                channel.newCall(LOCATE, CallOptions.DEFAULT.withDeadlineAfter(timeout.toNanos(), TimeUnit.NANOSECONDS));
        CompletableFuture<LocateResponse> reply = new CompletableFuture<>();
        call.start(
                new ClientCall.Listener<>() {
                    private LocateResponse message;

                    @Override
                    public void onMessage(LocateResponse m) {
                        message = m;
                    }

                    @Override
                    public void onClose(Status status, Metadata trailers) {
                        if (status.isOk() && message != null) {
                            reply.complete(message);
                        } else {
                            reply.completeExceptionally(
                                    status.isOk()
                                            ? Status.INTERNAL
                                                    .withDescription("no reply message")
                                                    .asRuntimeException()
                                            : status.asRuntimeException(trailers));
                        }
                    }
                },
                new Metadata());
        call.sendMessage(request);
        call.halfClose();
        call.request(2);
        return reply.get(timeout.toNanos() + TimeUnit.SECONDS.toNanos(1), TimeUnit.NANOSECONDS);
    }

    @Override
    public void close() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
}
