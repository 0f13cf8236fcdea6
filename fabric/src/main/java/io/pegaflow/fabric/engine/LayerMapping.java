package io.pegaflow.fabric.engine;

import java.lang.foreign.MemorySegment;

/**
 * One registered layer: where its block 0 starts in the mapped region, how far apart blocks are, and the byte
 * segments that make up one block (K and V planes give two). Layers sharing one mapped file share
 * {@code regionIndex}, so their copies go into one batch.
 */
record LayerMapping(
        String name,
        int layerIndex,
        int regionIndex,
        MemorySegment region,
        long baseOffset,
        int numBlocks,
        long blockStrideBytes,
        long[] segmentOffsets,
        long[] segmentLengths,
        long slotBytes) {

    /** Offset in {@link #region()} of segment {@code s} of block {@code blockId}. */
    long sourceOffset(int blockId, int s) {
        return baseOffset + blockId * blockStrideBytes + segmentOffsets[s];
    }
}
