package io.pegaflow.fabric.metrics;

import io.pegaflow.actors.transfer.TransferCounters;
import io.pegaflow.transport.LatencyHistogram;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;
import kamon.Kamon;
import kamon.metric.MeasurementUnit;
import kamon.tag.TagSet;

/**
 * One node's transfer-coordinator counters as Kamon metrics, all tagged with the node id, from {@link
 * TransferCounters} deltas once a second ({@link NodeMetricsSampler}):
 *
 * <ul>
 *   <li>{@code pegaflow_fetches_total{node,outcome}}: remote fetches ended complete, partial, failed, or refused
 *       (too many in flight);
 *   <li>{@code pegaflow_fetch_blocks_total{node,outcome}}: blocks fetched and committed, or failed (the load reports
 *       them);
 *   <li>{@code pegaflow_fetch_retries_total{node}}: attempts on another holder after a fetch's first;
 *   <li>{@code pegaflow_fetch_attempt_failures_total{node,peer,transport,reason}}: failed attempts by holder and why
 *       (a transfer status such as {@code timed_out} or {@code back_pressured}, or {@code lease_refused}, {@code
 *       lease_failed}, {@code lease_short}, {@code lease_expired}, {@code confirm_failed});
 *   <li>{@code pegaflow_fetch_duration_seconds{node}}: whole-fetch time, arrival to answer (from the coordinator's
 *       power-of-two buckets, recorded at each bucket's lower bound);
 *   <li>{@code pegaflow_leases_served_total{node,outcome}}: holder side, leases granted or refused to peers, and
 *       leases found expired when the peer confirmed.
 * </ul>
 *
 * The transport's own bytes, per-transfer latency and failures by peer are {@link TransportMetrics}.
 */
public final class TransferMetrics {
    private final TagSet nodeTag;
    private final String transport;
    private final TransferCounters counters;
    private final Map<String, Long> last = new HashMap<>();
    private final Map<TransferCounters.AttemptFailure, Long> lastFailures = new HashMap<>();
    private long[] lastBuckets = new long[LatencyHistogram.BUCKET_COUNT];

    public TransferMetrics(String nodeId, String transport, TransferCounters counters) {
        this.nodeTag = TagSet.of("node", nodeId);
        this.transport = transport;
        this.counters = counters;
    }

    /** Called on the sampler's thread only. */
    public void sample() {
        String fetches = "pegaflow.fetches";
        String fetchesHelp = "Remote fetches by how they ended";
        count(fetches, fetchesHelp, "outcome", "complete", counters.fetchesCompleted);
        count(fetches, fetchesHelp, "outcome", "partial", counters.fetchesPartial);
        count(fetches, fetchesHelp, "outcome", "failed", counters.fetchesFailed);
        count(fetches, fetchesHelp, "outcome", "refused", counters.refusedBusy);
        String blocks = "pegaflow.fetch.blocks";
        String blocksHelp = "Blocks of remote fetches, committed here or failed";
        count(blocks, blocksHelp, "outcome", "fetched", counters.blocksFetched);
        count(blocks, blocksHelp, "outcome", "failed", counters.blocksFailed);
        count(
                "pegaflow.fetch.retries",
                "Fetch attempts on another holder after the first",
                null,
                null,
                counters.retries);
        String leases = "pegaflow.leases.served";
        String leasesHelp = "Holder side: leases on this node's blocks asked by peers";
        count(leases, leasesHelp, "outcome", "granted", counters.leasesGranted);
        count(leases, leasesHelp, "outcome", "refused", counters.leasesRefused);
        count(leases, leasesHelp, "outcome", "expired", counters.leasesExpiredBeforeRelease);
        for (var e : counters.attemptFailures().entrySet()) {
            long delta = e.getValue() - lastFailures.getOrDefault(e.getKey(), 0L);
            if (delta > 0) {
                Kamon.counter("pegaflow.fetch.attempt.failures", "Failed fetch attempts by holder and reason")
                        .withTags(nodeTag.withTag("peer", e.getKey().peer())
                                .withTag("transport", transport)
                                .withTag("reason", e.getKey().reason()))
                        .increment(delta);
            }
            lastFailures.put(e.getKey(), e.getValue());
        }
        long[] buckets = counters.fetchLatencyBuckets();
        var duration = Kamon.histogram(
                        "pegaflow.fetch.duration",
                        "Remote fetch time, arrival at the coordinator to its answer",
                        MeasurementUnit.time().nanoseconds())
                .withTags(nodeTag);
        for (int i = 0; i < buckets.length; i++) {
            long n = buckets[i] - lastBuckets[i];
            if (n > 0) {
                duration.record(Math.max(1, LatencyHistogram.bucketLowerBoundNs(i)), n);
            }
        }
        lastBuckets = buckets;
    }

    private void count(String name, String help, String tag, String value, LongAdder adder) {
        String key = name + "|" + value;
        long now = adder.sum();
        long delta = now - last.getOrDefault(key, 0L);
        // Touch every series once so it shows at 0 before the first event.
        Kamon.counter(name, help)
                .withTags(tag == null ? nodeTag : nodeTag.withTag(tag, value))
                .increment(Math.max(0, delta));
        last.put(key, now);
    }
}
