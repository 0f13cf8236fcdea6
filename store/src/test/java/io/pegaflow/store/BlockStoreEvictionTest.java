package io.pegaflow.store;

import static io.pegaflow.store.StoreFixture.BIG;
import static io.pegaflow.store.StoreFixture.SMALL;
import static io.pegaflow.store.StoreFixture.hash;
import static io.pegaflow.store.StoreFixture.hashes;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class BlockStoreEvictionTest {
    /** Saves {@code prefix0..prefix(n-1)} one request each, so they are used in that order. */
    private static void saveEach(StoreFixture f, NamespaceLayout layout, String prefix, int n) {
        for (int i = 0; i < n; i++) {
            assertEquals(1, f.save(layout, prefix + i));
        }
    }

    @Test
    void shouldEvictLeastRecentlyUsedWhenPoolIsFull() {
        try (StoreFixture f = new StoreFixture(1)) {
            saveEach(f, SMALL, "a", 16);
            assertEquals(0, f.pool.freeSlotsFor(SMALL.blockBytes()));
            f.store.query("ns", hashes("a0"), 0); // a0 is now the most recently used
            f.save(SMALL, "b0");
            assertFalse(f.sealed(SMALL, "a1"), "a1 was the least recently used");
            assertTrue(f.sealed(SMALL, "a0"));
            f.save(SMALL, "b1", "b2");
            assertFalse(f.sealed(SMALL, "a2"));
            assertFalse(f.sealed(SMALL, "a3"));
            assertTrue(f.sealed(SMALL, "a4"));
            assertEquals(3, f.store.counters().evictions());
            assertEquals(16, f.store.sealedBlocks());
        }
    }

    @Test
    void shouldCountTheEndOfAPinAndASaveNamingABlockAsUses() {
        try (StoreFixture f = new StoreFixture(1)) {
            saveEach(f, SMALL, "a", 16);
            QueryResult leased = f.store.query("ns", hashes("a0"), 60_000);
            assertTrue(f.store.release(leased.leaseId()));
            var loading = f.store.pinForLoad("ns", hashes("a1"), 0);
            f.store.unpinAll(loading);
            assertEquals(0, f.save(SMALL, "a2"), "already sealed: nothing to save");
            f.save(SMALL, "b0", "b1", "b2");
            // a3, a4, a5 were least recently used; a0 (lease released), a1 (load done) and a2 (saved again) stay.
            for (String kept : new String[] {"a0", "a1", "a2", "a6"}) {
                assertTrue(f.sealed(SMALL, kept), kept);
            }
            for (String gone : new String[] {"a3", "a4", "a5"}) {
                assertFalse(f.sealed(SMALL, gone), gone);
            }
        }
    }

    @Test
    void shouldNeverEvictLeasedOrPinnedBlocksAndRefuseWithoutChangingAnything() {
        try (StoreFixture f = new StoreFixture(1)) {
            saveEach(f, SMALL, "a", 16);
            QueryResult lease = f.store.query("ns", hashes("a", 8), 60_000); // a0..a7 leased
            BlockEntry[] loading = f.store.pinForLoad("ns", hashes("a8", "a9", "a10", "a11", "a12", "a13", "a14"), 0);
            PoolSnapshot before = f.store.poolSnapshot();
            assertThrows(PoolFullException.class, () -> f.save(SMALL, "b0", "b1"), "only a15 is evictable");
            assertEquals(before, f.store.poolSnapshot());
            assertEquals(16, f.store.sealedBlocks());
            assertEquals(0, f.store.counters().evictions());
            assertEquals(1, f.store.counters().saveRejectedFull());
            assertEquals(0, f.store.inFlightBlocks(), "a refused save leaves no partial block");

            f.save(SMALL, "b0");
            assertFalse(f.sealed(SMALL, "a15"));
            for (int i = 0; i < 15; i++) {
                assertTrue(f.sealed(SMALL, "a" + i), "a" + i);
            }
            f.store.unpinAll(loading); // the load ends: a8..a14 become evictable, as used now
            f.save(SMALL, "b1");
            assertFalse(f.sealed(SMALL, "b0"), "b0 was last used before the load ended");
            f.save(SMALL, "b2");
            assertFalse(f.sealed(SMALL, "a8"));
            assertTrue(f.sealed(SMALL, "a9"));
            assertTrue(f.sealed(SMALL, "a0"), "still leased");
            assertTrue(f.store.release(lease.leaseId()));
        }
    }

    @Test
    void shouldEmptyTheSlabOfAnotherClassWithFewestBlocksWhenItsOwnClassHasNothingToEvict() {
        try (StoreFixture f = new StoreFixture(3)) {
            saveEach(f, BIG, "big", 11); // slab 0: 8 blocks of 8 KiB (full), slab 1: 3 blocks
            saveEach(f, SMALL, "s", 16); // slab 2: 16 blocks of 4 KiB (full)
            QueryResult lease = f.store.query("ns", hashes("s", 16), 60_000);
            assertEquals(16, lease.hitCount());

            f.save(SMALL, "x");
            assertEquals(3, f.store.counters().evictions(), "only slab 1's three blocks go");
            for (int i = 0; i < 8; i++) {
                assertTrue(f.sealed(BIG, "big" + i), "slab 0 is kept");
            }
            for (int i = 8; i < 11; i++) {
                assertFalse(f.sealed(BIG, "big" + i));
            }
            assertTrue(f.sealed(SMALL, "x"));
            assertTrue(f.store.release(lease.leaseId()));
        }
    }

    @Test
    void shouldSkipSlabsHoldingAPinnedBlockAndRefuseWhenNoSlabCanBeEmptied() {
        try (StoreFixture f = new StoreFixture(3)) {
            saveEach(f, BIG, "big", 11);
            saveEach(f, SMALL, "s", 16);
            QueryResult smalls = f.store.query("ns", hashes("s", 16), 60_000);
            QueryResult big9 = f.store.query("big", hashes("big9"), 60_000); // slab 1 cannot be emptied now

            f.save(SMALL, "x");
            assertEquals(8, f.store.counters().evictions(), "slab 0 emptied instead");
            assertTrue(f.sealed(BIG, "big9"));
            assertTrue(f.sealed(BIG, "big8"), "slab 1 keeps its other blocks too");

            // Slab 0 now serves 4 KiB blocks: x and 15 free slots. 17 new blocks: 15 free + x evicted leave one more to
            // find, and slab 1 (big9 leased) cannot be emptied.
            PoolSnapshot before = f.store.poolSnapshot();
            assertThrows(PoolFullException.class, () -> f.save(SMALL, hashes("y", 17)));
            assertEquals(before, f.store.poolSnapshot());
            assertEquals(8, f.store.counters().evictions());
            f.store.release(smalls.leaseId());
            f.store.release(big9.leaseId());
        }
    }

    @Test
    void shouldEmptyOnlyAsManySlabsAsNeededFewestBlocksFirst() {
        try (StoreFixture f = new StoreFixture(4)) {
            saveEach(f, BIG, "big", 8 + 5 + 2); // slabs 0 (8), 1 (5), 2 (2)
            saveEach(f, SMALL, "s", 16); // slab 3
            QueryResult lease = f.store.query("ns", hashes("s", 16), 60_000);
            f.save(SMALL, hashes("x", 17)); // needs two slabs: slab 2 (2 blocks), then slab 1 (5 blocks)
            assertEquals(7, f.store.counters().evictions());
            for (int i = 0; i < 8; i++) {
                assertTrue(f.sealed(BIG, "big" + i), "slab 0 is kept");
            }
            for (int i = 8; i < 15; i++) {
                assertFalse(f.sealed(BIG, "big" + i));
            }
            f.store.release(lease.leaseId());
        }
    }

    @Test
    void shouldPreferItsOwnClassBeforeEmptyingSlabsOfAnother() {
        try (StoreFixture f = new StoreFixture(2)) {
            saveEach(f, BIG, "big", 1); // slab 0: one 8 KiB block
            saveEach(f, SMALL, "s", 16); // slab 1
            f.save(SMALL, "x");
            assertTrue(f.sealed(BIG, "big0"), "the 4 KiB class evicts its own least recently used block first");
            assertFalse(f.sealed(SMALL, "s0"));
            assertEquals(1, f.store.counters().evictions());
        }
    }

    @Test
    void shouldKeepBlocksOfTheSameRequestWhileMakingRoomForItsNewOnes() {
        try (StoreFixture f = new StoreFixture(1)) {
            saveEach(f, SMALL, "a", 16);
            // a0 is the least recently used; the request names it with a new block: a0 must not be the victim.
            assertEquals(1, f.save(SMALL, hashes("a0", "n0")));
            assertTrue(f.sealed(SMALL, "a0"));
            assertFalse(f.sealed(SMALL, "a1"));
            assertTrue(f.sealed(SMALL, "n0"));
        }
    }

    @Test
    void shouldEvictInLruOrderAcrossManyBlocksAndKeepCountsRight() {
        try (StoreFixture f = new StoreFixture(8)) { // 128 small blocks
            saveEach(f, SMALL, "a", 128);
            QueryResult lease = f.store.query("ns", hashes("a", 64), 60_000); // the older half leased
            for (int round = 0; round < 64; round++) {
                f.save(SMALL, "n" + round);
                assertFalse(f.sealed(SMALL, "a" + (64 + round)), "round " + round);
                assertTrue(f.sealed(SMALL, "a" + 0));
            }
            assertEquals(64, f.store.counters().evictions());
            assertEquals(128, f.store.sealedBlocks());
            assertThrows(PoolFullException.class, () -> f.save(SMALL, hashes("z", 65)));
            assertTrue(f.store.release(lease.leaseId()));
            f.save(SMALL, hashes("z", 65));
            assertEquals(128, f.store.sealedBlocks());
            assertTrue(f.store.isSealed("ns", hash("z64")));
        }
    }
}
