package io.pegaflow.fabric.metrics;

import kamon.Kamon;
import kamon.metric.MeasurementUnit;
import kamon.tag.TagSet;

/**
 * The engine's hot calls by op, path and status, whichever way they came: {@code pegaflow_engine_calls_total{op,path,
 * status}} and {@code pegaflow_engine_call_duration_seconds{op,path}}, {@code path} being {@code grpc} (an RPC) or
 * {@code shm} (the same-host command channel). Shows which path a worker's Save, Load and Query take. Thread-safe,
 * allocates tags per call only.
 */
public final class EngineCallMetrics {
    public static final String GRPC = "grpc";
    public static final String SHM = "shm";

    private EngineCallMetrics() {}

    public static void record(String op, String path, String status, long durationNs) {
        Kamon.counter("pegaflow.engine.calls", "Save, Load and Query calls by op, path (grpc or shm) and status")
                .withTags(TagSet.builder()
                        .add("op", op)
                        .add("path", path)
                        .add("status", status)
                        .build())
                .increment();
        Kamon.histogram(
                        "pegaflow.engine.call.duration",
                        "Save, Load and Query latency inside the node, by op and path",
                        MeasurementUnit.time().nanoseconds())
                .withTags(TagSet.builder().add("op", op).add("path", path).build())
                .record(Math.max(0, durationNs));
    }
}
