package io.pegaflow.store.pool;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

/** A pool split into partitions of whole slabs: each allocates and frees within its own range. */
class BlockPoolPartitionsTest {
    static final long SLAB = 64 << 10;

    @Test
    void shouldAllocateInsideTheAskedPartitionAndFreeBackIntoIt() {
        try (Arena arena = Arena.ofConfined()) {
            BlockPool pool = BlockPool.wrap(arena.allocate(5 * SLAB, BlockPool.ALIGNMENT), SLAB, 2); // 2 + 3 slabs
            assertEquals(2 * SLAB, pool.partitionCapacityBytes(0));
            assertEquals(3 * SLAB, pool.partitionCapacityBytes(1));
            assertEquals(1, pool.partitionOfSlab(4));
            long[] inOne = new long[48];
            for (int i = 0; i < 48; i++) { // 3 slabs of 16 blocks of 4 KiB
                inOne[i] = pool.allocate(4096, 1);
                assertTrue(inOne[i] >= 2 * SLAB && inOne[i] < 5 * SLAB, "offset " + inOne[i]);
            }
            assertEquals(-1, pool.allocate(4096, 1), "partition 1 is full");
            assertEquals(0, pool.freeSlotsFor(4096, 1));
            assertEquals(32, pool.freeSlotsFor(4096, 0));
            assertEquals(32, pool.freeSlotsFor(4096));
            assertEquals(0, pool.partitionUsedBytes(0));
            assertEquals(48 * 4096, pool.partitionUsedBytes(1));
            long elsewhere = pool.allocate(8192); // no partition named: the first with room
            assertTrue(elsewhere < 2 * SLAB);
            for (long offset : inOne) {
                pool.free(offset);
            }
            assertEquals(3, pool.freeSlabCount() - 1, "partition 1's slabs are free again, partition 0 holds one");
            assertEquals(48, pool.freeSlotsFor(4096, 1));
            assertEquals(SLAB, pool.largestFreeBytes(1));
            assertThrows(IllegalArgumentException.class, () -> pool.freeSlotsFor(4096, 2));
            assertThrows(
                    IllegalArgumentException.class,
                    () -> BlockPool.wrap(arena.allocate(SLAB, BlockPool.ALIGNMENT), SLAB, 2));
        }
    }
}
