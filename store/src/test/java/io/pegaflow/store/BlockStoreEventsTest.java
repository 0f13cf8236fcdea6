package io.pegaflow.store;

import static io.pegaflow.store.StoreFixture.BIG;
import static io.pegaflow.store.StoreFixture.SMALL;
import static io.pegaflow.store.StoreFixture.hash;
import static io.pegaflow.store.StoreFixture.hashes;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.pegaflow.store.StoreEvent.Kind;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class BlockStoreEventsTest {
    /** Collects batches as the store's event thread hands them over. */
    static class Recorder implements StoreListener {
        final LinkedBlockingQueue<List<StoreEvent>> batches = new LinkedBlockingQueue<>();
        final List<StoreEvent> seen = new ArrayList<>();
        volatile String threadName;

        @Override
        public void onEvents(List<StoreEvent> batch) {
            threadName = Thread.currentThread().getName();
            batches.add(batch);
        }

        /** The next {@code n} events, however they were batched; fails after 10 s. */
        List<StoreEvent> next(int n) throws InterruptedException {
            List<StoreEvent> events = new ArrayList<>();
            while (events.size() < n) {
                List<StoreEvent> batch = batches.poll(10, TimeUnit.SECONDS);
                if (batch == null) {
                    fail("only " + events.size() + " of " + n + " events arrived: " + events);
                }
                events.addAll(batch);
            }
            assertEquals(n, events.size(), "more events than expected: " + events);
            return events;
        }
    }

    private static StoreEvent event(Kind kind, NamespaceLayout layout, String name) {
        return new StoreEvent(kind, new BlockKey(layout.namespace(), hash(name)), layout.blockBytes());
    }

    @Test
    void shouldDeliverSealsAndEvictionsInTheOrderTheyHappenedOnTheEventThread() throws Exception {
        Recorder recorder = new Recorder();
        try (StoreFixture f = new StoreFixture(1, recorder)) {
            for (int i = 0; i < 16; i++) {
                f.save(SMALL, "a" + i);
            }
            f.save(SMALL, "b0", "b1");
            List<StoreEvent> expected = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                expected.add(event(Kind.SEALED, SMALL, "a" + i));
            }
            expected.add(event(Kind.EVICTED, SMALL, "a0"));
            expected.add(event(Kind.EVICTED, SMALL, "a1"));
            expected.add(event(Kind.SEALED, SMALL, "b0"));
            expected.add(event(Kind.SEALED, SMALL, "b1"));
            assertEquals(expected, recorder.next(expected.size()));
            assertEquals(BlockStore.EVENT_THREAD_NAME, recorder.threadName);
        }
    }

    @Test
    void shouldSayNothingAboutBlocksThatWereNeverVisible() throws Exception {
        Recorder recorder = new Recorder();
        try (StoreFixture f = new StoreFixture(2, recorder)) {
            // A partial block that times out, a failed copy, an aborted transfer: none was ever sealed.
            SaveReservation partial = f.store.reserveForSave(BIG, new int[] {0}, hashes("p"), new int[] {0});
            f.store.completeSave(partial, true);
            SaveReservation failed = f.store.reserveForSave(SMALL, new int[] {0}, hashes("f"), new int[] {0});
            f.store.completeSave(failed, false);
            f.store.abortIncoming(f.store.reserveIncoming(SMALL, hash("t")).orElseThrow());
            f.clock.addAndGet(2 * StoreFixture.PARTIAL_TIMEOUT_NS);
            f.store.sweep();
            assertEquals(1, f.store.counters().partialDropped());
            f.store.commitIncoming(f.store.reserveIncoming(SMALL, hash("c")).orElseThrow());
            assertEquals(List.of(event(Kind.SEALED, SMALL, "c")), recorder.next(1));
            assertTrue(recorder.batches.isEmpty());
        }
    }

    @Test
    void shouldDeliverOutsideTheLockAndBatchWhatHappensMeanwhile() throws Exception {
        CountDownLatch inListener = new CountDownLatch(1);
        CountDownLatch letGo = new CountDownLatch(1);
        Recorder recorder = new Recorder() {
            @Override
            public void onEvents(List<StoreEvent> batch) {
                super.onEvents(batch);
                inListener.countDown();
                try {
                    letGo.await(10, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
        try (StoreFixture f = new StoreFixture(2, recorder)) {
            f.save(SMALL, "first");
            assertTrue(inListener.await(10, TimeUnit.SECONDS));
            // The listener is stuck inside its call: the store must still work, so the call is not under its lock.
            for (int i = 0; i < 10; i++) {
                f.save(SMALL, "x" + i);
            }
            assertEquals(2, f.store.query("ns", hashes("first", "x0"), 0).hitCount());
            letGo.countDown();
            assertEquals(List.of(event(Kind.SEALED, SMALL, "first")), recorder.batches.poll(10, TimeUnit.SECONDS));
            List<StoreEvent> meanwhile = recorder.batches.poll(10, TimeUnit.SECONDS);
            assertNotNull(meanwhile);
            assertEquals(10, meanwhile.size(), "what happened during the slow call comes as one batch");
            assertEquals(event(Kind.SEALED, SMALL, "x0"), meanwhile.get(0));
            assertEquals(event(Kind.SEALED, SMALL, "x9"), meanwhile.get(9));
            assertThrows(UnsupportedOperationException.class, () -> meanwhile.add(meanwhile.get(0)));
        }
    }

    @Test
    void shouldNotDeadlockWhenTheListenerCallsBackIntoTheStore() throws Exception {
        AtomicReference<BlockStore> storeRef = new AtomicReference<>();
        LinkedBlockingQueue<String> answers = new LinkedBlockingQueue<>();
        StoreListener callsBack = batch -> {
            for (StoreEvent e : batch) {
                BlockStore store = storeRef.get();
                // Read, lease and release while holding the batch: every call takes the store's lock.
                boolean sealed = store.isSealed(e.key().namespace(), e.key().hash());
                QueryResult lease =
                        store.query(e.key().namespace(), new byte[][] {e.key().hash()}, 1_000);
                store.release(lease.leaseId(), e.key().namespace());
                answers.add(e.kind() + " " + sealed + " " + lease.hitCount());
            }
        };
        try (StoreFixture f = new StoreFixture(1)) {
            storeRef.set(f.store);
            f.store.setListener(callsBack);
            f.save(SMALL, "a", "b");
            assertEquals("SEALED true 1", answers.poll(10, TimeUnit.SECONDS));
            assertEquals("SEALED true 1", answers.poll(10, TimeUnit.SECONDS));
            assertEquals(0, f.store.activeLeases());
        }
    }

    @Test
    void shouldKeepWorkingAndDeliveringWhenAListenerThrows() throws Exception {
        Recorder recorder = new Recorder();
        CountDownLatch thrown = new CountDownLatch(1);
        StoreListener flaky = batch -> {
            if (thrown.getCount() > 0) {
                thrown.countDown();
                throw new IllegalStateException("listener bug (expected by the test)");
            }
            recorder.onEvents(batch);
        };
        try (StoreFixture f = new StoreFixture(1, flaky)) {
            f.save(SMALL, "lost");
            assertTrue(thrown.await(10, TimeUnit.SECONDS));
            f.save(SMALL, "delivered");
            assertEquals(List.of(event(Kind.SEALED, SMALL, "delivered")), recorder.next(1));
            assertEquals(1, f.store.counters().listenerFailures());
            assertTrue(f.sealed(SMALL, "lost"), "the store itself is unaffected");
        }
    }

    @Test
    void shouldClearANamespaceExceptItsPinnedBlocks() throws Exception {
        Recorder recorder = new Recorder();
        try (StoreFixture f = new StoreFixture(3, recorder)) {
            f.save(SMALL, "a", "b", "c");
            f.save(BIG, "a");
            SaveReservation filling = f.store.reserveForSave(SMALL, new int[] {0}, hashes("filling"), new int[] {0});
            QueryResult lease = f.store.query("ns", hashes("b"), 60_000);
            recorder.next(4);

            ClearResult result = f.store.clearNamespace("ns");
            assertEquals(new ClearResult(2, 1), result);
            List<StoreEvent> cleared = recorder.next(2);
            assertTrue(cleared.contains(event(Kind.CLEARED, SMALL, "a")), cleared.toString());
            assertTrue(cleared.contains(event(Kind.CLEARED, SMALL, "c")), cleared.toString());
            assertFalse(f.sealed(SMALL, "a"));
            assertTrue(f.sealed(SMALL, "b"), "leased: kept");
            assertTrue(f.sealed(BIG, "a"), "another namespace is untouched");
            assertEquals(2, f.store.sealedBlocks());
            assertEquals(1, f.store.inFlightBlocks(), "a block still being filled is untouched");
            assertEquals(2, f.store.counters().cleared());
            f.store.completeSave(filling, true);
            assertTrue(f.sealed(SMALL, "filling"));
            recorder.next(1);

            assertTrue(f.store.release(lease.leaseId()));
            assertEquals(new ClearResult(2, 0), f.store.clearNamespace("ns"));
            recorder.next(2);
            assertEquals(new ClearResult(0, 0), f.store.clearNamespace("ns"));
            assertEquals(new ClearResult(0, 0), f.store.clearNamespace("never-seen"));
            assertEquals(1, f.save(SMALL, "a"), "a cleared block can be saved again");
        }
    }

    @Test
    void shouldDeliverWhatIsPendingOnCloseAndNothingAfter() throws Exception {
        Recorder recorder = new Recorder();
        StoreFixture f = new StoreFixture(1, recorder);
        f.save(SMALL, "a", "b", "c");
        f.store.close();
        assertEquals(3, recorder.next(3).size());
        f.save(SMALL, "d");
        assertTrue(f.sealed(SMALL, "d"), "the store works on without events");
        assertEquals(null, recorder.batches.poll(200, TimeUnit.MILLISECONDS));
        assertThrows(IllegalStateException.class, () -> f.store.setListener(recorder));
        f.close();
    }
}
