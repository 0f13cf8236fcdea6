package io.pegaflow.fabric.metrics;

import io.pegaflow.actors.directory.DirectoryCounters;
import kamon.Kamon;
import kamon.metric.MeasurementUnit;
import kamon.tag.TagSet;

/**
 * The block directory's gauges and counters, tagged with the node id, sampled once a second by {@link
 * NodeMetricsSampler}: {@code pegaflow_directory_entries}, {@code pegaflow_directory_hosted_ranges}, {@code
 * pegaflow_directory_rebuilds_total}, {@code pegaflow_directory_last_rebuild_seconds}, {@code
 * pegaflow_directory_lookups_total}, {@code pegaflow_directory_resyncs_total}. The Locate RPC records {@code
 * pegaflow_directory_lookup_duration_seconds} itself ({@link #lookedUp(String, long)}).
 */
public final class DirectoryMetrics {
    private final TagSet nodeTag;
    private final DirectoryCounters counters;
    private long lastRebuilds;
    private long lastLookups;
    private long lastResyncs;
    private long lastAskedAgain;

    public DirectoryMetrics(String nodeId, DirectoryCounters counters) {
        this.nodeTag = TagSet.of("node", nodeId);
        this.counters = counters;
    }

    /** Called on the sampler's thread only. */
    public void sample() {
        Kamon.gauge("pegaflow.directory.entries", "Directory entries in the ranges this node hosts")
                .withTags(nodeTag)
                .update(counters.entries());
        Kamon.gauge("pegaflow.directory.hosted.ranges", "Directory ranges running on this node")
                .withTags(nodeTag)
                .update(counters.hostedRanges());
        Kamon.gauge(
                        "pegaflow.directory.last.rebuild",
                        "How long the last range rebuild on this node took",
                        MeasurementUnit.time().seconds())
                .withTags(nodeTag)
                .update(Math.max(0, counters.lastRebuildMillis()) / 1000.0);
        long rebuilds = counters.rebuilds();
        Kamon.counter("pegaflow.directory.rebuilds", "Ranges that started on this node and became complete")
                .withTags(nodeTag)
                .increment(Math.max(0, rebuilds - lastRebuilds));
        lastRebuilds = rebuilds;
        long lookups = counters.lookups();
        Kamon.counter("pegaflow.directory.lookups", "Lookup messages answered by ranges on this node")
                .withTags(nodeTag)
                .increment(Math.max(0, lookups - lastLookups));
        lastLookups = lookups;
        long resyncs = counters.resyncs();
        Kamon.counter("pegaflow.directory.resyncs", "Holdings re-asked after a gap in a node's publishes")
                .withTags(nodeTag)
                .increment(Math.max(0, resyncs - lastResyncs));
        lastResyncs = resyncs;
        long askedAgain = counters.lookupsAskedAgain();
        Kamon.counter(
                        "pegaflow.directory.lookups.asked.again",
                        "Range lookups this node's relay sent again after no answer (ranges moving)")
                .withTags(nodeTag)
                .increment(Math.max(0, askedAgain - lastAskedAgain));
        lastAskedAgain = askedAgain;
    }

    /** Records one whole locate answered through this node's gRPC. */
    public static void lookedUp(String nodeId, long durationNs) {
        Kamon.histogram(
                        "pegaflow.directory.lookup.duration",
                        "Locate time through the directory (whole request)",
                        MeasurementUnit.time().nanoseconds())
                .withTag("node", nodeId)
                .record(durationNs);
    }
}
