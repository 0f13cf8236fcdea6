package io.pegaflow.fabric.engine;

/**
 * A Load: copy the blocks {@code hashes[i]} from the pool into the worker's blocks {@code blockIds[i]}, then set the
 * 32-byte flag at {@code flagOffsetBytes} of the shared-memory file {@code flagPath}.
 *
 * @param blockIds the worker's block indices (uint32 bits), parallel to {@code hashes}
 * @param leaseId a lease from Query covering these hashes (consumed), or 0
 * @param flagOffsetBytes unsigned, 8-byte aligned
 */
public record LoadBlocks(
        String contextId, int[] blockIds, byte[][] hashes, long leaseId, String flagPath, long flagOffsetBytes) {
    public LoadBlocks {
        if (blockIds.length != hashes.length) {
            throw new IllegalArgumentException(
                    blockIds.length + " block ids but " + hashes.length + " hashes: they come in pairs");
        }
    }
}
