package io.pegaflow.fabric.engine;

import java.util.List;

/**
 * One layer of a registration: its region (null when the request named none), how many blocks it holds, how far
 * apart they are, and the byte segments of one block relative to its start (one for vLLM's packed layout, two for
 * K and V planes). Unsigned fields keep their wire bits, as in {@link ContextRegistration}.
 */
public record LayerSpec(
        String name, int layerIndex, RegionSpec region, int numBlocks, long blockStrideBytes, List<Segment> segments) {
    public LayerSpec {
        segments = List.copyOf(segments);
    }

    /** Bytes {@code [offsetBytes, offsetBytes + lengthBytes)} of a block. */
    public record Segment(long offsetBytes, long lengthBytes) {}
}
