package io.pegaflow.store;

import static io.pegaflow.store.StoreFixture.allSlots;
import static io.pegaflow.store.StoreFixture.hash;
import static io.pegaflow.store.StoreFixture.hashes;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.store.pool.BlockPool;
import java.lang.foreign.Arena;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A store over a pool of two partitions (the node's pools of two NUMA nodes): saves land in the pool they prefer,
 * a full preferred pool evicts its own blocks first, then spills to the other (counted), and only both full refuses.
 */
@Timeout(30)
class BlockStoreNumaPoolsTest {
    static final long SLAB = StoreFixture.SLAB_BYTES; // 16 blocks of 4 KiB
    static final NamespaceLayout SMALL = StoreFixture.SMALL;

    final Arena arena = Arena.ofShared();
    final AtomicLong clock = new AtomicLong(1_000_000_000L);
    final BlockPool pool = BlockPool.wrap(arena.allocate(4 * SLAB, BlockPool.ALIGNMENT), SLAB, 2); // 2 slabs each
    final BlockStore store = new BlockStore(pool, StoreFixture.PARTIAL_TIMEOUT_NS, clock::get);

    @AfterEach
    void close() {
        store.close();
        pool.close();
        arena.close();
    }

    /** Saves whole blocks into {@code preferred} and seals them; returns the reservation (its entries). */
    private SaveReservation save(int preferred, byte[][] hashes) {
        int[] ids = IntStream.range(0, hashes.length).toArray();
        SaveReservation r = store.reserveForSave(SMALL, ids, HashList.of(hashes), allSlots(SMALL), preferred);
        store.completeSave(r, true);
        return r;
    }

    private int poolOf(String name) {
        return store.poolOf(store.describeSealed(SMALL.namespace(), hash(name))
                .orElseThrow()
                .poolOffset());
    }

    @Test
    void shouldSplitThePoolIntoPartitionsOfWholeSlabs() {
        assertEquals(2, pool.partitions());
        assertEquals(0, pool.partitionOffset(0));
        assertEquals(2 * SLAB, pool.partitionOffset(1));
        assertEquals(2 * SLAB, pool.partitionCapacityBytes(1));
        long[][] ranges = BlockPool.partitionRanges(5 * SLAB, SLAB, 2);
        assertEquals(0, ranges[0][0]);
        assertEquals(2 * SLAB, ranges[0][1]);
        assertEquals(2 * SLAB, ranges[1][0]);
        assertEquals(3 * SLAB, ranges[1][1], "the last partition takes the remainder");
        assertEquals(2, store.poolSnapshots().size());
        assertThrows(IllegalArgumentException.class, () -> pool.allocate(4096, 2));
    }

    @Test
    void shouldPlaceASaveInThePoolItPrefers() {
        save(1, hashes("p", 3));
        save(0, hashes("q", 2));
        for (int i = 0; i < 3; i++) {
            assertEquals(1, poolOf("p" + i));
        }
        assertEquals(0, poolOf("q0"));
        assertEquals(3 * 4096, store.poolSnapshots().get(1).usedBytes());
        assertEquals(2 * 4096, store.poolSnapshots().get(0).usedBytes());
        assertEquals(0, store.counters().remotePoolBlocks());
        // Found wherever they are.
        assertEquals(
                5,
                store.query(SMALL.namespace(), new byte[][] {hash("p0"), hash("p1"), hash("p2")}, 0)
                                .hitCount()
                        + store.query(SMALL.namespace(), new byte[][] {hash("q0"), hash("q1")}, 0)
                                .hitCount());
        BlockEntry[] pinned = store.pinForLoad(SMALL.namespace(), new byte[][] {hash("p0"), hash("q1")}, 0);
        assertNotNull(pinned[0]);
        assertNotNull(pinned[1]);
        store.unpinAll(pinned);
    }

    @Test
    void shouldEvictTheLeastRecentlyUsedBlocksOfTheFullPreferredPoolBeforeUsingTheOther() {
        save(0, hashes("a", 32)); // pool 0 full (2 slabs of 16)
        clock.addAndGet(1);
        save(0, hashes("b", 4));
        assertEquals(4, store.counters().evictions(), "evicted in pool 0, not spilled to the empty pool 1");
        assertEquals(0, store.counters().remotePoolBlocks());
        assertEquals(0, store.poolSnapshots().get(1).usedBytes());
        for (int i = 0; i < 4; i++) {
            assertFalse(store.isSealed(SMALL.namespace(), hash("a" + i)), "the oldest went");
            assertEquals(0, poolOf("b" + i));
        }
    }

    @Test
    void shouldSpillToTheOtherPoolAndCountItWhenThePreferredPoolCannotMakeRoom() {
        save(0, hashes("a", 30));
        // Lease every block of pool 0: nothing there can be evicted.
        assertEquals(30, store.query(SMALL.namespace(), hashes("a", 30), 60_000).hitCount());
        save(0, hashes("b", 5)); // 2 free slots in pool 0, 3 more go to pool 1
        assertEquals(0, store.counters().evictions());
        assertEquals(3, store.counters().remotePoolBlocks());
        int inPool1 = 0;
        for (int i = 0; i < 5; i++) {
            assertTrue(store.isSealed(SMALL.namespace(), hash("b" + i)));
            inPool1 += poolOf("b" + i);
        }
        assertEquals(3, inPool1);
        assertEquals(32 * 4096, store.poolSnapshots().get(0).usedBytes());
    }

    @Test
    void shouldRefuseWithAPerPoolAccountAndChangeNothingWhenNoPoolCanMakeRoom() {
        save(0, hashes("a", 32));
        save(1, hashes("c", 30));
        store.query(SMALL.namespace(), hashes("a", 32), 60_000);
        store.query(SMALL.namespace(), hashes("c", 30), 60_000);
        PoolFullException e = assertThrows(PoolFullException.class, () -> save(0, hashes("b", 3)));
        assertTrue(e.getMessage().contains("per pool 0: 131072 of 131072, 1: 122880 of 131072"), e.getMessage());
        assertEquals(0, store.counters().evictions());
        assertEquals(62 * 4096, pool.usedBytes());
        assertFalse(store.isSealed(SMALL.namespace(), hash("b0")));
    }

    @Test
    void shouldKeepOnePoolStoresAsTheyWere() {
        try (StoreFixture one = new StoreFixture(2)) {
            assertEquals(1, one.pool.partitions());
            assertEquals(2, one.save(SMALL, "x", "y"));
            assertEquals(1, one.store.poolSnapshots().size());
            assertEquals(
                    0,
                    one.store.poolOf(one.store
                            .describeSealed("ns", hash("x"))
                            .orElseThrow()
                            .poolOffset()));
            assertThrows(
                    IllegalArgumentException.class,
                    () -> one.store.reserveForSave(SMALL, new int[] {0}, HashList.of(hashes("z")), allSlots(SMALL), 1));
        }
    }
}
