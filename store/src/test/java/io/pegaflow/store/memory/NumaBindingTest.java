package io.pegaflow.store.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Host memory bound to NUMA nodes before populating: the kernel reports {@code MPOL_BIND} on node 0 for each bound
 * range (this host has node 0 only, so both "pools" bind there) and leaves a range on a node the host lacks unbound.
 */
@Timeout(60)
class NumaBindingTest {
    private static final long MIB = 1 << 20;

    @Test
    void shouldBindEachRangeToItsNodeBeforePopulating() throws Exception {
        List<HostMemory.NodeRange> ranges =
                List.of(new HostMemory.NodeRange(0, 8 * MIB, 0), new HostMemory.NodeRange(8 * MIB, 8 * MIB, 0));
        try (HostMemory memory = HostMemory.allocate(16 * MIB, 2, false, null, ranges)) {
            long base = memory.memory().address();
            for (long at : new long[] {0, 8 * MIB - 4096, 8 * MIB, 16 * MIB - 4096}) {
                Numa.Policy policy = Numa.policyAt(base + at);
                assertEquals(Numa.MPOL_BIND, policy.mode(), "policy at +" + at);
                assertEquals(0, policy.firstNode(), "node at +" + at);
            }
            assertTrue(memory.report().contains("[0 MiB, 8 MiB) on NUMA node 0 bound"), memory.report());
            String maps = Files.readString(Path.of("/proc/self/numa_maps"));
            String line = maps.lines()
                    .filter(l -> l.startsWith(Long.toHexString(base) + " "))
                    .findFirst()
                    .orElseThrow(() -> new AssertionError("no numa_maps line at " + Long.toHexString(base)));
            assertTrue(line.contains("bind:0"), line);
        }
    }

    @Test
    void shouldLeaveARangeOnANodeThisHostLacksUnboundAndSaySo() {
        int missing = 1000;
        List<HostMemory.NodeRange> ranges =
                List.of(new HostMemory.NodeRange(0, 4 * MIB, 0), new HostMemory.NodeRange(4 * MIB, 4 * MIB, missing));
        try (HostMemory memory = HostMemory.allocate(8 * MIB, 1, false, null, ranges)) {
            long base = memory.memory().address();
            assertEquals(Numa.MPOL_BIND, Numa.policyAt(base).mode());
            assertNotEquals(Numa.MPOL_BIND, Numa.policyAt(base + 4 * MIB).mode());
            assertTrue(memory.report().contains("on NUMA node 1000 left unbound (no such node)"), memory.report());
        }
    }
}
