package io.pegaflow.fabric.node;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Groups a node's GPUs by the NUMA node their PCI slot hangs off, read from {@code
 * <sysfs>/bus/pci/devices/<bdf>/numa_node} (the kernel writes -1 where the firmware gives no affinity, as on
 * single-socket machines and most VMs; such GPUs form the group {@link #UNKNOWN}). The node logs the grouping at start.
 * {@link NumaPoolPlan} turns the grouping into the node's pools: one per NUMA node where there are several, one
 * otherwise. Stateless.
 */
final class GpuNumaNodes {
    /** The group of GPUs whose NUMA node is not known (numa_node -1, missing or unreadable). */
    static final int UNKNOWN = -1;

    private GpuNumaNodes() {}

    /** One GPU: its ordinal and PCI address as sysfs spells it ({@code 0000:3b:00.0}). */
    record Gpu(int ordinal, String pciBusId) {}

    /**
     * @param sysfs the sysfs root ({@code /sys} in production; tests pass a directory of their own)
     * @return NUMA node to the ordinals on it, in ascending node order and in the given order within a node
     */
    static Map<Integer, List<Integer>> group(List<Gpu> gpus, Path sysfs) {
        Map<Integer, List<Integer>> byNode = new TreeMap<>();
        for (Gpu g : gpus) {
            byNode.computeIfAbsent(numaNode(sysfs, g.pciBusId()), k -> new ArrayList<>())
                    .add(g.ordinal());
        }
        return byNode;
    }

    /** The NUMA node of PCI device {@code bdf}, or {@link #UNKNOWN}. */
    static int numaNode(Path sysfs, String bdf) {
        Path file = sysfs.resolve("bus/pci/devices")
                .resolve(bdf.toLowerCase(java.util.Locale.ROOT))
                .resolve("numa_node");
        try {
            int node = Integer.parseInt(Files.readString(file).trim());
            return node < 0 ? UNKNOWN : node;
        } catch (IOException | NumberFormatException e) {
            return UNKNOWN;
        }
    }

    /** "NUMA node 0: GPUs [0, 1]; NUMA node 1: GPUs [2, 3]" for the start-up log. */
    static String describe(Map<Integer, List<Integer>> groups) {
        List<String> parts = new ArrayList<>();
        groups.forEach((node, ordinals) ->
                parts.add((node == UNKNOWN ? "NUMA node unknown" : "NUMA node " + node) + ": GPUs " + ordinals));
        return String.join("; ", parts);
    }
}
