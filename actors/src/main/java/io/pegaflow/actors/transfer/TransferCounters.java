package io.pegaflow.actors.transfer;

import io.pegaflow.transport.LatencyHistogram;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * One node's transfer-coordinator counters, written by its coordinator and read by the node's metrics sampler (any
 * thread). Monotonic. One instance per node (a JVM may run several nodes in tests).
 */
public final class TransferCounters {
    public final LongAdder fetchesStarted = new LongAdder();
    /** Fetches that got every asked block, some of them, none. */
    public final LongAdder fetchesCompleted = new LongAdder();

    public final LongAdder fetchesPartial = new LongAdder();
    public final LongAdder fetchesFailed = new LongAdder();
    public final LongAdder blocksFetched = new LongAdder();
    public final LongAdder blocksFailed = new LongAdder();
    public final LongAdder bytesFetched = new LongAdder();
    /** Attempts after a fetch's first (another holder tried). */
    public final LongAdder retries = new LongAdder();
    /** Fetches refused because too many were in flight. */
    public final LongAdder refusedBusy = new LongAdder();
    /** Transfers the transport refused with {@code BACK_PRESSURED}. */
    public final LongAdder backPressured = new LongAdder();

    public final LongAdder transferFailures = new LongAdder();
    public final LongAdder leaseFailures = new LongAdder();
    /** Holder side: leases granted to peers and refused (nothing held). */
    public final LongAdder leasesGranted = new LongAdder();

    public final LongAdder leasesRefused = new LongAdder();
    /** Holder side: confirmations that found the lease expired (the requester then discards what it read). */
    public final LongAdder leasesExpiredBeforeRelease = new LongAdder();

    private final Map<AttemptFailure, LongAdder> attemptFailures = new ConcurrentHashMap<>();
    private final LatencyHistogram fetchLatency = new LatencyHistogram();

    /** Why one attempt on one holder failed: {@code reason} is a lower-case word (a transfer status or lease_*). */
    public record AttemptFailure(String peer, String reason) {}

    void attemptFailed(String peer, String reason) {
        attemptFailures
                .computeIfAbsent(new AttemptFailure(peer, reason), k -> new LongAdder())
                .increment();
    }

    /** Coordinator only (single writer). */
    void recordFetchLatency(long ns) {
        fetchLatency.record(ns);
    }

    /** Failed attempts so far, by holder and reason. */
    public Map<AttemptFailure, Long> attemptFailures() {
        Map<AttemptFailure, Long> out = new java.util.HashMap<>();
        attemptFailures.forEach((k, v) -> out.put(k, v.sum()));
        return out;
    }

    /** Whole-fetch latency (arrival to answer), power-of-two ns buckets ({@link LatencyHistogram}). */
    public long[] fetchLatencyBuckets() {
        return fetchLatency.copy();
    }
}
