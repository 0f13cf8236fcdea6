package io.pegaflow.store;

/**
 * What {@link BlockStore#query} found.
 *
 * @param hitCount length of the contiguous prefix of the asked hashes that is sealed in the pool
 * @param lease the lease holding those hits, or null when none was taken (no TTL asked, or no hit)
 */
public record QueryResult(int hitCount, LeaseGrant lease) {
    public QueryResult {
        if (hitCount < 0) {
            throw new IllegalArgumentException("hitCount " + hitCount + " must be at least 0");
        }
    }

    /** The lease id, or 0 when no lease was taken (0 is never a lease id). */
    public long leaseId() {
        return lease == null ? 0 : lease.leaseId();
    }
}
