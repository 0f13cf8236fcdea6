package io.pegaflow.fabric.engine;

/**
 * The answer to a {@link PrefixQuery}.
 *
 * @param hitBlocks length of the contiguous sealed prefix
 * @param leaseId 0 when no lease was taken
 */
public record PrefixHits(int hitBlocks, long leaseId, long leaseExpiresInMs) {}
