package io.pegaflow.fabric.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.store.memory.HostMemory;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The node's pools from its GPUs' NUMA nodes: one per node only when every GPU's node is known and there are several. */
class NumaPoolPlanTest {
    static final long MIB = 1 << 20;

    @Test
    void shouldMakeAPoolPerNumaNodeAndSplitTheSizeEvenlyInWholeSlabs() {
        NumaPoolPlan plan = NumaPoolPlan.of(Map.of(0, List.of(0, 2), 1, List.of(1, 3)));
        assertEquals(2, plan.pools());
        assertEquals(Map.of(0, 0, 2, 0, 1, 1, 3, 1), plan.poolByOrdinal());
        assertEquals(
                List.of(new HostMemory.NodeRange(0, 8 * MIB, 0), new HostMemory.NodeRange(8 * MIB, 10 * MIB, 1)),
                plan.ranges(18 * MIB, 4 * MIB),
                "2 slabs each; the last pool runs to the region's end");
        assertTrue(plan.why().contains("pool 1 on NUMA node 1 serves GPUs [1, 3]"), plan.why());
    }

    @Test
    void shouldKeepOneUnboundPoolForOneNodeUnknownAffinityOrTooSmallAPool() {
        assertEquals(1, NumaPoolPlan.of(Map.of(0, List.of(0, 1))).pools());
        assertEquals(List.of(), NumaPoolPlan.of(Map.of(0, List.of(0, 1))).ranges(64 * MIB, 4 * MIB));
        NumaPoolPlan mixed = NumaPoolPlan.of(Map.of(GpuNumaNodes.UNKNOWN, List.of(0), 1, List.of(1)));
        assertEquals(1, mixed.pools());
        assertEquals(Map.of(0, 0, 1, 0), mixed.poolByOrdinal());
        assertTrue(mixed.why().contains("unknown"), mixed.why());
        NumaPoolPlan tiny =
                NumaPoolPlan.of(Map.of(0, List.of(0), 1, List.of(1))).fit(4 * MIB, 4 * MIB);
        assertEquals(1, tiny.pools());
        assertTrue(tiny.why().contains("fewer than 2 slabs"), tiny.why());
        assertTrue(mixed.crossesSockets() && tiny.crossesSockets(), "both warned about");
        assertTrue(!NumaPoolPlan.of(Map.of(0, List.of(0, 1))).crossesSockets());
    }
}
