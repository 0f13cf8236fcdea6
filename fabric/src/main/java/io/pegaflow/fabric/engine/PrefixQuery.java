package io.pegaflow.fabric.engine;

/**
 * A Query: how long a prefix of {@code hashes} is sealed in the pool; with {@code leaseTtlMs > 0}, lease it.
 *
 * @param leaseTtlMs 0..600000 (the uint32 read unsigned)
 */
public record PrefixQuery(String namespace, byte[][] hashes, long leaseTtlMs) {}
