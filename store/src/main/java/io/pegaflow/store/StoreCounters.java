package io.pegaflow.store;

/**
 * Cumulative block-store counts, written under the store's lock and read racily by the metrics sampler (a stale
 * value there is harmless).
 */
public final class StoreCounters {
    volatile long hits;
    volatile long misses;
    volatile long insertions;
    volatile long evictions;
    volatile long partialDropped;
    volatile long leasesCreated;
    volatile long leasesReleased;
    volatile long leasesExpired;
    volatile long saveRejectedFull;
    volatile long incomingCommitted;
    volatile long incomingAborted;
    volatile long incomingRejectedFull;
    volatile long cleared;
    volatile long listenerFailures;
    volatile long remotePoolBlocks;

    /**
     * New blocks of saves that named a preferred pool (their GPU's NUMA-local one) and went to another pool because
     * the preferred one could not make room even after evicting its own blocks.
     */
    public long remotePoolBlocks() {
        return remotePoolBlocks;
    }

    public long hits() {
        return hits;
    }

    public long misses() {
        return misses;
    }

    public long insertions() {
        return insertions;
    }

    public long evictions() {
        return evictions;
    }

    public long partialDropped() {
        return partialDropped;
    }

    public long leasesCreated() {
        return leasesCreated;
    }

    public long leasesReleased() {
        return leasesReleased;
    }

    public long leasesExpired() {
        return leasesExpired;
    }

    public long saveRejectedFull() {
        return saveRejectedFull;
    }

    /** Incoming blocks sealed by {@link BlockStore#commitIncoming}. */
    public long incomingCommitted() {
        return incomingCommitted;
    }

    /** Incoming blocks freed by {@link BlockStore#abortIncoming}. */
    public long incomingAborted() {
        return incomingAborted;
    }

    /** {@link BlockStore#reserveIncoming} calls refused because the pool was full even after eviction. */
    public long incomingRejectedFull() {
        return incomingRejectedFull;
    }

    /** Sealed blocks removed by {@link BlockStore#clearNamespace}. */
    public long cleared() {
        return cleared;
    }

    /** Event batches whose listener threw (the batch is lost to it; delivery goes on). */
    public long listenerFailures() {
        return listenerFailures;
    }
}
