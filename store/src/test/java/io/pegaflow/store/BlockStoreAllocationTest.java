package io.pegaflow.store;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * The store's hot path reads a request's hashes in place (one packed array) and allocates per request, not per
 * block: measured with the JVM's per-thread allocation counter over a real store.
 */
class BlockStoreAllocationTest {
    private static final int BLOCKS = 4096;
    private static final NamespaceLayout TINY = StoreFixture.SMALL; // 4 KiB blocks, 16 per slab

    private static HashList packedHashes(int n, int seed) {
        ByteBuffer data = ByteBuffer.allocate(n * 32);
        for (int i = 0; i < n; i++) {
            data.putInt(i * 32, i * 31 + seed).putInt(i * 32 + 8, seed);
        }
        return HashList.packed(data.array(), 32);
    }

    private static long allocatedBytes(Runnable work) {
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long tid = Thread.currentThread().threadId();
        long before = threads.getThreadAllocatedBytes(tid);
        work.run();
        return threads.getThreadAllocatedBytes(tid) - before;
    }

    @Test
    void shouldAllocateNothingPerBlockWhenSavingQueryingAndPinningSealedBlocks() {
        try (StoreFixture f = new StoreFixture(BLOCKS / 16 + 4)) {
            int[] ids = IntStream.range(0, BLOCKS).toArray();
            int[] slots = {0};
            HashList hashes = packedHashes(BLOCKS, 7);
            SaveReservation first = f.store.reserveForSave(TINY, ids, hashes, slots);
            assertEquals(BLOCKS, f.store.completeSave(first, true));
            for (int warm = 0; warm < 300; warm++) { // let the JIT settle (escape analysis changes the counts)
                f.store.completeSave(f.store.reserveForSave(TINY, ids, hashes, slots), true);
                f.store.unpinAll(f.store.pinForLoad("ns", hashes, 0));
                f.store.query("ns", hashes, 0);
            }
            long save = allocatedBytes(() -> {
                SaveReservation again = f.store.reserveForSave(TINY, ids, hashes, slots);
                assertEquals(0, again.count(), "every block is sealed: nothing to copy");
                f.store.completeSave(again, true);
            });
            long query = allocatedBytes(
                    () -> assertEquals(BLOCKS, f.store.query("ns", hashes, 0).hitCount()));
            long pin = allocatedBytes(() -> f.store.unpinAll(f.store.pinForLoad("ns", hashes, 0)));
            // One reference array of BLOCKS entries (<= 8 bytes each) plus a few small objects per call; a key or
            // record per block would cost several times that.
            long perRequest = 8L * BLOCKS + 4096;
            assertTrue(save <= perRequest, "a save of sealed blocks allocated " + save + " bytes");
            assertTrue(query <= perRequest, "a query allocated " + query + " bytes");
            assertTrue(pin <= perRequest, "a pin for load allocated " + pin + " bytes");
        }
    }

    @Test
    void shouldAnswerAllSealedWithoutAllocatingAndNotWhenOneBlockIsMissingOrUnsealed() {
        try (StoreFixture f = new StoreFixture(BLOCKS / 16 + 4)) {
            int[] ids = IntStream.range(0, BLOCKS).toArray();
            HashList hashes = packedHashes(BLOCKS, 11);
            f.store.completeSave(f.store.reserveForSave(TINY, ids, hashes, new int[] {0}), true);
            for (int warm = 0; warm < 300; warm++) {
                assertTrue(f.store.touchIfAllSealed("ns", hashes));
            }
            long check = allocatedBytes(() -> assertTrue(f.store.touchIfAllSealed("ns", hashes)));
            assertTrue(check <= 1024, "the all-sealed check allocated " + check + " bytes");
            assertFalse(f.store.touchIfAllSealed("other-ns", hashes));
            assertFalse(f.store.touchIfAllSealed("ns", HashList.of(new byte[0][])), "no blocks: not a fast path");
            HashList withNew = packedHashes(BLOCKS + 1, 11); // the same hashes and one more
            assertFalse(f.store.touchIfAllSealed("ns", withNew));
            SaveReservation open =
                    f.store.reserveForSave(TINY, new int[] {0}, HashList.of(withNew.copy(BLOCKS)), new int[] {0});
            assertFalse(f.store.touchIfAllSealed("ns", HashList.of(withNew.copy(BLOCKS))), "in flight is not sealed");
            f.store.completeSave(open, true);
            assertTrue(f.store.touchIfAllSealed("ns", withNew));
        }
    }

    @Test
    void shouldCopyARepeatedHashOnceAndKeyBlocksByTheirBytesWhateverTheForm() {
        try (StoreFixture f = new StoreFixture(4)) {
            byte[] data = new byte[3 * 32];
            data[0] = 1;
            data[32] = 2;
            data[64] = 1; // the third hash repeats the first
            HashList packed = HashList.packed(data, 32);
            SaveReservation r = f.store.reserveForSave(TINY, new int[] {5, 6, 5}, packed, new int[] {0});
            assertEquals(2, r.count(), "the repeated hash is copied once");
            assertArrayEquals(new int[] {5, 6}, new int[] {r.blockId(0), r.blockId(1)});
            assertEquals(2, f.store.completeSave(r, true));
            assertTrue(f.store.isSealed("ns", packed.copy(2)), "a packed hash and its copy name the same block");
            assertEquals(
                    2,
                    f.store
                            .query("ns", HashList.of(packed.copy(0), packed.copy(1)), 0)
                            .hitCount());
        }
    }
}
