package io.pegaflow.transport;

/**
 * A point-in-time copy of one peer's counters (monotonic; the node turns deltas into metrics tagged
 * {@code transport}, {@code peer}, {@code op}, {@code outcome}).
 *
 * @param peerNodeId the peer
 * @param state its connection state now
 * @param connects connections established so far (1 + reconnects)
 * @param bytesRead bytes moved by completed READs (including what landed before a failure)
 * @param bytesWritten bytes moved by completed WRITEs
 * @param completionsByStatus completed transfers, indexed by {@link TransferStatus#ordinal()}
 * @param refusalsByStatus refused submissions, indexed by {@link TransferStatus#ordinal()}
 * @param latencyBuckets submit-to-completion latency, {@link LatencyHistogram} buckets
 */
public record PeerSnapshot(
        String peerNodeId,
        PeerState state,
        long connects,
        long bytesRead,
        long bytesWritten,
        long[] completionsByStatus,
        long[] refusalsByStatus,
        long[] latencyBuckets) {

    public long completions(TransferStatus status) {
        return completionsByStatus[status.ordinal()];
    }

    public long refusals(TransferStatus status) {
        return refusalsByStatus[status.ordinal()];
    }

    /** All completed transfers, whatever their status. */
    public long transfers() {
        long total = 0;
        for (long c : completionsByStatus) {
            total += c;
        }
        return total;
    }
}
