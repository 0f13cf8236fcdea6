package io.pegaflow.store;

/**
 * The pool's figures read together under the store's lock, so that they never disagree within one sample.
 *
 * @param capacityBytes usable bytes of the pool
 * @param usedBytes bytes allocated to blocks (sum of their size classes)
 * @param largestFreeBytes the biggest block the pool could take now without eviction
 */
public record PoolSnapshot(long capacityBytes, long usedBytes, long largestFreeBytes) {}
