package io.pegaflow.store;

import static io.pegaflow.store.StoreFixture.SMALL;
import static io.pegaflow.store.StoreFixture.hash;
import static io.pegaflow.store.StoreFixture.hashes;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

class BlockStoreIncomingTest {
    @Test
    void shouldKeepAnIncomingBlockInvisibleUntilCommitted() {
        try (StoreFixture f = new StoreFixture(1)) {
            IncomingBlock in = f.store.reserveIncoming(SMALL, hash("x")).orElseThrow();
            BlockDescriptor where = in.descriptor();
            assertEquals(new BlockKey("ns", hash("x")), where.key());
            assertEquals(SMALL.blockBytes(), where.lengthBytes());
            // The transport writes the bytes where the descriptor says.
            MemorySegment target = f.pool.memory().asSlice(where.poolOffset(), where.lengthBytes());
            target.fill((byte) 0x5a);

            assertEquals(0, f.store.query("ns", hashes("x"), 60_000).hitCount());
            assertFalse(f.sealed(SMALL, "x"));
            assertTrue(f.store.describeSealed("ns", hash("x")).isEmpty());
            assertNull(f.store.pinForLoad("ns", hashes("x"), 0)[0]);
            assertEquals(1, f.store.incomingBlocks());
            assertEquals(1, f.store.inFlightBlocks());
            assertEquals(0, f.store.sealedBlocks());

            f.store.commitIncoming(in);
            assertTrue(f.sealed(SMALL, "x"));
            assertEquals(1, f.store.query("ns", hashes("x"), 0).hitCount());
            assertEquals(where, f.store.describeSealed("ns", hash("x")).orElseThrow());
            BlockEntry loaded = f.store.pinForLoad("ns", hashes("x"), 0)[0];
            assertEquals((byte) 0x5a, f.pool.memory().get(ValueLayout.JAVA_BYTE, loaded.offset() + 4095));
            f.store.unpinAll(new BlockEntry[] {loaded});
            assertEquals(0, f.store.incomingBlocks());
            assertEquals(1, f.store.counters().incomingCommitted());
            assertEquals(1, f.store.counters().insertions());
        }
    }

    @Test
    void shouldLeaveNothingBehindWhenAborted() {
        try (StoreFixture f = new StoreFixture(1)) {
            PoolSnapshot empty = f.store.poolSnapshot();
            IncomingBlock in = f.store.reserveIncoming(SMALL, hash("x")).orElseThrow();
            assertEquals(4096, f.store.poolSnapshot().usedBytes());
            f.store.abortIncoming(in);
            assertEquals(empty, f.store.poolSnapshot());
            assertEquals(0, f.store.inFlightBlocks());
            assertFalse(f.sealed(SMALL, "x"));
            assertEquals(1, f.store.counters().incomingAborted());
            // The key is free again: a save or another transfer may bring the block.
            assertEquals(1, f.save(SMALL, "x"));
        }
    }

    @Test
    void shouldRefuseASecondCommitOrAbortAndChangeNothing() {
        try (StoreFixture f = new StoreFixture(1)) {
            IncomingBlock committed = f.store.reserveIncoming(SMALL, hash("c")).orElseThrow();
            f.store.commitIncoming(committed);
            PoolSnapshot pool = f.store.poolSnapshot();
            IllegalStateException twice =
                    assertThrows(IllegalStateException.class, () -> f.store.commitIncoming(committed));
            assertTrue(twice.getMessage().contains("committed already"), twice.getMessage());
            assertThrows(IllegalStateException.class, () -> f.store.abortIncoming(committed));
            assertTrue(f.sealed(SMALL, "c"), "an abort after the commit does not remove the block");
            assertEquals(pool, f.store.poolSnapshot());
            assertEquals(1, f.store.sealedBlocks());

            IncomingBlock aborted = f.store.reserveIncoming(SMALL, hash("a")).orElseThrow();
            f.store.abortIncoming(aborted);
            assertThrows(IllegalStateException.class, () -> f.store.abortIncoming(aborted));
            IllegalStateException late =
                    assertThrows(IllegalStateException.class, () -> f.store.commitIncoming(aborted));
            assertTrue(late.getMessage().contains("aborted already"), late.getMessage());
            assertFalse(f.sealed(SMALL, "a"));
            assertEquals(pool, f.store.poolSnapshot());
            assertEquals(1, f.store.counters().incomingCommitted());
            assertEquals(1, f.store.counters().incomingAborted());
        }
    }

    @Test
    void shouldRefuseABlockReservedInAnotherStore() {
        try (StoreFixture f = new StoreFixture(1);
                StoreFixture g = new StoreFixture(1)) {
            IncomingBlock in = g.store.reserveIncoming(SMALL, hash("x")).orElseThrow();
            assertThrows(IllegalArgumentException.class, () -> f.store.commitIncoming(in));
            assertThrows(IllegalArgumentException.class, () -> f.store.abortIncoming(in));
            g.store.commitIncoming(in);
            assertTrue(g.sealed(SMALL, "x"));
        }
    }

    @Test
    void shouldReserveNothingForABlockThatIsSealedBeingSavedOrAlreadyIncoming() {
        try (StoreFixture f = new StoreFixture(1)) {
            f.save(SMALL, "sealed");
            assertTrue(f.store.reserveIncoming(SMALL, hash("sealed")).isEmpty());
            SaveReservation saving = f.store.reserveForSave(SMALL, new int[] {0}, hashes("saving"), new int[] {0});
            assertTrue(f.store.reserveIncoming(SMALL, hash("saving")).isEmpty());
            f.store.completeSave(saving, true);
            IncomingBlock in = f.store.reserveIncoming(SMALL, hash("in")).orElseThrow();
            assertTrue(f.store.reserveIncoming(SMALL, hash("in")).isEmpty());
            f.store.abortIncoming(in);
        }
    }

    @Test
    void shouldLeaveAnIncomingBlockToItsTransferWhenASaveNamesIt() {
        try (StoreFixture f = new StoreFixture(1)) {
            IncomingBlock in = f.store.reserveIncoming(SMALL, hash("x")).orElseThrow();
            SaveReservation save = f.store.reserveForSave(SMALL, new int[] {0, 1}, hashes("x", "y"), new int[] {0});
            assertEquals(1, save.targets().size(), "only y is copied");
            assertEquals(
                    new BlockKey("ns", hash("y")), save.targets().get(0).entry().key());
            assertTrue(save.othersInFlight().isEmpty());
            f.store.completeSave(save, true);
            assertFalse(f.sealed(SMALL, "x"), "still the transfer's to commit");
            f.store.commitIncoming(in);
            assertTrue(f.sealed(SMALL, "x"));
        }
    }

    @Test
    void shouldNeverSweepAReservedIncomingBlock() {
        try (StoreFixture f = new StoreFixture(1)) {
            IncomingBlock in = f.store.reserveIncoming(SMALL, hash("x")).orElseThrow();
            f.clock.addAndGet(100 * StoreFixture.PARTIAL_TIMEOUT_NS);
            f.store.sweep();
            assertEquals(1, f.store.incomingBlocks());
            assertEquals(0, f.store.counters().partialDropped());
            f.store.commitIncoming(in);
            assertTrue(f.sealed(SMALL, "x"));
        }
    }

    @Test
    void shouldEvictToMakeRoomAndThrowPoolFullWhenNothingCanGo() {
        try (StoreFixture f = new StoreFixture(1)) {
            for (int i = 0; i < 16; i++) {
                f.save(SMALL, "a" + i);
            }
            IncomingBlock in = f.store.reserveIncoming(SMALL, hash("x")).orElseThrow();
            assertFalse(f.sealed(SMALL, "a0"), "the least recently used block made room");
            QueryResult lease = f.store.query("ns", hashes("a", 16), 60_000); // a1..a15 leased
            assertEquals(0, lease.hitCount(), "a0 is gone, so the prefix from a0 is empty");
            byte[][] rest = java.util.Arrays.copyOfRange(hashes("a", 16), 1, 16);
            QueryResult held = f.store.query("ns", rest, 60_000);
            assertEquals(15, held.hitCount());
            PoolSnapshot before = f.store.poolSnapshot();
            PoolFullException full =
                    assertThrows(PoolFullException.class, () -> f.store.reserveIncoming(SMALL, hash("y")));
            assertTrue(full.getMessage().contains("4096"), full.getMessage());
            assertEquals(before, f.store.poolSnapshot());
            assertEquals(1, f.store.incomingBlocks(), "the reserved block is not evictable either");
            assertEquals(1, f.store.counters().incomingRejectedFull());
            f.store.abortIncoming(in);
            assertTrue(f.store.reserveIncoming(SMALL, hash("y")).isPresent());
            f.store.release(held.leaseId());
        }
    }
}
