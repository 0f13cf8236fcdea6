package io.pegaflow.store.pool;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

class BlockPoolTest {
    private static final long KIB = 1024;
    private static final long MIB = 1024 * KIB;
    private static final long GIB = 1024 * MIB;

    @Test
    void shouldRoundBlockSizesUpToAlignmentAndAlignEveryOffset() {
        try (BlockPool pool = BlockPool.allocateOffHeap(16 * MIB)) { // 4 slabs: one per size class used here
            long a = pool.allocate(1);
            assertEquals(BlockPool.ALIGNMENT, pool.usedBytes());
            long b = pool.allocate(4096);
            assertEquals(2 * BlockPool.ALIGNMENT, pool.usedBytes());
            long c = pool.allocate(4097);
            assertEquals(4 * BlockPool.ALIGNMENT, pool.usedBytes());
            long d = pool.allocate(10_000);
            assertEquals(7 * BlockPool.ALIGNMENT, pool.usedBytes());
            for (long offset : new long[] {a, b, c, d}) {
                assertEquals(0, offset % BlockPool.ALIGNMENT, "offset " + offset);
                assertEquals(0, pool.memory().address() + offset & (BlockPool.ALIGNMENT - 1), "address of " + offset);
            }
            assertEquals(8192, pool.block(c, 8192).byteSize());
            assertEquals(12288, pool.block(d, 12288).byteSize());
            assertThrows(IndexOutOfBoundsException.class, () -> pool.block(c, 8193));
        }
    }

    @Test
    void shouldChooseDefaultSlabSizeBetween4And256MiBAlignedDown() {
        assertEquals(4 * MIB, BlockPool.defaultSlabBytes(4 * MIB));
        assertEquals(4 * MIB, BlockPool.defaultSlabBytes(32 * MIB));
        assertEquals(64 * MIB, BlockPool.defaultSlabBytes(GIB));
        assertEquals(256 * MIB, BlockPool.defaultSlabBytes(4 * GIB));
        assertEquals(256 * MIB, BlockPool.defaultSlabBytes(1024 * GIB));
        assertEquals((100 * MIB + 12_345) / 16 & -BlockPool.ALIGNMENT, BlockPool.defaultSlabBytes(100 * MIB + 12_345));
        assertEquals(3 * MIB, BlockPool.defaultSlabBytes(3 * MIB + 100));
        assertEquals(BlockPool.ALIGNMENT, BlockPool.defaultSlabBytes(BlockPool.ALIGNMENT + 1));
        assertThrows(IllegalArgumentException.class, () -> BlockPool.defaultSlabBytes(BlockPool.ALIGNMENT - 1));
        assertThrows(IllegalArgumentException.class, () -> BlockPool.defaultSlabBytes(0));
    }

    @Test
    void shouldMakeOneSlabOfTheWholeAlignedCapacityWhenSmallerThan4MiB() {
        try (BlockPool pool = BlockPool.allocateOffHeap(MIB + 100)) {
            assertEquals(1, pool.slabCount());
            assertEquals(MIB, pool.slabBytes());
            assertEquals(MIB, pool.capacityBytes());
            assertEquals(MIB, pool.memory().byteSize());
        }
    }

    @Test
    void shouldRoundCapacityDownToWholeSlabs() {
        try (BlockPool pool = BlockPool.allocateOffHeap(6 * MIB)) {
            assertEquals(4 * MIB, pool.slabBytes());
            assertEquals(1, pool.slabCount());
            assertEquals(4 * MIB, pool.capacityBytes());
        }
    }

    @Test
    void shouldRejectBlockSizesOutsideOneToSlabBytes() {
        try (BlockPool pool = BlockPool.allocateOffHeap(8 * MIB)) {
            assertThrows(IllegalArgumentException.class, () -> pool.allocate(0));
            assertThrows(IllegalArgumentException.class, () -> pool.allocate(-4096));
            assertThrows(IllegalArgumentException.class, () -> pool.allocate(pool.slabBytes() + 1));
            assertThrows(IllegalArgumentException.class, () -> pool.allocate(Long.MAX_VALUE));
            assertThrows(IllegalArgumentException.class, () -> pool.freeSlotsFor(0));
            assertThrows(IllegalArgumentException.class, () -> pool.canAllocate(pool.slabBytes() + 1, 1));
            assertThrows(IllegalArgumentException.class, () -> pool.canAllocate(4096, -1));
            assertEquals(0, pool.usedBytes());
            assertEquals(pool.slabCount(), pool.freeSlabCount());
            assertEquals(0, pool.allocate(pool.slabBytes()));
        }
    }

    @Test
    void shouldFillPoolExactlyToCapacityThenReturnMinusOne() {
        try (BlockPool pool = BlockPool.allocateOffHeap(16 * MIB)) {
            long block = 64 * KIB;
            int expected = (int) (pool.capacityBytes() / block);
            assertEquals(expected, pool.freeSlotsFor(block));
            assertTrue(pool.canAllocate(block, expected));
            assertFalse(pool.canAllocate(block, expected + 1));
            Set<Long> offsets = new HashSet<>();
            for (int i = 0; i < expected; i++) {
                long offset = pool.allocate(block);
                assertNotEquals(-1, offset, "allocation " + i);
                assertTrue(offsets.add(offset));
            }
            assertEquals(pool.capacityBytes(), pool.usedBytes());
            assertEquals(0, pool.freeSlabCount());
            assertEquals(0, pool.freeSlotsFor(block));
            assertEquals(0, pool.largestFreeBytes());
            assertFalse(pool.canAllocate(block, 1));
            assertTrue(pool.canAllocate(block, 0));
            assertEquals(-1, pool.allocate(block));
            assertEquals(-1, pool.allocate(4096));
            assertEquals(pool.capacityBytes(), pool.usedBytes());
        }
    }

    @Test
    void shouldReuseFreedBlock() {
        try (BlockPool pool = BlockPool.allocateOffHeap(4 * MIB)) {
            long block = MIB;
            long[] all = {pool.allocate(block), pool.allocate(block), pool.allocate(block), pool.allocate(block)};
            assertEquals(-1, pool.allocate(block));
            pool.free(all[2]);
            assertEquals(3 * block, pool.usedBytes());
            assertEquals(block, pool.largestFreeBytes());
            assertEquals(1, pool.freeSlotsFor(block));
            assertEquals(all[2], pool.allocate(block));
            assertEquals(-1, pool.allocate(block));
            assertEquals(4 * block, pool.usedBytes());
        }
    }

    @Test
    void shouldReturnEmptySlabToFreeListAndLetAnotherSizeClassUseIt() {
        try (BlockPool pool = BlockPool.allocateOffHeap(8 * MIB)) {
            assertEquals(2, pool.slabCount());
            long slab = pool.slabBytes();
            List<Long> small = new ArrayList<>();
            for (int i = 0; i < 2 * slab / (64 * KIB); i++) {
                small.add(pool.allocate(64 * KIB));
            }
            assertEquals(0, pool.freeSlabCount());
            assertEquals(-1, pool.allocate(MIB));
            assertEquals(0, pool.freeSlotsFor(MIB));
            // empty the second slab only: it goes back to the free-slab stack
            for (long offset : small) {
                if (offset >= slab) {
                    pool.free(offset);
                }
            }
            assertEquals(1, pool.freeSlabCount());
            assertEquals(slab, pool.largestFreeBytes());
            assertEquals(4, pool.freeSlotsFor(MIB));
            assertEquals(slab / (64 * KIB), pool.freeSlotsFor(64 * KIB));
            for (int i = 0; i < 4; i++) {
                long offset = pool.allocate(MIB);
                assertEquals(slab + i * MIB, offset);
            }
            assertEquals(-1, pool.allocate(MIB));
            assertEquals(-1, pool.allocate(64 * KIB));
            assertEquals(0, pool.freeSlabCount());
            assertEquals(2 * slab, pool.usedBytes());
        }
    }

    @Test
    void shouldRejectDoubleFreeAndForeignOffsetsWithoutCorruptingState() {
        try (BlockPool pool = BlockPool.allocateOffHeap(8 * MIB)) {
            long a = pool.allocate(64 * KIB);
            long b = pool.allocate(64 * KIB);
            long never = b + 64 * KIB; // a slot of a used slab that was never handed out
            pool.free(a);
            long used = pool.usedBytes();
            int freeSlabs = pool.freeSlabCount();
            int freeSlots = pool.freeSlotsFor(64 * KIB);

            long[] bad = {
                a, // double free
                never,
                b + 4096, // inside a live block, aligned
                b + 1, // misaligned
                -4096,
                pool.capacityBytes(),
                pool.slabBytes(), // a free slab
                Long.MAX_VALUE,
            };
            for (long offset : bad) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> pool.free(offset));
                assertTrue(e.getMessage().contains("offset " + offset), e.getMessage());
                assertThrows(IllegalArgumentException.class, () -> pool.block(offset, 1));
                assertEquals(used, pool.usedBytes());
                assertEquals(freeSlabs, pool.freeSlabCount());
                assertEquals(freeSlots, pool.freeSlotsFor(64 * KIB));
            }
            // the pool still works: a is handed out again, b frees once
            assertEquals(a, pool.allocate(64 * KIB));
            pool.free(b);
            assertThrows(IllegalArgumentException.class, () -> pool.free(b));
            pool.free(a);
            assertEquals(0, pool.usedBytes());
            assertEquals(pool.slabCount(), pool.freeSlabCount());
            assertThrows(IllegalArgumentException.class, () -> pool.free(a));
        }
    }

    @Test
    void shouldAgreeWithSimpleModelUnderRandomAllocationAndFree() {
        long slab = MIB;
        int slabs = 8;
        long[] sizes = {4096, 10_000, 256 * KIB}; // classes 4 KiB, 12 KiB (tail waste), 256 KiB
        long[] classes = {4096, 12_288, 256 * KIB};
        Random random = new Random(20_240_601L);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment memory = arena.allocate(slabs * slab, BlockPool.ALIGNMENT);
            BlockPool pool = BlockPool.wrap(memory, slab);
            TreeMap<Long, Long> live = new TreeMap<>(); // offset -> class bytes
            List<Long> liveList = new ArrayList<>();
            long[] slabClass = new long[slabs]; // 0 = free
            int[] slabLive = new int[slabs];
            long modelUsed = 0;
            long lastFreed = -1;
            int allocations = 0;
            int refusals = 0;

            for (int step = 0; step < 100_000; step++) {
                double allocShare = (step / 5_000) % 2 == 0 ? 0.62 : 0.38;
                int k = random.nextInt(3);
                if (liveList.isEmpty() || random.nextDouble() < allocShare) {
                    boolean predicted = pool.canAllocate(sizes[k], 1);
                    long offset = pool.allocate(sizes[k]);
                    assertEquals(predicted, offset != -1, "step " + step + ": canAllocate vs allocate");
                    if (offset == -1) {
                        refusals++;
                    } else {
                        allocations++;
                        long size = classes[k];
                        assertEquals(0, offset % BlockPool.ALIGNMENT);
                        assertEquals(0, offset % slab % size, "not at a slot boundary of its slab");
                        int s = (int) (offset / slab);
                        assertEquals(s, (int) ((offset + size - 1) / slab), "block crosses a slab boundary");
                        assertTrue(slabClass[s] == 0 || slabClass[s] == size, "slab " + s + " mixes classes");
                        Map.Entry<Long, Long> before = live.floorEntry(offset);
                        Map.Entry<Long, Long> after = live.ceilingEntry(offset);
                        assertTrue(
                                before == null || before.getKey() + before.getValue() <= offset, "overlaps " + before);
                        assertTrue(after == null || offset + size <= after.getKey(), "overlaps " + after);
                        live.put(offset, size);
                        liveList.add(offset);
                        slabClass[s] = size;
                        slabLive[s]++;
                        modelUsed += size;
                    }
                } else {
                    int i = random.nextInt(liveList.size());
                    long offset = liveList.get(i);
                    liveList.set(i, liveList.getLast());
                    liveList.removeLast();
                    pool.free(offset);
                    long size = live.remove(offset);
                    int s = (int) (offset / slab);
                    if (--slabLive[s] == 0) {
                        slabClass[s] = 0;
                    }
                    modelUsed -= size;
                    if (lastFreed != -1 && !live.containsKey(lastFreed) && random.nextInt(10) == 0) {
                        long stale = lastFreed;
                        assertThrows(IllegalArgumentException.class, () -> pool.free(stale));
                    }
                    lastFreed = offset;
                }

                assertEquals(modelUsed, pool.usedBytes(), "step " + step);
                int modelFreeSlabs = 0;
                for (int s = 0; s < slabs; s++) {
                    modelFreeSlabs += slabClass[s] == 0 ? 1 : 0;
                }
                assertEquals(modelFreeSlabs, pool.freeSlabCount(), "step " + step);
                long modelLargest = modelFreeSlabs > 0 ? slab : 0;
                for (int c = 0; c < 3; c++) {
                    long perSlab = slab / classes[c];
                    long expected = modelFreeSlabs * perSlab;
                    for (int s = 0; s < slabs; s++) {
                        if (slabClass[s] == classes[c]) {
                            expected += perSlab - slabLive[s];
                        }
                    }
                    assertEquals(expected, pool.freeSlotsFor(sizes[c]), "step " + step + " class " + classes[c]);
                    assertEquals(expected > 0, pool.canAllocate(sizes[c], 1));
                    assertTrue(pool.canAllocate(sizes[c], (int) expected));
                    assertFalse(pool.canAllocate(sizes[c], (int) expected + 1));
                    if (expected > 0) {
                        modelLargest = Math.max(modelLargest, classes[c]);
                    }
                }
                assertEquals(modelLargest, pool.largestFreeBytes(), "step " + step);

                if (step % 10_000 == 9_999) {
                    assertFreeSlotsCountIsWhatAllocateDelivers(pool, sizes[random.nextInt(3)]);
                }
            }
            assertTrue(allocations > 30_000, "allocations " + allocations);
            assertTrue(refusals > 1_000, "the pool was full often enough: refusals " + refusals);
            pool.close();
        }
    }

    /** Takes exactly freeSlotsFor(size) blocks, sees the next one refused, then gives them all back. */
    private static void assertFreeSlotsCountIsWhatAllocateDelivers(BlockPool pool, long size) {
        long used = pool.usedBytes();
        int freeSlabs = pool.freeSlabCount();
        int n = pool.freeSlotsFor(size);
        long[] taken = new long[n];
        for (int i = 0; i < n; i++) {
            taken[i] = pool.allocate(size);
            assertNotEquals(-1, taken[i], "allocation " + i + " of " + n);
        }
        assertEquals(-1, pool.allocate(size));
        assertEquals(0, pool.freeSlotsFor(size));
        for (long offset : taken) {
            pool.free(offset);
        }
        assertEquals(used, pool.usedBytes());
        assertEquals(freeSlabs, pool.freeSlabCount());
        assertEquals(n, pool.freeSlotsFor(size));
    }

    @Test
    void shouldWrapCallerSegmentAndLeaveItAliveAfterClose() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment memory = arena.allocate(5 * MIB + 123, BlockPool.ALIGNMENT);
            BlockPool pool = BlockPool.wrap(memory, 2 * MIB);
            assertEquals(2, pool.slabCount());
            assertEquals(4 * MIB, pool.capacityBytes());
            assertEquals(memory.address(), pool.memory().address());
            long offset = pool.allocate(MIB);
            pool.block(offset, MIB).fill((byte) 7);
            assertEquals(7, memory.get(ValueLayout.JAVA_BYTE, offset + MIB - 1));
            pool.close();
            pool.close();
            assertThrows(IllegalStateException.class, () -> pool.allocate(4096));
            assertThrows(IllegalStateException.class, () -> pool.free(offset));
            memory.set(ValueLayout.JAVA_BYTE, memory.byteSize() - 1, (byte) 1); // still the caller's, still alive
            assertEquals(7, memory.get(ValueLayout.JAVA_BYTE, offset));
        }
    }

    @Test
    void shouldRejectWrappingHeapMisalignedOrTooSmallMemory() {
        assertThrows(IllegalArgumentException.class, () -> BlockPool.wrap(MemorySegment.ofArray(new byte[8192]), 4096));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment memory = arena.allocate(4 * MIB, BlockPool.ALIGNMENT);
            assertThrows(IllegalArgumentException.class, () -> BlockPool.wrap(memory.asSlice(64), MIB));
            assertThrows(IllegalArgumentException.class, () -> BlockPool.wrap(memory, MIB + 1));
            assertThrows(IllegalArgumentException.class, () -> BlockPool.wrap(memory, 0));
            assertThrows(IllegalArgumentException.class, () -> BlockPool.wrap(memory, 8 * MIB));
            assertThrows(IllegalArgumentException.class, () -> BlockPool.wrap(memory.asReadOnly(), MIB));
        }
    }

    @Test
    void shouldServeAndCheckOffsetsBeyond32BitPageNumbers() {
        long slab = 256 * MIB;
        long size = 16 * 1024 * GIB + slab; // more than 2^32 pages of 4 KiB: offsets need 64-bit arithmetic throughout
        // address space only: nothing here reads or writes the memory
        BlockPool pool = BlockPool.wrap(MemorySegment.NULL.reinterpret(size), slab);
        assertEquals(size / slab, pool.slabCount());
        long last = -1;
        for (int i = 0; i < pool.slabCount(); i++) {
            last = pool.allocate(slab);
        }
        assertEquals(pool.capacityBytes() - slab, last);
        assertEquals(-1, pool.allocate(4096));
        pool.free(last);
        assertThrows(IllegalArgumentException.class, () -> pool.free(pool.capacityBytes() - slab));
        long small = pool.allocate(12_288);
        assertEquals(pool.capacityBytes() - slab, small);
        long next = pool.allocate(12_288);
        assertEquals(small + 12_288, next);
        assertThrows(IllegalArgumentException.class, () -> pool.free(next + 4096));
        assertThrows(
                IllegalArgumentException.class, () -> pool.free(next - (1L << 32))); // same low 32 bits, other slab
        pool.free(next);
        pool.free(small);
        assertEquals(pool.capacityBytes() - slab, pool.usedBytes());
        pool.close();
    }

    @Test
    void shouldMakeSlicesUnusableWhenAnAllocatedPoolIsClosed() {
        BlockPool pool = BlockPool.allocateOffHeap(4 * MIB);
        MemorySegment block = pool.block(pool.allocate(4096), 4096);
        pool.close();
        assertThrows(IllegalStateException.class, () -> block.get(ValueLayout.JAVA_BYTE, 0));
        assertThrows(IllegalStateException.class, () -> pool.block(0, 1));
    }

    @Test
    void shouldBoundsCheckBlockSlicesAgainstTheAllocation() {
        try (BlockPool pool = BlockPool.allocateOffHeap(8 * MIB)) {
            long offset = pool.allocate(5000); // class 8 KiB
            assertEquals(8192, pool.block(offset, 8192).byteSize());
            assertEquals(0, pool.block(offset, 0).byteSize());
            assertThrows(IndexOutOfBoundsException.class, () -> pool.block(offset, 8193));
            assertThrows(IndexOutOfBoundsException.class, () -> pool.block(offset, -1));
            MemorySegment slice = pool.block(offset, 5000);
            assertThrows(IndexOutOfBoundsException.class, () -> slice.get(ValueLayout.JAVA_BYTE, 5000));
            assertThrows(IllegalArgumentException.class, () -> pool.block(offset + 8192, 1)); // never allocated
            pool.free(offset);
            assertThrows(IllegalArgumentException.class, () -> pool.block(offset, 1));
        }
    }

    @Test
    void shouldKeepBytesWrittenIntoOneBlockOutOfEveryOtherBlock() {
        try (BlockPool pool = BlockPool.allocateOffHeap(16 * MIB)) {
            long[] sizes = {4096, 12_288, 64 * KIB, 256 * KIB}; // one 4 MiB slab per class
            List<long[]> blocks = new ArrayList<>(); // {offset, size}
            for (int round = 0; round < 40; round++) {
                long size = sizes[round % sizes.length];
                long offset = pool.allocate(size);
                assertNotEquals(-1, offset);
                blocks.add(new long[] {offset, size});
            }
            // free every third block and reuse the room with other classes
            for (int i = blocks.size() - 1; i >= 0; i -= 3) {
                pool.free(blocks.remove(i)[0]);
            }
            for (int round = 0; round < 10; round++) {
                long size = sizes[(round + 1) % sizes.length];
                long offset = pool.allocate(size);
                assertNotEquals(-1, offset);
                blocks.add(new long[] {offset, size});
            }
            for (int i = 0; i < blocks.size(); i++) {
                long[] b = blocks.get(i);
                pool.block(b[0], b[1]).fill((byte) (i + 1));
            }
            for (int i = 0; i < blocks.size(); i++) {
                long[] b = blocks.get(i);
                MemorySegment segment = pool.block(b[0], b[1]);
                byte[] bytes = segment.toArray(ValueLayout.JAVA_BYTE);
                for (int j = 0; j < bytes.length; j++) {
                    if (bytes[j] != (byte) (i + 1)) {
                        throw new AssertionError("block " + i + " at " + b[0] + " byte " + j + " is " + bytes[j]);
                    }
                }
            }
        }
    }
}
