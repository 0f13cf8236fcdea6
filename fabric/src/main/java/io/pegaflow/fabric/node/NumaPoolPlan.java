package io.pegaflow.fabric.node;

import io.pegaflow.store.memory.HostMemory;
import io.pegaflow.store.pool.BlockPool;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * How many pools a GPU node has and which NUMA node each sits on: one per NUMA node when the node's GPUs sit on more
 * than one (every GPU's affinity known), each GPU served from the pool on its own node; otherwise exactly one pool,
 * bound to nothing, as before (one NUMA node, unknown affinity as in VMs, or a mix of known and unknown). The pool
 * size is the configured size split evenly across the pools, in whole slabs ({@link BlockPool#partitionRanges}); a
 * pool too small to give every NUMA node a slab stays one pool. Immutable.
 *
 * @param poolNodes the NUMA node of each pool, by pool index; empty for the one unbound pool
 * @param poolByOrdinal each GPU ordinal to the index of its pool
 * @param why what the start-up log says about the choice
 */
public record NumaPoolPlan(List<Integer> poolNodes, Map<Integer, Integer> poolByOrdinal, String why) {
    public NumaPoolPlan {
        poolNodes = List.copyOf(poolNodes);
        poolByOrdinal = Map.copyOf(poolByOrdinal);
    }

    /** Reads each GPU's NUMA node from {@code <sysfs>/bus/pci/devices/<bdf>/numa_node} and plans the pools. */
    public static NumaPoolPlan read(Map<Integer, String> pciBusIdByOrdinal, Path sysfs) {
        List<GpuNumaNodes.Gpu> gpus = new ArrayList<>();
        pciBusIdByOrdinal.forEach((ordinal, bdf) -> gpus.add(new GpuNumaNodes.Gpu(ordinal, bdf)));
        return of(GpuNumaNodes.group(gpus, sysfs));
    }

    /** @param groups NUMA node to the GPU ordinals on it, as {@link GpuNumaNodes#group} gives */
    static NumaPoolPlan of(Map<Integer, List<Integer>> groups) {
        String where = GpuNumaNodes.describe(groups);
        if (groups.size() <= 1 || groups.containsKey(GpuNumaNodes.UNKNOWN)) {
            Map<Integer, Integer> all = new LinkedHashMap<>();
            groups.values().forEach(ordinals -> ordinals.forEach(o -> all.put(o, 0)));
            String why = groups.size() <= 1
                    ? "one pool serves every GPU (" + where + ")"
                    : "one pool serves every GPU: some GPUs' NUMA node is unknown (" + where
                            + "), so no pool can be placed for them and some copies may cross sockets";
            return new NumaPoolPlan(List.of(), all, why);
        }
        List<Integer> nodes = new ArrayList<>(new java.util.TreeSet<>(groups.keySet())); // pool i: the i-th lowest node
        Map<Integer, Integer> byOrdinal = new LinkedHashMap<>();
        List<String> parts = new ArrayList<>();
        for (int p = 0; p < nodes.size(); p++) {
            int pool = p;
            groups.get(nodes.get(p)).forEach(o -> byOrdinal.put(o, pool));
            parts.add("pool " + p + " on NUMA node " + nodes.get(p) + " serves GPUs " + groups.get(nodes.get(p)));
        }
        return new NumaPoolPlan(
                nodes, byOrdinal, "a pool per NUMA node, the size split evenly: " + String.join("; ", parts));
    }

    /** One pool for GPUs on several NUMA nodes (affinity partly unknown, or too small a pool): worth a warning. */
    public boolean crossesSockets() {
        return poolNodes.isEmpty() && why.startsWith("one pool serves every GPU:");
    }

    /** How many pools (partitions of the one pinned region). */
    public int pools() {
        return Math.max(1, poolNodes.size());
    }

    /** This plan, or one unbound pool (said in {@link #why}) when a pool of {@code sizeBytes} has too few slabs. */
    public NumaPoolPlan fit(long sizeBytes, long slabBytes) {
        if (pools() == 1 || sizeBytes / slabBytes >= pools()) {
            return this;
        }
        Map<Integer, Integer> all = new LinkedHashMap<>();
        poolByOrdinal.keySet().forEach(o -> all.put(o, 0));
        return new NumaPoolPlan(
                List.of(),
                all,
                "one pool serves every GPU: " + sizeBytes + " bytes are fewer than " + pools() + " slabs of "
                        + slabBytes + " (" + why + ")");
    }

    /** The ranges of a region of {@code sizeBytes} to bind, one per pool, matching {@link BlockPool#wrap}'s split. */
    public List<HostMemory.NodeRange> ranges(long sizeBytes, long slabBytes) {
        if (poolNodes.isEmpty()) {
            return List.of();
        }
        long[][] split = BlockPool.partitionRanges(sizeBytes, slabBytes, poolNodes.size());
        List<HostMemory.NodeRange> ranges = new ArrayList<>();
        for (int p = 0; p < split.length; p++) {
            // The last pool runs to the region's end (slack past the whole slabs is never used).
            long length = p == split.length - 1 ? sizeBytes - split[p][0] : split[p][1];
            ranges.add(new HostMemory.NodeRange(split[p][0], length, poolNodes.get(p)));
        }
        return ranges;
    }
}
