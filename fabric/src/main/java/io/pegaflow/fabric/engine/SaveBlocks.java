package io.pegaflow.fabric.engine;

import io.pegaflow.store.HashList;

/**
 * A Save: copy the worker's blocks {@code blockIds[i]} into the pool as hash {@code i} of {@code hashes}.
 *
 * @param blockIds the worker's block indices (uint32 bits), parallel to {@code hashes}
 * @param layerIndices global layers to save; empty means every layer of the context
 */
public record SaveBlocks(String contextId, int[] blockIds, HashList hashes, int[] layerIndices) {
    public SaveBlocks {
        if (blockIds.length != hashes.size()) {
            throw new IllegalArgumentException(
                    blockIds.length + " block ids but " + hashes.size() + " hashes: they come in pairs");
        }
    }

    /** The hashes as one array each (tests, benchmarks). */
    public SaveBlocks(String contextId, int[] blockIds, byte[][] hashes, int[] layerIndices) {
        this(contextId, blockIds, HashList.of(hashes), layerIndices);
    }
}
