package io.pegaflow.fabric.node;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** NUMA grouping read from a fake sysfs tree (a temp directory passed as the sysfs root; this VM has one node). */
class GpuNumaNodesWithFakeSysfsTest {
    @TempDir
    Path sysfs;

    private void device(String bdf, String numaNode) throws IOException {
        Path dir = Files.createDirectories(sysfs.resolve("bus/pci/devices").resolve(bdf));
        Files.writeString(dir.resolve("numa_node"), numaNode + "\n");
    }

    @Test
    void shouldGroupGpusByTheNumaNodeOfTheirPciSlotInAFakeSysfs() throws IOException {
        device("0000:1b:00.0", "0");
        device("0000:3b:00.0", "0");
        device("0000:9a:00.0", "1");
        device("0000:ba:00.0", "1");
        Map<Integer, List<Integer>> groups = GpuNumaNodes.group(
                List.of(
                        new GpuNumaNodes.Gpu(0, "0000:1b:00.0"),
                        new GpuNumaNodes.Gpu(1, "0000:9A:00.0"),
                        new GpuNumaNodes.Gpu(2, "0000:3b:00.0"),
                        new GpuNumaNodes.Gpu(3, "0000:ba:00.0")),
                sysfs);
        assertEquals(Map.of(0, List.of(0, 2), 1, List.of(1, 3)), groups);
        assertEquals("NUMA node 0: GPUs [0, 2]; NUMA node 1: GPUs [1, 3]", GpuNumaNodes.describe(groups));
    }

    @Test
    void shouldPutGpusWithoutKnownAffinityInOneUnknownGroupInAFakeSysfs() throws IOException {
        device("0000:01:00.0", "-1"); // what a VM or single-socket machine shows
        device("0000:02:00.0", "garbage");
        Map<Integer, List<Integer>> groups = GpuNumaNodes.group(
                List.of(
                        new GpuNumaNodes.Gpu(0, "0000:01:00.0"),
                        new GpuNumaNodes.Gpu(1, "0000:02:00.0"),
                        new GpuNumaNodes.Gpu(2, "0000:03:00.0")), // no such device
                sysfs);
        assertEquals(Map.of(GpuNumaNodes.UNKNOWN, List.of(0, 1, 2)), groups);
        assertEquals("NUMA node unknown: GPUs [0, 1, 2]", GpuNumaNodes.describe(groups));
    }
}
