package io.pegaflow.fabric.engine;

import java.util.List;

/**
 * One layer of a registration, or a group of consecutive layers registered once: its region (null when the request
 * named none), how many blocks it holds, how far apart they are, and the byte segments of one block relative to its
 * start (one for vLLM's packed layout, two for K and V planes). Unsigned fields keep their wire bits, as in {@link
 * ContextRegistration}.
 *
 * @param replicated identical on every TP rank (MLA): stored once per block
 * @param layerCount layers this entry stands for, {@code layerIndex ..}; 0 or 1 is one layer
 * @param layerStrideBytes with {@code layerCount > 1}: from layer k's block 0 to layer k+1's in the region
 */
public record LayerSpec(
        String name,
        int layerIndex,
        RegionSpec region,
        int numBlocks,
        long blockStrideBytes,
        List<Segment> segments,
        boolean replicated,
        int layerCount,
        long layerStrideBytes) {
    public LayerSpec {
        segments = List.copyOf(segments);
    }

    /** One split layer. */
    public LayerSpec(
            String name,
            int layerIndex,
            RegionSpec region,
            int numBlocks,
            long blockStrideBytes,
            List<Segment> segments) {
        this(name, layerIndex, region, numBlocks, blockStrideBytes, segments, false, 1, 0);
    }

    /** Layers this entry stands for (a group's {@code layerCount}, else 1). */
    public int layers() {
        return layerCount == 0 ? 1 : layerCount;
    }

    /** Bytes {@code [offsetBytes, offsetBytes + lengthBytes)} of a block. */
    public record Segment(long offsetBytes, long lengthBytes) {}
}
