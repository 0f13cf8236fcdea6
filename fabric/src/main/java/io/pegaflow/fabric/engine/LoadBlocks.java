package io.pegaflow.fabric.engine;

import io.pegaflow.store.HashList;

/**
 * A Load: copy the blocks of hash {@code i} of {@code hashes} from the pool into the worker's blocks {@code
 * blockIds[i]}, then set the 32-byte flag at {@code flagOffsetBytes} of the shared-memory file {@code flagPath}.
 *
 * @param blockIds the worker's block indices (uint32 bits), parallel to {@code hashes}
 * @param leaseId a lease from Query covering these hashes (consumed), or 0
 * @param flagPath the flag file; may be empty when {@code replyWhenDone} (then no flag is written)
 * @param flagOffsetBytes unsigned, 8-byte aligned
 * @param replyWhenDone the engine's stage completes when the copy has ended (with the flag's figures), not when it is
 *     queued
 */
public record LoadBlocks(
        String contextId,
        int[] blockIds,
        HashList hashes,
        long leaseId,
        String flagPath,
        long flagOffsetBytes,
        boolean replyWhenDone) {
    public LoadBlocks {
        if (blockIds.length != hashes.size()) {
            throw new IllegalArgumentException(
                    blockIds.length + " block ids but " + hashes.size() + " hashes: they come in pairs");
        }
    }

    /** A load that reports through its flag only, the hashes as one array each (tests, benchmarks). */
    public LoadBlocks(
            String contextId, int[] blockIds, byte[][] hashes, long leaseId, String flagPath, long flagOffsetBytes) {
        this(contextId, blockIds, HashList.of(hashes), leaseId, flagPath, flagOffsetBytes, false);
    }

    /** True when the load reports through a flag (a path was given). */
    public boolean hasFlag() {
        return !flagPath.isEmpty();
    }
}
