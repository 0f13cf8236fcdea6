package io.pegaflow.fabric.metrics;

import io.pegaflow.transport.LatencyHistogram;
import io.pegaflow.transport.PeerSnapshot;
import io.pegaflow.transport.TransferStatus;
import io.pegaflow.transport.Transport;
import io.pegaflow.transport.TransportSnapshot;
import java.util.HashMap;
import java.util.Map;
import kamon.Kamon;
import kamon.metric.MeasurementUnit;
import kamon.tag.TagSet;

/**
 * The transport's counters as Kamon metrics, tagged with this node's id, from {@link Transport#snapshot()} deltas once a second ({@link
 * NodeMetricsSampler}): {@code pegaflow_transfer_bytes_total{peer,transport}} (bytes read from the peer), {@code
 * pegaflow_transfer_duration_seconds{peer,transport}} (per transfer, from the transport's latency buckets, recorded at
 * each bucket's lower bound) and {@code pegaflow_transfer_failures_total{peer,transport,status}} (completions and
 * refusals other than OK). Once at start, which transport runs: {@code pegaflow_transport_active{transport,requested}}
 * = 1 and {@code pegaflow_transport_fallback{transport,requested}} = 1 when the topology asked for rdma and the node
 * fell back to tcp ({@code transportFallback: tcp}), 0 otherwise.
 */
public final class TransportMetrics {
    private final Transport transport;
    private final Map<String, PeerSnapshot> last = new HashMap<>();

    public TransportMetrics(Transport transport) {
        this.transport = transport;
    }

    /**
     * Records which transport runs and whether it is a fallback, then samples {@code transport} as {@link
     * #TransportMetrics(Transport)} does.
     *
     * @param requested the topology's {@code transport} ({@code rdma} or {@code tcp})
     * @param fellBack true when {@code requested} could not run and {@code transport} runs in its place
     */
    public TransportMetrics(Transport transport, String requested, boolean fellBack) {
        this(transport);
        TagSet tags = TagSet.builder()
                .add("transport", transport.name())
                .add("requested", requested)
                .build();
        Kamon.gauge("pegaflow.transport.active", "1 for the transport this node runs")
                .withTags(tags)
                .update(1);
        Kamon.gauge(
                        "pegaflow.transport.fallback",
                        "1 when the topology's transport could not run here and this one runs instead")
                .withTags(tags)
                .update(fellBack ? 1 : 0);
    }

    /** Called on the sampler's thread only. */
    public void sample() {
        TransportSnapshot now = transport.snapshot();
        for (PeerSnapshot peer : now.peers()) {
            PeerSnapshot before = last.get(peer.peerNodeId());
            TagSet tags = TagSet.builder()
                    .add("node", transport.localNodeId())
                    .add("peer", peer.peerNodeId())
                    .add("transport", now.transport())
                    .build();
            long bytes = peer.bytesRead() - (before == null ? 0 : before.bytesRead());
            Kamon.counter(
                            "pegaflow.transfer",
                            "Bytes read from a peer",
                            MeasurementUnit.information().bytes())
                    .withTags(tags)
                    .increment(Math.max(0, bytes));
            var duration = Kamon.histogram(
                            "pegaflow.transfer.duration",
                            "Transfer time, submission to completion",
                            MeasurementUnit.time().nanoseconds())
                    .withTags(tags);
            long[] buckets = peer.latencyBuckets();
            for (int b = 0; b < buckets.length; b++) {
                long n = buckets[b] - (before == null ? 0 : before.latencyBuckets()[b]);
                if (n > 0) {
                    duration.record(Math.max(1, LatencyHistogram.bucketLowerBoundNs(b)), n);
                }
            }
            for (TransferStatus status : TransferStatus.values()) {
                if (status == TransferStatus.OK) {
                    continue;
                }
                long failures = peer.completions(status) + peer.refusals(status);
                long previous = before == null ? 0 : before.completions(status) + before.refusals(status);
                if (failures - previous > 0) {
                    Kamon.counter("pegaflow.transfer.failures", "Transfers that failed or were refused")
                            .withTags(tags.withTag("status", status.name()))
                            .increment(failures - previous);
                }
            }
            last.put(peer.peerNodeId(), peer);
        }
    }
}
