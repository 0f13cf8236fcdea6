package io.pegaflow.transport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The contract every {@link Transport} passes: two nodes in one JVM on loopback, each with an off-heap region; real
 * sockets or queue pairs, no mocks. A transport's test class extends this and says how to make one and how to make a
 * peer slow or corrupt bytes (tests that need a hook the transport lacks are skipped, saying so).
 *
 * <p>Published in pegaflow-transport's test-jar so that transport-rdma runs the same tests.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
public abstract class TransportContractTest {

    protected static final String LOOPBACK = "127.0.0.1";
    protected static final long WAIT_MS = 10_000;
    private static final byte UNTOUCHED = (byte) 0xEE;

    private final List<Node> nodes = new ArrayList<>();

    /** A new, unstarted transport with these settings. */
    protected abstract Transport newTransport(TransportSettings settings);

    /**
     * Makes {@code server} a slow peer: before it sends half {@code part} (0 or 1) of block {@code block} of every
     * READ reply it serves, it counts {@code stalled} down and waits {@code stallMs}; after each reply it counts
     * {@code replySent} down.
     *
     * @return false if the transport has no such hook (the test is skipped)
     */
    protected abstract boolean stallReadReplies(
            Transport server, int block, int part, long stallMs, CountDownLatch stalled, CountDownLatch replySent);

    /**
     * Makes {@code sender} flip a byte of block {@code block} on the wire of everything it sends (READ replies it
     * serves, WRITE payloads it sends) without changing its region.
     *
     * @return false if the transport has no such hook (the test is skipped)
     */
    protected abstract boolean corruptOutgoingBlock(Transport sender, int block);

    /** Removes the hooks installed on {@code transport}. */
    protected abstract void clearHooks(Transport transport);

    /** Whether the transport verifies block checksums when the settings ask for it (the checksum tests need it). */
    protected boolean supportsChecksums() {
        return true;
    }

    @AfterEach
    void closeNodes() {
        for (int i = nodes.size() - 1; i >= 0; i--) {
            nodes.get(i).close();
        }
        nodes.clear();
    }

    // ------------------------------------------------------------------------------------------ data movement

    @Test
    void shouldReadDescriptorListByteExactAsOneTransfer() throws Exception {
        Node b = startNode("b", 4 << 20, UnaryOperator.identity());
        Node a = startNode("a", 4 << 20, UnaryOperator.identity(), b);
        fillPattern(b.memory, 1);
        fill(a.memory, UNTOUCHED);
        // Scattered remote blocks land in a different order locally, one of them crossing no alignment at all.
        long[][] moves = {{3 << 20, 0, 65_536}, {17, 200_000, 4_099}, {1 << 20, 65_536, 131_072}, {0, 1 << 20, 1}};
        DescriptorList list = new DescriptorList(8);
        long total = 0;
        for (long[] m : moves) {
            list.add(b.remote(), m[0], a.region, m[1], m[2]);
            total += m[2];
        }
        Completions done = new Completions();

        assertEquals(TransferStatus.OK, a.transport.read(list, WAIT_MS, 42, done));
        list.clear(); // the transport copied the list: the caller may reuse it at once

        Completions.Done d = done.next();
        assertEquals(42, d.correlationId());
        assertEquals(TransferStatus.OK, d.status());
        assertEquals(total, d.bytes());
        assertNotSame(Thread.currentThread(), d.thread(), "completions run on a transport thread");
        for (long[] m : moves) {
            assertRangeEquals(b.memory, m[0], a.memory, m[1], m[2]);
        }
        assertRangeFilled(a.memory, 200_000 + 4_099, 16, UNTOUCHED);
        done.assertNoMore(200);

        PeerSnapshot counters = a.transport.snapshot().peer("b");
        assertEquals(1, counters.completions(TransferStatus.OK));
        assertEquals(1, counters.transfers());
        assertEquals(total, counters.bytesRead());
        assertEquals(1, sum(counters.latencyBuckets()));
        assertEquals(a.transport.name(), a.transport.snapshot().transport());
    }

    @Test
    void shouldWriteDescriptorListByteExactAsOneTransfer() throws Exception {
        Node b = startNode("b", 4 << 20, UnaryOperator.identity());
        Node a = startNode("a", 4 << 20, UnaryOperator.identity(), b);
        fillPattern(a.memory, 2);
        fill(b.memory, UNTOUCHED);
        long[][] moves = {{0, 2 << 20, 262_144}, {300_001, 5, 77_777}, {1 << 20, 1 << 20, 8}};
        DescriptorList list = new DescriptorList(4);
        long total = 0;
        for (long[] m : moves) {
            list.add(b.remote(), m[1], a.region, m[0], m[2]);
            total += m[2];
        }
        Completions done = new Completions();

        assertEquals(TransferStatus.OK, a.transport.write(list, WAIT_MS, 7, done));

        Completions.Done d = done.next();
        assertEquals(TransferStatus.OK, d.status());
        assertEquals(total, d.bytes());
        for (long[] m : moves) {
            assertRangeEquals(a.memory, m[0], b.memory, m[1], m[2]);
        }
        assertRangeFilled(b.memory, 5 + 77_777, 64, UNTOUCHED);
        assertEquals(total, a.transport.snapshot().peer("b").bytesWritten());
    }

    @Test
    void shouldCompleteManyConcurrentTransfersByteExact() throws Exception {
        int threads = 4;
        int transfersPerThread = 40;
        int blocks = 8;
        int blockBytes = 4096;
        long area = (long) transfersPerThread * blocks * blockBytes; // per thread
        Node b = startNode("b", 16 << 20, s -> s.withMaxInFlightPerPeer(8));
        Node a = startNode("a", 16 << 20, s -> s.withMaxInFlightPerPeer(8), b);
        fillPattern(b.memory, 3);
        fillPattern(a.memory, 4);
        long readSource = 8 << 20; // remote bytes to read from: [0, 8 MiB); remote write targets: [8 MiB, 16 MiB)
        Set<Long> seen = ConcurrentHashMap.newKeySet();
        AtomicInteger duplicates = new AtomicInteger();
        AtomicInteger failures = new AtomicInteger();
        CountDownLatch all = new CountDownLatch(threads * transfersPerThread);
        CompletionHandler handler = (id, status, bytes) -> {
            if (!seen.add(id)) {
                duplicates.incrementAndGet();
            }
            if (status != TransferStatus.OK || bytes != (long) blocks * blockBytes) {
                failures.incrementAndGet();
            }
            all.countDown();
        };
        long[][] readFrom = new long[threads * transfersPerThread][blocks];
        List<Thread> submitters = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int thread = t;
            submitters.add(Thread.ofPlatform().start(() -> {
                SplittableRandom random = new SplittableRandom(thread);
                DescriptorList list = new DescriptorList(blocks);
                for (int n = 0; n < transfersPerThread; n++) {
                    int id = thread * transfersPerThread + n;
                    boolean read = n % 2 == 0;
                    list.clear();
                    for (int k = 0; k < blocks; k++) {
                        long local = thread * area + ((long) n * blocks + k) * blockBytes;
                        if (read) {
                            long remote = random.nextLong(readSource / blockBytes) * blockBytes;
                            readFrom[id][k] = remote;
                            list.add(b.remote(), remote, a.region, local, blockBytes);
                        } else {
                            list.add(b.remote(), readSource + local, a.region, 8L * (1 << 20) + local, blockBytes);
                        }
                    }
                    TransferStatus status;
                    do {
                        status = read
                                ? a.transport.read(list, WAIT_MS, id, handler)
                                : a.transport.write(list, WAIT_MS, id, handler);
                        if (status == TransferStatus.BACK_PRESSURED) {
                            Thread.onSpinWait();
                        }
                    } while (status == TransferStatus.BACK_PRESSURED);
                    if (status != TransferStatus.OK) {
                        failures.incrementAndGet();
                        all.countDown();
                    }
                }
            }));
        }
        for (Thread t : submitters) {
            t.join(WAIT_MS * 3);
        }

        assertTrue(all.await(WAIT_MS * 3, TimeUnit.MILLISECONDS), "all transfers complete");
        assertEquals(0, failures.get());
        assertEquals(0, duplicates.get());
        for (int t = 0; t < threads; t++) {
            for (int n = 0; n < transfersPerThread; n++) {
                int id = t * transfersPerThread + n;
                for (int k = 0; k < blocks; k++) {
                    long local = t * area + ((long) n * blocks + k) * blockBytes;
                    if (n % 2 == 0) {
                        assertRangeEquals(b.memory, readFrom[id][k], a.memory, local, blockBytes);
                    } else {
                        assertRangeEquals(a.memory, 8L * (1 << 20) + local, b.memory, readSource + local, blockBytes);
                    }
                }
            }
        }
        assertEquals(
                threads * transfersPerThread, a.transport.snapshot().peer("b").completions(TransferStatus.OK));
    }

    // ------------------------------------------------------------------------------------------ refusals

    @Test
    void shouldRefuseWithBackPressureWhenInFlightBoundIsReachedAndMoveNothing() throws Exception {
        Node b = startNode("b", 1 << 20, UnaryOperator.identity());
        Node a = startNode("a", 1 << 20, s -> s.withMaxInFlightPerPeer(4), b);
        CountDownLatch stalled = new CountDownLatch(1);
        assumeTrue(stallReadReplies(b.transport, 0, 0, 300, stalled, new CountDownLatch(4)), "needs a slow-peer hook");
        fillPattern(b.memory, 5);
        fill(a.memory, UNTOUCHED);
        Completions done = new Completions();
        for (int i = 0; i < 4; i++) {
            assertEquals(TransferStatus.OK, a.transport.read(one(b, i * 4096L, a, i * 4096L, 4096), WAIT_MS, i, done));
        }

        DescriptorList fifth = one(b, 65_536, a, 65_536, 4096);
        assertEquals(TransferStatus.BACK_PRESSURED, a.transport.read(fifth, WAIT_MS, 99, done));

        for (int i = 0; i < 4; i++) {
            assertEquals(TransferStatus.OK, done.next().status());
        }
        done.assertNoMore(200); // the refused one never completes
        assertRangeFilled(a.memory, 65_536, 4096, UNTOUCHED);
        assertEquals(1, a.transport.snapshot().peer("b").refusals(TransferStatus.BACK_PRESSURED));
        clearHooks(b.transport);
        assertEquals(TransferStatus.OK, a.transport.read(fifth, WAIT_MS, 99, done));
        assertEquals(TransferStatus.OK, done.next().status());
        assertRangeEquals(b.memory, 65_536, a.memory, 65_536, 4096);
    }

    @Test
    void shouldReportNotConnectedForUnknownPeer() throws Exception {
        Node a = startNode("a", 1 << 20, UnaryOperator.identity());
        RemoteRegion nowhere = new RemoteRegion("nobody", 0, 0, 1 << 20, 1);
        DescriptorList list = new DescriptorList(1).add(nowhere, 0, a.region, 0, 64);
        Completions done = new Completions();

        assertEquals(TransferStatus.NOT_CONNECTED, a.transport.read(list, WAIT_MS, 1, done));
        assertEquals(TransferStatus.NOT_CONNECTED, a.transport.write(list, WAIT_MS, 2, done));
        assertEquals(PeerState.UNKNOWN, a.transport.peerState("nobody"));
        done.assertNoMore(100);
    }

    @Test
    void shouldReportNotConnectedForDownPeer() throws Exception {
        int deadPort = freePort();
        Node a = startNodeWithPeers("a", 1 << 20, UnaryOperator.identity(), new PeerAddress("c", LOOPBACK, deadPort));
        RemoteRegion onC = new RemoteRegion("c", 0, 0, 1 << 20, 1);
        DescriptorList list = new DescriptorList(1).add(onC, 0, a.region, 0, 64);
        Completions done = new Completions();
        Thread.sleep(100); // a few connection attempts fail meanwhile

        assertNotEquals(PeerState.CONNECTED, a.transport.peerState("c"));
        assertEquals(TransferStatus.NOT_CONNECTED, a.transport.read(list, WAIT_MS, 1, done));
        assertEquals(1, a.transport.snapshot().peer("c").refusals(TransferStatus.NOT_CONNECTED));
        assertEquals(List.of("c"), a.transport.peers());
        done.assertNoMore(100);
    }

    @Test
    void shouldRefuseOutOfRangeDescriptorsBeforeAnythingMoves() throws Exception {
        Node b = startNode("b", 1 << 20, UnaryOperator.identity());
        Node a = startNode("a", 1 << 20, s -> s.withMaxDescriptorsPerTransfer(4), b);
        fillPattern(b.memory, 6);
        fill(a.memory, UNTOUCHED);
        LocalRegion foreign = b.transport.registerRegion(b.arena.allocate(4096));
        RemoteRegion remote = b.remote();
        long size = 1 << 20;
        Completions done = new Completions();
        List<DescriptorList> bad = List.of(
                good(b, a).add(remote, size - 100, a.region, 0, 101), // past the remote end
                good(b, a).add(remote, -1, a.region, 0, 10), // negative remote offset
                good(b, a).add(remote, 0, a.region, size - 10, 11), // past the local end
                good(b, a).add(remote, 0, a.region, 0, 0), // empty
                good(b, a).add(new RemoteRegion("a", 0, 0, size, 1), 0, a.region, 0, 10), // a second node
                good(b, a).add(remote, 0, foreign, 0, 10), // a local region of another transport
                new DescriptorList(8)
                        .add(remote, 0, a.region, 0, 1)
                        .add(remote, 1, a.region, 1, 1)
                        .add(remote, 2, a.region, 2, 1)
                        .add(remote, 3, a.region, 3, 1)
                        .add(remote, 4, a.region, 4, 1), // more than maxDescriptorsPerTransfer
                new DescriptorList(1)); // none at all

        int i = 0;
        for (DescriptorList list : bad) {
            assertEquals(TransferStatus.BAD_DESCRIPTOR, a.transport.read(list, WAIT_MS, i, done), "read case " + i);
            assertEquals(TransferStatus.BAD_DESCRIPTOR, a.transport.write(list, WAIT_MS, i, done), "write case " + i);
            i++;
        }

        done.assertNoMore(300);
        assertRangeFilled(a.memory, 0, size, UNTOUCHED);
        assertEquals(0, a.transport.snapshot().peer("b").transfers());
        assertEquals(0, b.transport.snapshot().servedRequests());
        assertEquals(12, a.transport.snapshot().peer("b").refusals(TransferStatus.BAD_DESCRIPTOR));
    }

    @Test
    void shouldReportRemoteErrorWhenThePeerRefusesTheDescriptorsAndMoveNothing() throws Exception {
        Node b = startNode("b", 1 << 20, UnaryOperator.identity());
        Node a = startNode("a", 1 << 20, UnaryOperator.identity(), b);
        fillPattern(b.memory, 7);
        fill(a.memory, UNTOUCHED);
        RemoteRegion real = b.remote();
        // Descriptions a holder never gave out: they pass the local checks, the holder refuses them.
        RemoteRegion staleKey = new RemoteRegion("b", real.regionId(), 0, real.lengthBytes(), real.remoteKey() + 1);
        RemoteRegion tooLong = new RemoteRegion("b", real.regionId(), 0, real.lengthBytes() * 2, real.remoteKey());
        RemoteRegion unknown = new RemoteRegion("b", 999, 0, real.lengthBytes(), real.remoteKey());
        Completions done = new Completions();

        assertEquals(TransferStatus.OK, a.transport.read(one(staleKey, 0, a, 0, 4096), WAIT_MS, 1, done));
        assertEquals(TransferStatus.OK, a.transport.read(one(tooLong, 1 << 20, a, 0, 4096), WAIT_MS, 2, done));
        assertEquals(TransferStatus.OK, a.transport.read(one(unknown, 0, a, 0, 4096), WAIT_MS, 3, done));
        assertEquals(TransferStatus.OK, a.transport.write(one(staleKey, 0, a, 0, 4096), WAIT_MS, 4, done));

        for (int i = 0; i < 4; i++) {
            Completions.Done d = done.next();
            assertEquals(TransferStatus.REMOTE_ERROR, d.status(), "transfer " + d.correlationId());
            assertEquals(0, d.bytes());
        }
        assertRangeFilled(a.memory, 0, 1 << 20, UNTOUCHED);
        fillPattern(a.memory, 8);
        assertEquals(TransferStatus.OK, a.transport.read(one(b, 0, a, 0, 4096), WAIT_MS, 5, done));
        assertEquals(TransferStatus.OK, done.next().status(), "the connection survives refused requests");
        assertRangeEquals(b.memory, 0, a.memory, 0, 4096);
    }

    @Test
    void shouldRefuseDeregistrationWhileInFlightAndTransfersNamingAnEndedRegion() throws Exception {
        Node b = startNode("b", 1 << 20, UnaryOperator.identity());
        Node a = startNode("a", 1 << 20, UnaryOperator.identity(), b);
        CountDownLatch stalled = new CountDownLatch(1);
        assumeTrue(stallReadReplies(b.transport, 0, 0, 500, stalled, new CountDownLatch(1)), "needs a slow-peer hook");
        Completions done = new Completions();
        assertEquals(TransferStatus.OK, a.transport.read(one(b, 0, a, 0, 4096), WAIT_MS, 1, done));
        assertTrue(stalled.await(WAIT_MS, TimeUnit.MILLISECONDS));

        assertThrows(IllegalStateException.class, () -> a.transport.deregisterRegion(a.region));
        assertEquals(TransferStatus.OK, done.next().status());
        clearHooks(b.transport);
        a.transport.deregisterRegion(a.region);
        assertEquals(TransferStatus.BAD_DESCRIPTOR, a.transport.read(one(b, 0, a, 0, 4096), WAIT_MS, 2, done));

        LocalRegion fresh = a.transport.registerRegion(a.memory);
        RemoteRegion ended = b.remote();
        b.transport.deregisterRegion(b.region);
        DescriptorList list = new DescriptorList(1).add(ended, 0, fresh, 0, 4096);
        assertEquals(TransferStatus.OK, a.transport.read(list, WAIT_MS, 3, done));
        assertEquals(TransferStatus.REMOTE_ERROR, done.next().status());
    }

    // ------------------------------------------------------------------------------------------ failures in flight

    @Test
    void shouldFailInFlightTransferWithinBoundedTimeWhenPeerDies() throws Exception {
        Node b = startNode("b", 1 << 20, UnaryOperator.identity());
        Node a = startNode("a", 1 << 20, UnaryOperator.identity(), b);
        CountDownLatch stalled = new CountDownLatch(1);
        assumeTrue(
                stallReadReplies(b.transport, 0, 1, 30_000, stalled, new CountDownLatch(1)), "needs a slow-peer hook");
        Completions done = new Completions();
        assertEquals(TransferStatus.OK, a.transport.read(one(b, 0, a, 0, 65_536), 4_000, 1, done));
        assertTrue(stalled.await(WAIT_MS, TimeUnit.MILLISECONDS));

        long diedAt = System.nanoTime();
        b.close(); // the peer goes away mid-transfer, half a block sent

        Completions.Done d = done.next();
        long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - diedAt);
        assertTrue(
                d.status() == TransferStatus.REMOTE_ERROR || d.status() == TransferStatus.TIMED_OUT,
                "status " + d.status());
        assertTrue(tookMs < 8_000, "failed after " + tookMs + " ms");
        assertTrue(
                waitFor(() -> a.transport.peerState("b") != PeerState.CONNECTED, WAIT_MS), "peer no longer connected");
        assertEquals(TransferStatus.NOT_CONNECTED, a.transport.read(one(b.remote(), 0, a, 0, 64), WAIT_MS, 2, done));
    }

    @Test
    void shouldWriteNothingIntoTargetAfterTimeoutEvenWhenLateDataArrives() throws Exception {
        Node b = startNode("b", 1 << 20, UnaryOperator.identity());
        Node a = startNode("a", 1 << 20, UnaryOperator.identity(), b);
        int blockBytes = 65_536;
        CountDownLatch stalled = new CountDownLatch(1);
        CountDownLatch replySent = new CountDownLatch(1);
        // The holder sends half of block 0, then stalls far past the timeout, then sends the rest.
        assumeTrue(stallReadReplies(b.transport, 0, 1, 2_500, stalled, replySent), "needs a slow-peer hook");
        fillPattern(b.memory, 9);
        fill(a.memory, UNTOUCHED);
        DescriptorList list = new DescriptorList(4);
        for (int k = 0; k < 4; k++) {
            list.add(b.remote(), (long) k * blockBytes, a.region, (long) k * blockBytes, blockBytes);
        }
        long span = 4L * blockBytes;
        byte[] atCompletion = new byte[(int) span];
        Completions done = new Completions(
                d -> MemorySegment.copy(a.memory, ValueLayout.JAVA_BYTE, 0, atCompletion, 0, atCompletion.length));

        long submitted = System.nanoTime();
        assertEquals(TransferStatus.OK, a.transport.read(list, 300, 1, done));
        Completions.Done d = done.next();
        long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - submitted);

        assertEquals(TransferStatus.TIMED_OUT, d.status());
        assertTrue(tookMs >= 290 && tookMs < 2_000, "timed out after " + tookMs + " ms");
        assertTrue(replySent.await(WAIT_MS, TimeUnit.MILLISECONDS), "the late data was sent");
        long late = span - d.bytes();
        assertTrue(
                waitFor(() -> a.transport.snapshot().lateBytesDiscarded() >= late, WAIT_MS),
                "the late data arrived and was dropped");
        assertRangeEquals(MemorySegment.ofArray(atCompletion), 0, a.memory, 0, span);
        assertRangeFilled(a.memory, blockBytes / 2, span - blockBytes / 2, UNTOUCHED);
        assertEquals(1, a.transport.snapshot().peer("b").completions(TransferStatus.TIMED_OUT));

        clearHooks(b.transport);
        assertEquals(TransferStatus.OK, a.transport.read(list, WAIT_MS, 2, done));
        assertEquals(TransferStatus.OK, done.next().status(), "the connection is still usable");
        assertRangeEquals(b.memory, 0, a.memory, 0, span);
    }

    @Test
    void shouldWriteNothingIntoTargetAfterCancel() throws Exception {
        Node b = startNode("b", 1 << 20, UnaryOperator.identity());
        Node a = startNode("a", 1 << 20, UnaryOperator.identity(), b);
        int blockBytes = 65_536;
        CountDownLatch stalled = new CountDownLatch(1);
        CountDownLatch replySent = new CountDownLatch(1);
        assumeTrue(stallReadReplies(b.transport, 1, 0, 1_000, stalled, replySent), "needs a slow-peer hook");
        fillPattern(b.memory, 10);
        fill(a.memory, UNTOUCHED);
        DescriptorList list = new DescriptorList(2)
                .add(b.remote(), 0, a.region, 0, blockBytes)
                .add(b.remote(), blockBytes, a.region, blockBytes, blockBytes);
        Completions done = new Completions();
        assertEquals(TransferStatus.OK, a.transport.read(list, WAIT_MS, 5, done));
        assertTrue(stalled.await(WAIT_MS, TimeUnit.MILLISECONDS));

        assertTrue(a.transport.cancel(5));
        assertEquals(TransferStatus.CANCELLED, done.next().status());
        assertTrue(replySent.await(WAIT_MS, TimeUnit.MILLISECONDS));
        assertTrue(waitFor(() -> a.transport.snapshot().lateBytesDiscarded() >= blockBytes, WAIT_MS));

        assertRangeFilled(a.memory, blockBytes, blockBytes, UNTOUCHED);
        assertTrue(!a.transport.cancel(5), "nothing left to cancel");
    }

    @Test
    void shouldCompleteInFlightAsClosedAndRefuseNewAfterClose() throws Exception {
        Node b = startNode("b", 1 << 20, UnaryOperator.identity());
        Node a = startNode("a", 1 << 20, UnaryOperator.identity(), b);
        CountDownLatch stalled = new CountDownLatch(1);
        assumeTrue(
                stallReadReplies(b.transport, 0, 0, 30_000, stalled, new CountDownLatch(1)), "needs a slow-peer hook");
        Completions done = new Completions();
        assertEquals(TransferStatus.OK, a.transport.read(one(b, 0, a, 0, 4096), WAIT_MS, 1, done));
        assertTrue(stalled.await(WAIT_MS, TimeUnit.MILLISECONDS));

        a.transport.close(); // returns once the transport's threads are gone

        Completions.Done d = done.poll(0);
        assertNotNull(d, "the in-flight transfer completed before close returned");
        assertEquals(TransferStatus.CLOSED, d.status());
        assertEquals(TransferStatus.CLOSED, a.transport.read(one(b, 0, a, 0, 4096), WAIT_MS, 2, done));
        assertEquals(TransferStatus.CLOSED, a.transport.write(one(b, 0, a, 0, 4096), WAIT_MS, 3, done));
        assertEquals(PeerState.CLOSED, a.transport.peerState("b"));
        done.assertNoMore(100);
    }

    // ------------------------------------------------------------------------------------------ integrity

    @Test
    void shouldDetectChecksumMismatchOnReadAndRecover() throws Exception {
        assumeTrue(supportsChecksums(), "the transport does not verify checksums");
        Node b = startNode("b", 1 << 20, UnaryOperator.identity());
        Node a = startNode("a", 1 << 20, s -> s.withVerifyChecksums(true), b);
        assumeTrue(corruptOutgoingBlock(b.transport, 1), "needs a corruption hook");
        fillPattern(b.memory, 11);
        DescriptorList list = new DescriptorList(3);
        for (int k = 0; k < 3; k++) {
            list.add(b.remote(), k * 8192L, a.region, k * 8192L, 8192);
        }
        Completions done = new Completions();

        assertEquals(TransferStatus.OK, a.transport.read(list, WAIT_MS, 1, done));
        assertEquals(TransferStatus.CHECKSUM_MISMATCH, done.next().status());
        assertEquals(1, a.transport.snapshot().peer("b").completions(TransferStatus.CHECKSUM_MISMATCH));

        clearHooks(b.transport);
        assertEquals(TransferStatus.OK, a.transport.read(list, WAIT_MS, 2, done));
        assertEquals(TransferStatus.OK, done.next().status());
        assertRangeEquals(b.memory, 0, a.memory, 0, 3 * 8192);
    }

    @Test
    void shouldDetectChecksumMismatchOnWrite() throws Exception {
        assumeTrue(supportsChecksums(), "the transport does not verify checksums");
        Node b = startNode("b", 1 << 20, UnaryOperator.identity());
        Node a = startNode("a", 1 << 20, s -> s.withVerifyChecksums(true), b);
        assumeTrue(corruptOutgoingBlock(a.transport, 0), "needs a corruption hook");
        fillPattern(a.memory, 12);
        Completions done = new Completions();

        assertEquals(TransferStatus.OK, a.transport.write(one(b, 0, a, 0, 8192), WAIT_MS, 1, done));
        assertEquals(TransferStatus.CHECKSUM_MISMATCH, done.next().status());

        clearHooks(a.transport);
        assertEquals(TransferStatus.OK, a.transport.write(one(b, 0, a, 0, 8192), WAIT_MS, 2, done));
        assertEquals(TransferStatus.OK, done.next().status());
        assertRangeEquals(a.memory, 0, b.memory, 0, 8192);
    }

    // ------------------------------------------------------------------------------------------ connections

    @Test
    void shouldReconnectInTheBackgroundAfterThePeerRestarts() throws Exception {
        Node b = startNode("b", 1 << 20, UnaryOperator.identity());
        int port = b.transport.localAddress().port();
        Node a = startNode("a", 1 << 20, UnaryOperator.identity(), b);
        assertEquals(PeerState.CONNECTED, a.transport.peerState("b"));

        b.close();
        assertTrue(waitFor(() -> a.transport.peerState("b") != PeerState.CONNECTED, WAIT_MS));
        Node b2 = startNodeOnPort("b", 1 << 20, port);
        fillPattern(b2.memory, 13);

        assertTrue(a.transport.awaitConnected("b", WAIT_MS), "reconnected to the restarted peer");
        Completions done = new Completions();
        assertEquals(TransferStatus.OK, a.transport.read(one(b2, 0, a, 0, 65_536), WAIT_MS, 1, done));
        assertEquals(TransferStatus.OK, done.next().status());
        assertRangeEquals(b2.memory, 0, a.memory, 0, 65_536);
        assertTrue(a.transport.snapshot().peer("b").connects() >= 2);
    }

    // ------------------------------------------------------------------------------------------ fixtures

    /** One node: a transport and one off-heap region registered with it. */
    protected final class Node implements AutoCloseable {
        public final Transport transport;
        public final Arena arena = Arena.ofShared();
        public final MemorySegment memory;
        public final LocalRegion region;
        private boolean closed;

        Node(TransportSettings settings, long regionBytes) {
            transport = newTransport(settings);
            memory = arena.allocate(regionBytes, 4096);
            region = transport.registerRegion(memory);
            transport.start();
        }

        public RemoteRegion remote() {
            return region.describe();
        }

        public PeerAddress address() {
            return transport.localAddress();
        }

        @Override
        public void close() {
            if (!closed) {
                closed = true;
                transport.close();
                arena.close(); // after close: no transport thread touches the region any more
            }
        }
    }

    protected Node startNode(String id, long regionBytes, UnaryOperator<TransportSettings> tweak, Node... peers) {
        PeerAddress[] addresses = new PeerAddress[peers.length];
        for (int i = 0; i < peers.length; i++) {
            addresses[i] = peers[i].address();
        }
        Node node = startNodeWithPeers(id, regionBytes, tweak, addresses);
        for (Node peer : peers) {
            try {
                assertTrue(node.transport.awaitConnected(peer.transport.localNodeId(), WAIT_MS), "connected");
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                fail(e);
            }
        }
        return node;
    }

    protected Node startNodeWithPeers(
            String id, long regionBytes, UnaryOperator<TransportSettings> tweak, PeerAddress... peers) {
        TransportSettings settings =
                TransportSettings.of(id, LOOPBACK, 0, List.of(peers)).withReconnectBackoffMaxMs(100);
        Node node = new Node(tweak.apply(settings), regionBytes);
        nodes.add(node);
        return node;
    }

    private Node startNodeOnPort(String id, long regionBytes, int port) {
        TransportSettings settings = TransportSettings.of(id, LOOPBACK, port, List.of());
        Node node = new Node(settings, regionBytes);
        nodes.add(node);
        return node;
    }

    private static DescriptorList one(Node from, long remoteOffset, Node to, long localOffset, long length) {
        return one(from.remote(), remoteOffset, to, localOffset, length);
    }

    private static DescriptorList one(RemoteRegion from, long remoteOffset, Node to, long localOffset, long length) {
        return new DescriptorList(1).add(from, remoteOffset, to.region, localOffset, length);
    }

    /** A list whose first descriptor is fine, so that only the second one is bad. */
    private static DescriptorList good(Node b, Node a) {
        return new DescriptorList(4).add(b.remote(), 0, a.region, 0, 4096);
    }

    /** Records completions in arrival order; checks each arrives on time. */
    protected static final class Completions implements CompletionHandler {
        record Done(long correlationId, TransferStatus status, long bytes, Thread thread) {}

        private final LinkedBlockingQueue<Done> queue = new LinkedBlockingQueue<>();
        private final Consumer<Done> onTransportThread;

        Completions() {
            this(d -> {});
        }

        /** {@code onTransportThread} runs inside the handler, at the moment of completion. */
        Completions(Consumer<Done> onTransportThread) {
            this.onTransportThread = onTransportThread;
        }

        @Override
        public void onComplete(long correlationId, TransferStatus status, long bytesTransferred) {
            Done d = new Done(correlationId, status, bytesTransferred, Thread.currentThread());
            onTransportThread.accept(d);
            queue.add(d);
        }

        Done next() throws InterruptedException {
            Done d = queue.poll(WAIT_MS, TimeUnit.MILLISECONDS);
            assertNotNull(d, "no completion within " + WAIT_MS + " ms");
            return d;
        }

        Done poll(long waitMs) throws InterruptedException {
            return queue.poll(waitMs, TimeUnit.MILLISECONDS);
        }

        void assertNoMore(long waitMs) throws InterruptedException {
            assertNull(queue.poll(waitMs, TimeUnit.MILLISECONDS), "unexpected completion");
        }
    }

    protected static void fillPattern(MemorySegment memory, long seed) {
        long words = memory.byteSize() / 8;
        for (long i = 0; i < words; i++) {
            long x = (seed << 40) + i;
            x *= 0x9E37_79B9_7F4A_7C15L;
            memory.setAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, i, x ^ (x >>> 29));
        }
        for (long i = words * 8; i < memory.byteSize(); i++) {
            memory.set(ValueLayout.JAVA_BYTE, i, (byte) (seed + i));
        }
    }

    protected static void fill(MemorySegment memory, byte value) {
        memory.fill(value);
    }

    protected static void assertRangeEquals(
            MemorySegment expected, long expectedOffset, MemorySegment actual, long actualOffset, long length) {
        long mismatch = MemorySegment.mismatch(
                expected, expectedOffset, expectedOffset + length, actual, actualOffset, actualOffset + length);
        assertEquals(-1, mismatch, "bytes differ at +" + mismatch + " of " + length);
    }

    protected static void assertRangeFilled(MemorySegment memory, long offset, long length, byte value) {
        for (long i = offset; i < offset + length; i++) {
            if (memory.get(ValueLayout.JAVA_BYTE, i) != value) {
                fail("byte at " + i + " was written: " + memory.get(ValueLayout.JAVA_BYTE, i));
            }
        }
    }

    protected static boolean waitFor(BooleanSupplier condition, long timeoutMs) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline >= 0) {
                return false;
            }
            Thread.sleep(5);
        }
        return true;
    }

    private static long sum(long[] values) {
        long total = 0;
        for (long v : values) {
            total += v;
        }
        return total;
    }

    /** A port nothing listens on (bound, then released). */
    protected static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket()) {
            socket.bind(new InetSocketAddress(LOOPBACK, 0));
            return socket.getLocalPort();
        }
    }
}
