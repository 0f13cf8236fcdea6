package io.pegaflow.actors.directory;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.store.BlockKey;
import io.pegaflow.store.StoreEvent;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class DirectoryPublisherTest {
    private static final int RANGES = 4;

    private record Sent(int range, BlockRange.Command.Publish publish) {}

    /** A store event as the node's store would deliver it (stand-in for the store module's event type). */
    private record Event(boolean sealed, String namespace, byte[] hash) {}

    private static final BlockChangeReader<Event> READER = BlockChangeReader.of(
            e -> e.sealed() ? BlockChangeReader.Change.ADDED : BlockChangeReader.Change.REMOVED,
            e -> Fingerprints.of(e.namespace(), e.hash()));

    private static DirectorySettings settings(int maxPending, int perMessage) {
        return new DirectorySettings(
                Duration.ofMillis(20),
                1_000,
                maxPending,
                perMessage,
                Duration.ofSeconds(10),
                Duration.ofSeconds(2),
                1_000_000,
                2,
                List.of(Duration.ofMillis(500)),
                true,
                Duration.ofMillis(100),
                1024,
                1.0);
    }

    private static List<Sent> drain(DirectoryPublisher publisher) {
        List<Sent> sent = new ArrayList<>();
        publisher.drain((range, p) -> sent.add(new Sent(range, p)));
        return sent;
    }

    @Test
    void shouldSendSealsAndRemovalsToTheirRangesNumberedPerRange() {
        DirectoryPublisher publisher = new DirectoryPublisher(2, 77, RANGES, settings(1_000, 1_000));
        long[] r0 = RangeStateTest.fingerprintsIn(0, 3);
        long[] r3 = RangeStateTest.fingerprintsIn(3, 2);
        publisher.publishFingerprints(new long[] {r0[0], r0[1], r3[0]}, new long[0]);
        List<Sent> first = drain(publisher);
        assertEquals(2, first.size());
        for (Sent s : first) {
            assertEquals(2, s.publish().node());
            assertEquals(77, s.publish().incarnation());
            assertEquals(1, s.publish().sequence());
            for (long fp : s.publish().added()) {
                assertEquals(s.range(), Fingerprints.rangeOf(fp, RANGES));
            }
        }
        publisher.publishFingerprints(new long[0], new long[] {r0[0]});
        List<Sent> second = drain(publisher);
        assertEquals(1, second.size());
        assertEquals(0, second.get(0).range());
        assertEquals(2, second.get(0).publish().sequence());
        assertArrayEquals(new long[] {r0[0]}, second.get(0).publish().removed());
        assertEquals(2, publisher.lastSequence(0));
        assertEquals(1, publisher.lastSequence(3));
        assertEquals(0, publisher.lastSequence(1));
        assertTrue(drain(publisher).isEmpty(), "nothing pending, nothing sent");
    }

    @Test
    void shouldCancelAChangeReversedBeforeTheFlush() {
        DirectoryPublisher publisher = new DirectoryPublisher(0, 1, RANGES, settings(1_000, 1_000));
        long fp = RangeStateTest.fingerprintsIn(1, 1)[0];
        publisher.publishFingerprints(new long[] {fp}, new long[] {fp});
        assertTrue(drain(publisher).isEmpty());
        assertEquals(0, publisher.heldFingerprints());
    }

    @Test
    void shouldKeepAHolderWhileAnotherLocalBlockSharesItsFingerprint() {
        DirectoryPublisher publisher = new DirectoryPublisher(0, 1, RANGES, settings(1_000, 1_000));
        long fp = RangeStateTest.fingerprintsIn(1, 1)[0];
        publisher.publishFingerprints(new long[] {fp, fp}, new long[0]); // two blocks, one fingerprint
        assertEquals(1, drain(publisher).get(0).publish().added().length);
        publisher.publishFingerprints(new long[0], new long[] {fp});
        assertTrue(drain(publisher).isEmpty(), "one block with that fingerprint is still held");
        publisher.publishFingerprints(new long[0], new long[] {fp});
        assertArrayEquals(new long[] {fp}, drain(publisher).get(0).publish().removed());
        publisher.publishFingerprints(new long[0], new long[] {fp});
        assertEquals(1, publisher.unmatchedRemovals());
    }

    @Test
    void shouldReadStoreEventsThroughTheReader() {
        DirectoryPublisher publisher = new DirectoryPublisher(0, 1, RANGES, settings(1_000, 1_000));
        byte[] h1 = {1, 2, 3};
        byte[] h2 = {4, 5, 6};
        publisher.publish(
                List.of(new Event(true, "ns", h1), new Event(true, "ns", h2), new Event(false, "ns", h1)), READER);
        List<Sent> sent = drain(publisher);
        long[] all = sent.stream()
                .flatMapToLong(s -> Arrays.stream(s.publish().added()))
                .toArray();
        assertArrayEquals(new long[] {Fingerprints.of("ns", h2)}, all);
        int range = Fingerprints.rangeOf(Fingerprints.of("ns", h2), RANGES);
        assertArrayEquals(new long[] {Fingerprints.of("ns", h2)}, publisher.fingerprintsInRange(range, RANGES));
        assertArrayEquals(new long[] {Fingerprints.of("ns", h2)}, publisher.fingerprintsInRange(0, 1));
    }

    @Test
    void shouldSplitLargeBatchesIntoNumberedMessages() {
        DirectoryPublisher publisher = new DirectoryPublisher(0, 1, RANGES, settings(100_000, 3));
        long[] fps = RangeStateTest.fingerprintsIn(2, 8);
        publisher.publishFingerprints(Arrays.copyOf(fps, 5), new long[0]);
        drain(publisher);
        publisher.publishFingerprints(Arrays.copyOfRange(fps, 5, 8), Arrays.copyOf(fps, 4));
        List<Sent> sent = drain(publisher);
        assertEquals(3, sent.size()); // 7 changes, 3 per message
        long total = 0;
        for (int i = 0; i < sent.size(); i++) {
            BlockRange.Command.Publish p = sent.get(i).publish();
            assertEquals(3 + i, p.sequence());
            assertTrue(p.added().length + p.removed().length <= 3);
            total += p.added().length + p.removed().length;
        }
        assertEquals(7, total);
    }

    @Test
    void shouldDropChangesBeyondTheBoundAndLeaveAGapForTheRange() {
        DirectoryPublisher publisher = new DirectoryPublisher(0, 1, RANGES, settings(2, 1_000));
        long[] fps = RangeStateTest.fingerprintsIn(1, 3);
        publisher.publishFingerprints(fps, new long[0]);
        assertEquals(1, publisher.droppedChanges());
        List<Sent> sent = drain(publisher);
        assertEquals(1, sent.size());
        assertEquals(2, sent.get(0).publish().sequence(), "sequence 1 skipped: the range will resync");
        assertEquals(2, sent.get(0).publish().added().length);
        // The local view still knows all three: a resync restores the dropped one.
        assertEquals(3, publisher.fingerprintsInRange(1, RANGES).length);
    }

    @Test
    void shouldRevealAGapEvenWhenNothingElseIsPendingForTheRange() {
        DirectoryPublisher publisher = new DirectoryPublisher(0, 1, RANGES, settings(1, 1_000));
        long a = RangeStateTest.fingerprintsIn(0, 1)[0];
        long b = RangeStateTest.fingerprintsIn(3, 1)[0];
        publisher.publishFingerprints(new long[] {a, b}, new long[0]); // b dropped
        List<Sent> sent = drain(publisher);
        Sent toThree = sent.stream().filter(s -> s.range() == 3).findFirst().orElseThrow();
        assertEquals(2, toThree.publish().sequence());
        assertEquals(0, toThree.publish().added().length);
    }

    @Test
    void shouldSignalAnEarlyFlushOnceWhenManyChangesWait() {
        DirectoryPublisher publisher = new DirectoryPublisher(0, 1, RANGES, settings(1_000_000, 1_000));
        AtomicInteger signals = new AtomicInteger();
        publisher.onFlushNeeded(signals::incrementAndGet);
        publisher.publishFingerprints(RangeStateTest.fingerprintsIn(0, 999), new long[0]);
        assertEquals(0, signals.get());
        publisher.publishFingerprints(RangeStateTest.fingerprintsIn(1, 5), new long[0]);
        publisher.publishFingerprints(RangeStateTest.fingerprintsIn(2, 5), new long[0]);
        assertEquals(1, signals.get());
        drain(publisher);
        publisher.publishFingerprints(RangeStateTest.fingerprintsIn(3, 1_000), new long[0]);
        assertEquals(2, signals.get());
    }

    @Test
    void shouldRefuseFingerprintZeroAndChangeNothing() {
        DirectoryPublisher publisher = new DirectoryPublisher(0, 1, RANGES, settings(1_000, 1_000));
        long fp = RangeStateTest.fingerprintsIn(0, 1)[0];
        assertThrows(
                IllegalArgumentException.class, () -> publisher.publishFingerprints(new long[] {fp, 0}, new long[0]));
        assertEquals(0, publisher.pendingChanges());
        assertEquals(0, publisher.heldFingerprints());
    }

    @Test
    void shouldPublishSealedBlocksAndForgetEvictedDroppedAndClearedOnes() {
        DirectoryPublisher publisher = new DirectoryPublisher(0, 1, RANGES, settings(1_000, 1_000));
        StoreEventPublisher listener = new StoreEventPublisher(publisher);
        BlockKey[] keys = new BlockKey[4];
        for (int i = 0; i < keys.length; i++) {
            keys[i] = new BlockKey(i % 2 == 0 ? "a" : "b", new byte[] {(byte) i, 9, 9});
        }
        List<StoreEvent> seals = new ArrayList<>();
        for (BlockKey k : keys) {
            seals.add(new StoreEvent(StoreEvent.Kind.SEALED, k, 4096));
        }
        listener.onEvents(seals);
        assertEquals(
                4,
                drain(publisher).stream()
                        .mapToInt(s -> s.publish().added().length)
                        .sum());
        listener.onEvents(List.of(
                new StoreEvent(StoreEvent.Kind.EVICTED, keys[0], 4096),
                new StoreEvent(StoreEvent.Kind.DROPPED, keys[1], 4096),
                new StoreEvent(StoreEvent.Kind.CLEARED, keys[2], 4096)));
        long[] removed = drain(publisher).stream()
                .flatMapToLong(s -> Arrays.stream(s.publish().removed()))
                .sorted()
                .toArray();
        long[] expected = Arrays.stream(new BlockKey[] {keys[0], keys[1], keys[2]})
                .mapToLong(k -> Fingerprints.of(k.namespace(), k.hash()))
                .sorted()
                .toArray();
        assertArrayEquals(expected, removed);
        assertEquals(1, publisher.heldFingerprints());
    }
}
