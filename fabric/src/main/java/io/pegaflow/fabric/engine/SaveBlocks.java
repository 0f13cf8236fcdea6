package io.pegaflow.fabric.engine;

/**
 * A Save: copy the worker's blocks {@code blockIds[i]} into the pool as {@code hashes[i]}.
 *
 * @param blockIds the worker's block indices (uint32 bits), parallel to {@code hashes}
 * @param layerIndices global layers to save; empty means every layer of the context
 */
public record SaveBlocks(String contextId, int[] blockIds, byte[][] hashes, int[] layerIndices) {
    public SaveBlocks {
        if (blockIds.length != hashes.length) {
            throw new IllegalArgumentException(
                    blockIds.length + " block ids but " + hashes.length + " hashes: they come in pairs");
        }
    }
}
