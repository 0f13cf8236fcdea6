package io.pegaflow.actors.directory;

import java.util.List;

/**
 * Where a request's blocks live, hash by hash in request order.
 *
 * @param holderMasks per hash, a bitmask over node indices (bit {@code i} = {@code nodeIds.get(i)}); 0 = no holder
 *     known
 * @param prefixLength number of leading hashes with at least one holder: the prefix available in the cluster
 * @param complete whether every range asked answered in time with its holdings complete; when false, a hash shown
 *     without holders may still be held somewhere (a range was rebuilding, or did not answer)
 * @param nodeIds the topology's node ids in index order
 */
public record LocateResult(long[] holderMasks, int prefixLength, boolean complete, List<String> nodeIds) {

    public LocateResult {
        nodeIds = List.copyOf(nodeIds);
    }

    /** Number of hashes located. */
    public int size() {
        return holderMasks.length;
    }

    /** Ids of the nodes holding hash {@code i}, in index order. */
    public List<String> holders(int i) {
        long mask = holderMasks[i];
        java.util.ArrayList<String> out = new java.util.ArrayList<>(Long.bitCount(mask));
        for (long m = mask; m != 0; m &= m - 1) {
            int node = Long.numberOfTrailingZeros(m);
            if (node < nodeIds.size()) {
                out.add(nodeIds.get(node));
            }
        }
        return out;
    }

    /** Whether node {@code nodeIndex} holds hash {@code i}. */
    public boolean heldBy(int i, int nodeIndex) {
        return (holderMasks[i] & DirectoryNodes.bit(nodeIndex)) != 0;
    }
}
