package io.pegaflow.actors.directory;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link RangeState#readLookup} from other threads while the owner keeps writing: real threads, no mocks. The writer
 * grows and shrinks the table (resizes, backward shifts) with a churn set and flips a group of blocks in and out in
 * one publish each; the readers check every consistent read against what a single instant of the table can show.
 */
class RangeStateConcurrentReadTest {
    private static final int RANGES = 4;
    private static final int RANGE = 1;
    private static final long TIMEOUT = 10_000_000_000L;
    private static final int A = 0;
    private static final int B = 1;
    private static final long UID_A = 1001;
    private static final long UID_B = 2002;
    private static final int STABLE = 200;
    private static final int GROUP = 64;
    private static final int CHURN = 20_000;
    private static final int ROUNDS = 300;
    private static final int READERS = 3;

    private final long[] all = RangeStateTest.fingerprintsIn(RANGE, STABLE + GROUP + CHURN);
    private final long[] stable = Arrays.copyOfRange(all, 0, STABLE);
    private final long[] group = Arrays.copyOfRange(all, STABLE, STABLE + GROUP);
    private final long[] churn = Arrays.copyOfRange(all, STABLE + GROUP, all.length);
    private long requestId = 100;
    private long sequenceA;

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void shouldNeverShowATornMaskOrMissABlockTheTableHoldsWhileTheOwnerWrites() throws Exception {
        RangeState state = new RangeState(RANGE, RANGES, 2, TIMEOUT, 1_000_000);
        state.membershipKnown();
        live(state, A, UID_A);
        live(state, B, UID_B);
        state.onPublish(publish(A, stable, new long[0]), 1);
        state.onPublish(new BlockRange.Command.Publish(B, UID_B, 1, stable, new long[0]), 1);

        // Positions 1..STABLE+GROUP, visited through an order that reverses them; the first and last stay unread.
        long[] asked = new long[STABLE + GROUP + 2];
        System.arraycopy(stable, 0, asked, 1, STABLE);
        System.arraycopy(group, 0, asked, 1 + STABLE, GROUP);
        asked[0] = stable[0];
        asked[asked.length - 1] = stable[0];
        int[] order = new int[asked.length];
        for (int p = 1; p < asked.length - 1; p++) {
            order[p] = asked.length - 1 - p;
        }
        long both = DirectoryNodes.bit(A) | DirectoryNodes.bit(B);

        AtomicBoolean writing = new AtomicBoolean(true);
        AtomicReference<String> wrong = new AtomicReference<>();
        AtomicLong consistent = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        AtomicLong sawGroupIn = new AtomicLong();
        AtomicLong sawGroupOut = new AtomicLong();
        CountDownLatch ready = new CountDownLatch(READERS);
        List<Thread> readers = new ArrayList<>();
        for (int r = 0; r < READERS; r++) {
            readers.add(Thread.ofPlatform().name("reader-" + r).start(() -> {
                long[] masks = new long[asked.length];
                ready.countDown();
                while (writing.get()) {
                    // Only the positions asked are written.
                    masks[0] = 7;
                    masks[masks.length - 1] = 7;
                    int result = state.readLookup(asked, order, 1, asked.length - 1, masks, 1);
                    if (masks[0] != 7 || masks[masks.length - 1] != 7) {
                        wrong.compareAndSet(null, "wrote outside the positions asked");
                    }
                    if (result == RangeState.READ_FAILED) {
                        failed.incrementAndGet();
                        for (int i = 1; i < asked.length - 1; i++) {
                            if (masks[i] != 0) {
                                wrong.compareAndSet(null, "a failed read left mask " + masks[i] + " at " + (i - 1));
                            }
                        }
                        continue;
                    }
                    if (result != RangeState.READ_COMPLETE) {
                        wrong.compareAndSet(null, "both nodes are live, yet the read says " + result);
                    }
                    consistent.incrementAndGet();
                    for (int i = 0; i < STABLE; i++) {
                        if (masks[1 + i] != both) {
                            wrong.compareAndSet(
                                    null, "stable block " + i + " read as mask " + masks[1 + i] + ", held by both");
                        }
                    }
                    long first = masks[1 + STABLE];
                    if (first != 0 && first != DirectoryNodes.bit(A)) {
                        wrong.compareAndSet(null, "group mask " + first + " is not a state the writer made");
                    }
                    for (int i = 1; i < GROUP; i++) {
                        if (masks[1 + STABLE + i] != first) {
                            wrong.compareAndSet(null, "the group, changed by one publish each time, read half-changed");
                        }
                    }
                    (first == 0 ? sawGroupOut : sawGroupIn).incrementAndGet();
                }
            }));
        }
        assertTrue(ready.await(30, TimeUnit.SECONDS));
        long[] none = new long[0];
        for (int round = 0; round < ROUNDS && wrong.get() == null; round++) {
            state.onPublish(publish(A, group, none), 2);
            int n = round % 2 == 0 ? CHURN : CHURN / 4; // grow past several resizes, then shrink back
            long[] some = Arrays.copyOf(churn, n);
            for (int from = 0; from < n; from += 2_000) {
                state.onPublish(publish(A, Arrays.copyOfRange(some, from, Math.min(n, from + 2_000)), none), 2);
            }
            state.onPublish(publish(A, none, group), 2);
            state.onPublish(publish(A, none, some), 2); // deletions: backward shifts, then a shrink
        }
        writing.set(false);
        for (Thread t : readers) {
            t.join(30_000);
        }
        assertNull(wrong.get());
        assertTrue(consistent.get() > 0, "no consistent read at all (failed " + failed.get() + ")");
        System.out.printf(
                "concurrent reads: %d consistent (group in %d, out %d), %d failed%n",
                consistent.get(), sawGroupIn.get(), sawGroupOut.get(), failed.get());
    }

    @Test
    void shouldReadIncompleteWhileANodesHoldingsAreAwaitedAndCompleteOnceApplied() {
        RangeState state = new RangeState(RANGE, RANGES, 2, TIMEOUT, 1_000);
        state.membershipKnown();
        live(state, A, UID_A);
        state.onPublish(publish(A, stable, new long[0]), 1);
        state.memberPresent(B, UID_B, true, 1);
        long[] masks = new long[STABLE];
        assertEquals(RangeState.READ_INCOMPLETE, state.readLookup(stable, null, 0, STABLE, masks, 2));
        long[] expected = new long[STABLE];
        Arrays.fill(expected, DirectoryNodes.bit(A));
        assertArrayEquals(expected, masks, "an incomplete read still shows what the table holds");
        long id = ++requestId;
        state.requested(B, id, 2);
        state.onHoldings(new BlockRange.Command.Holdings(B, UID_B, id, 0, 0, true, new long[0]), 3);
        assertEquals(RangeState.READ_COMPLETE, state.readLookup(stable, null, 0, STABLE, masks, 4));
        assertEquals(RangeState.READ_COMPLETE, state.readLookup(stable, null, 0, 0, masks, 4), "an empty segment");
    }

    private BlockRange.Command.Publish publish(int node, long[] added, long[] removed) {
        return new BlockRange.Command.Publish(node, UID_A, ++sequenceA, added, removed);
    }

    private void live(RangeState state, int node, long uid) {
        state.memberPresent(node, uid, true, 1);
        long id = ++requestId;
        state.requested(node, id, 1);
        state.onHoldings(new BlockRange.Command.Holdings(node, uid, id, 0, 0, true, new long[0]), 1);
        assertEquals(RangeState.Phase.LIVE, state.phase(node));
    }
}
