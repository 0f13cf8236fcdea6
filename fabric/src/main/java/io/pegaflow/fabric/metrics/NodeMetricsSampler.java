package io.pegaflow.fabric.metrics;

import io.pegaflow.actors.cluster.ClusterView;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.lang.management.ThreadMXBean;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import kamon.Kamon;
import kamon.metric.MeasurementUnit;

/**
 * Samples state that has no natural event into gauges once a second, on one daemon thread: cluster members by
 * status ({@code pegaflow_cluster_members}) and process/JVM basics ({@code pegaflow_jvm_*},
 * {@code pegaflow_process_*}).
 */
public final class NodeMetricsSampler implements AutoCloseable {
    /** Every status Pekko reports, so a status that empties drops to 0 instead of keeping its last count. */
    private static final List<String> MEMBER_STATUSES = List.of(
            "Joining",
            "WeaklyUp",
            "Up",
            "Leaving",
            "Exiting",
            "Down",
            "Removed",
            "PreparingForShutdown",
            "ReadyForShutdown");

    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "pegaflow-metrics-sampler");
        t.setDaemon(true);
        return t;
    });
    private final Supplier<ClusterView> cluster;
    private final List<Runnable> moreSamplers;
    private final long startNs = System.nanoTime();

    private NodeMetricsSampler(Supplier<ClusterView> cluster, List<Runnable> moreSamplers) {
        this.cluster = cluster;
        this.moreSamplers = List.copyOf(moreSamplers);
    }

    /**
     * @param moreSamplers other components' samplers run on the same tick (e.g. the engine's)
     */
    public static NodeMetricsSampler start(Supplier<ClusterView> cluster, List<Runnable> moreSamplers) {
        NodeMetricsSampler sampler = new NodeMetricsSampler(cluster, moreSamplers);
        sampler.timer.scheduleAtFixedRate(sampler::sampleSafely, 0, 1, TimeUnit.SECONDS);
        return sampler;
    }

    private void sampleSafely() {
        try {
            sampleCluster();
            sampleJvm();
            moreSamplers.forEach(Runnable::run);
        } catch (RuntimeException e) {
            // A failed sample (e.g. during shutdown) must not cancel the schedule.
            Kamon.counter("pegaflow.metrics.sample.errors").withoutTags().increment();
        }
    }

    private void sampleCluster() {
        ClusterView view = cluster.get();
        Map<String, Long> counts = view.countByStatus();
        for (String status : MEMBER_STATUSES) {
            Kamon.gauge("pegaflow.cluster.members", "Cluster members seen by this node, by status")
                    .withTag("status", status)
                    .update(counts.getOrDefault(status, 0L));
        }
        Kamon.gauge("pegaflow.cluster.unreachable.members", "Members this node's failure detector cannot reach")
                .withoutTags()
                .update(view.unreachable().size());
    }

    private void sampleJvm() {
        MemoryMXBean memory = ManagementFactory.getMemoryMXBean();
        MeasurementUnit bytes = MeasurementUnit.information().bytes();
        Kamon.gauge("pegaflow.jvm.memory.used", "JVM memory in use", bytes)
                .withTag("area", "heap")
                .update(memory.getHeapMemoryUsage().getUsed());
        Kamon.gauge("pegaflow.jvm.memory.used", "JVM memory in use", bytes)
                .withTag("area", "nonheap")
                .update(memory.getNonHeapMemoryUsage().getUsed());
        Kamon.gauge("pegaflow.jvm.memory.max", "JVM heap limit", bytes)
                .withTag("area", "heap")
                .update(memory.getHeapMemoryUsage().getMax());
        ThreadMXBean threads = ManagementFactory.getThreadMXBean();
        Kamon.gauge("pegaflow.jvm.threads", "Live JVM threads").withoutTags().update(threads.getThreadCount());
        long gcCount = 0;
        long gcMs = 0;
        for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) {
            gcCount += Math.max(0, gc.getCollectionCount());
            gcMs += Math.max(0, gc.getCollectionTime());
        }
        Kamon.gauge("pegaflow.jvm.gc.collections", "GC collections since start")
                .withoutTags()
                .update(gcCount);
        Kamon.gauge(
                        "pegaflow.jvm.gc.time",
                        "GC time since start",
                        MeasurementUnit.time().seconds())
                .withoutTags()
                .update(gcMs / 1000.0);
        Kamon.gauge(
                        "pegaflow.process.uptime",
                        "Node process uptime",
                        MeasurementUnit.time().seconds())
                .withoutTags()
                .update((System.nanoTime() - startNs) / 1e9);
        if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
            Kamon.gauge("pegaflow.process.cpu.usage", "Process CPU load, 0..1 of the whole machine")
                    .withoutTags()
                    .update(Math.max(0, os.getProcessCpuLoad()));
            Kamon.gauge(
                            "pegaflow.process.cpu.time",
                            "Process CPU time",
                            MeasurementUnit.time().seconds())
                    .withoutTags()
                    .update(os.getProcessCpuTime() / 1e9);
        }
        Kamon.gauge("pegaflow.process.available.processors", "CPUs available to the JVM")
                .withoutTags()
                .update(Runtime.getRuntime().availableProcessors());
    }

    @Override
    public void close() {
        timer.shutdownNow();
    }
}
