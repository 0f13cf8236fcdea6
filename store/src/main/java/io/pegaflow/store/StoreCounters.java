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
}
