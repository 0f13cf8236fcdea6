package io.pegaflow.store;

/**
 * A lease taken by {@link BlockStore#query}: its blocks cannot be evicted until it is consumed by a load, released, or
 * expires.
 *
 * @param leaseId random, non-zero, unguessable; unique across nodes and restarts with overwhelming probability
 * @param namespace the namespace it was taken in: it is usable only there
 * @param blockCount how many blocks it holds (the query's hits)
 * @param expiresInMs its time to live as granted
 */
public record LeaseGrant(long leaseId, String namespace, int blockCount, long expiresInMs) {}
