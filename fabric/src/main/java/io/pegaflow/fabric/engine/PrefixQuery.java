package io.pegaflow.fabric.engine;

import io.pegaflow.store.HashList;

/**
 * A Query: how long a prefix of {@code hashes} is sealed in the pool; with {@code leaseTtlMs > 0}, lease it.
 *
 * @param leaseTtlMs 0..600000 (the uint32 read unsigned)
 */
public record PrefixQuery(String namespace, HashList hashes, long leaseTtlMs) {
    /** The hashes as one array each (tests, benchmarks). */
    public PrefixQuery(String namespace, byte[][] hashes, long leaseTtlMs) {
        this(namespace, HashList.of(hashes), leaseTtlMs);
    }
}
