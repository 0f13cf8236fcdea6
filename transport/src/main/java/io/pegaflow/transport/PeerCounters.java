package io.pegaflow.transport;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Counters of one peer, for a transport implementation to keep. Completions, bytes and latencies have a single writer
 * (the data-path thread that completes this peer's transfers: ordered stores, no read-modify-write); refusals are
 * counted on the submitting threads (atomic increments); connects on the connecting thread. Any thread may take a
 * {@link #snapshot}.
 */
public final class PeerCounters {

    private static final int READ_BYTES = 0;
    private static final int WRITTEN_BYTES = 1;

    private final AtomicLongArray completions = new AtomicLongArray(TransferStatus.count());
    private final AtomicLongArray bytes = new AtomicLongArray(2);
    private final LatencyHistogram latency = new LatencyHistogram();
    private final AtomicLongArray refusals = new AtomicLongArray(TransferStatus.count());
    private final AtomicLong connects = new AtomicLong();

    /** Counts one completion; only the completing thread calls this. */
    public void recordCompletion(TransferOp op, TransferStatus status, long bytesTransferred, long latencyNs) {
        int s = status.ordinal();
        completions.lazySet(s, completions.get(s) + 1);
        int b = op == TransferOp.READ ? READ_BYTES : WRITTEN_BYTES;
        bytes.lazySet(b, bytes.get(b) + bytesTransferred);
        latency.record(latencyNs);
    }

    /** Counts one refused submission; any thread. */
    public void recordRefusal(TransferStatus status) {
        refusals.incrementAndGet(status.ordinal());
    }

    /** Counts one established connection; any thread. */
    public void recordConnect() {
        connects.incrementAndGet();
    }

    public PeerSnapshot snapshot(String peerNodeId, PeerState state) {
        long[] c = new long[TransferStatus.count()];
        long[] r = new long[TransferStatus.count()];
        for (int i = 0; i < c.length; i++) {
            c[i] = completions.get(i);
            r[i] = refusals.get(i);
        }
        return new PeerSnapshot(
                peerNodeId,
                state,
                connects.get(),
                bytes.get(READ_BYTES),
                bytes.get(WRITTEN_BYTES),
                c,
                r,
                latency.copy());
    }
}
