package io.pegaflow.store;

import static io.pegaflow.store.StoreFixture.PARTIAL_TIMEOUT_NS;
import static io.pegaflow.store.StoreFixture.hashes;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Saves that fill a block's slots in parts, across requests, and the sweep of the parts that stop arriving. */
class BlockStorePartialSaveTest {
    /** 4 layers, 1 rank: 4 slots of 1 KiB, one 4 KiB block. */
    static final NamespaceLayout LAYERS = new NamespaceLayout("ns", 4, 1, 1024);

    @Test
    void shouldSealABlockOnlyOnceTwoSavesTogetherFillEverySlot() {
        try (StoreFixture f = new StoreFixture(1)) {
            SaveReservation first = f.store.reserveForSave(LAYERS, new int[] {7}, hashes("a"), new int[] {0, 2});
            assertArrayEquals(new int[] {0, 2}, first.slots(0));
            assertEquals(0, f.store.completeSave(first, true));
            assertFalse(f.store.isSealed("ns", StoreFixture.hash("a")));
            assertEquals(1, f.store.inFlightBlocks());

            // The second names a slot that arrived already: only the missing ones are copied.
            SaveReservation second = f.store.reserveForSave(LAYERS, new int[] {7}, hashes("a"), new int[] {1, 2, 3});
            assertArrayEquals(new int[] {1, 3}, second.slots(0));
            assertEquals(1, f.store.completeSave(second, true));
            assertTrue(f.store.isSealed("ns", StoreFixture.hash("a")));
            assertEquals(0, f.store.inFlightBlocks());
        }
    }

    @Test
    void shouldFreeANewBlockWhoseOnlyCopyFailed() {
        try (StoreFixture f = new StoreFixture(1)) {
            SaveReservation r = f.store.reserveForSave(LAYERS, new int[] {0, 1}, hashes("a", "b"), new int[] {0, 1});
            assertEquals(0, f.store.completeSave(r, false));
            assertEquals(0, f.store.inFlightBlocks());
            assertEquals(0, f.pool.usedBytes());
        }
    }

    @Test
    void shouldRejectASlotOutsideTheLayoutAndReserveNothing() {
        try (StoreFixture f = new StoreFixture(1)) {
            assertThrows(
                    ArrayIndexOutOfBoundsException.class,
                    () -> f.store.reserveForSave(LAYERS, new int[] {0}, hashes("a"), new int[] {0, 64}));
            assertEquals(0, f.store.inFlightBlocks());
            assertEquals(0, f.pool.usedBytes());
        }
    }

    @Test
    void shouldSweepOnlyThePartialBlocksThatStoppedReceivingSlots() {
        try (StoreFixture f = new StoreFixture(1)) {
            for (String name : new String[] {"old1", "old2"}) {
                f.store.completeSave(f.store.reserveForSave(LAYERS, new int[] {0}, hashes(name), new int[] {0}), true);
            }
            f.clock.addAndGet(PARTIAL_TIMEOUT_NS / 2);
            f.store.completeSave(f.store.reserveForSave(LAYERS, new int[] {0}, hashes("new"), new int[] {0}), true);
            SaveReservation copying = f.store.reserveForSave(LAYERS, new int[] {0}, hashes("busy"), new int[] {0});
            f.clock.addAndGet(PARTIAL_TIMEOUT_NS / 2);

            f.store.sweep();

            assertEquals(2, f.store.counters().partialDropped(), "old1 and old2, not new nor busy (in flight)");
            assertEquals(2, f.store.inFlightBlocks());
            f.store.completeSave(copying, true);
            f.clock.addAndGet(PARTIAL_TIMEOUT_NS);
            f.store.sweep();
            assertEquals(4, f.store.counters().partialDropped());
            assertEquals(0, f.store.inFlightBlocks());
            assertEquals(0, f.pool.usedBytes());
        }
    }
}
