package io.pegaflow.actors.transfer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.pegaflow.actors.cluster.ClusterSettings;
import io.pegaflow.actors.directory.DirectoryNode;
import io.pegaflow.actors.directory.LocateResult;
import io.pegaflow.actors.directory.StoreEventPublisher;
import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import io.pegaflow.store.BlockKey;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.IncomingBlock;
import io.pegaflow.store.NamespaceLayout;
import io.pegaflow.store.StoreEvent;
import io.pegaflow.store.pool.BlockPool;
import io.pegaflow.transport.LocalRegion;
import io.pegaflow.transport.PeerAddress;
import io.pegaflow.transport.TransferStatus;
import io.pegaflow.transport.TransportSettings;
import io.pegaflow.transport.tcp.TcpTestHook;
import io.pegaflow.transport.tcp.TcpTransport;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;

/**
 * Remote fetches under faults, on a real three-node cluster: three ActorSystems in this JVM on loopback (every message
 * serialized), each with a real {@link BlockStore} over an off-heap pool, a real {@link TcpTransport} (the pool
 * registered as its region), the real block directory and a {@link TransferCoordinator}. Node a fetches; b and c
 * hold. A slow or misbehaving holder is made with the TCP transport's test hook ({@link TcpTestHook}, serving thread),
 * a holder whose lease expires early with its store's clock, which the test moves. The last test drains a.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class TransferFaultClusterTest {
    private static final NamespaceLayout LAYOUT = new NamespaceLayout("fault/ns", 2, 1, 32 << 10);
    private static final Duration WAIT = Duration.ofSeconds(30);

    private Topology topology;
    private Node a;
    private Node b;
    private Node c;
    private final SplittableRandom random = new SplittableRandom(12);

    /** One node: actor system, store (its clock moved by the test), transport, directory, coordinator. */
    private record Node(
            String id,
            ActorTestKit kit,
            BlockStore store,
            AtomicLong clockSkewNs,
            TcpTransport transport,
            LocalRegion region,
            DirectoryNode directory,
            TransferCounters counters,
            ActorRef<TransferCoordinator.Command> coordinator,
            ExecutorService storeExecutor) {

        /** Seals {@code hashes} here with random bytes, as a save would; returns the bytes per hash. */
        List<byte[]> hold(SplittableRandom random, byte[]... hashes) {
            List<byte[]> contents = new ArrayList<>();
            for (byte[] hash : hashes) {
                IncomingBlock block = store.reserveIncoming(LAYOUT, hash).orElseThrow();
                byte[] bytes = new byte[(int) LAYOUT.blockBytes()];
                random.nextBytes(bytes);
                MemorySegment.copy(
                        bytes, 0, slot(block.descriptor().poolOffset()), ValueLayout.JAVA_BYTE, 0, bytes.length);
                store.commitIncoming(block);
                contents.add(bytes);
            }
            return contents;
        }

        /** Tells the directory this node holds {@code hashes} without holding them (a stale directory entry). */
        void claim(byte[]... hashes) {
            List<StoreEvent> events = new ArrayList<>();
            for (byte[] h : hashes) {
                events.add(new StoreEvent(StoreEvent.Kind.SEALED, new BlockKey(LAYOUT.namespace(), h), 0));
            }
            new StoreEventPublisher(directory.publisher()).onEvents(events);
        }

        MemorySegment slot(long offset) {
            return store.pool().memory().asSlice(offset, LAYOUT.blockBytes());
        }

        byte[] sealedBytes(byte[] hash) {
            long offset =
                    store.describeSealed(LAYOUT.namespace(), hash).orElseThrow().poolOffset();
            return slot(offset).toArray(ValueLayout.JAVA_BYTE);
        }

        TransferCoordinator.FetchResult fetch(byte[]... hashes) {
            TestProbe<TransferCoordinator.FetchResult> probe = TestProbe.create(kit.system());
            coordinator.tell(new TransferCoordinator.Command.Fetch(LAYOUT, hashes, probe.getRef()));
            return probe.expectMessageClass(TransferCoordinator.FetchResult.class, Duration.ofSeconds(20));
        }
    }

    @BeforeAll
    void startCluster() throws Exception {
        int[] transportPorts = {freePort(), freePort(), freePort()};
        topology = new Topology(
                "transfer-fault-test",
                Topology.DEFAULT_DIRECTORY_RANGES,
                List.of(
                        nodeSpec("a", transportPorts[0]),
                        nodeSpec("b", transportPorts[1]),
                        nodeSpec("c", transportPorts[2])));
        // a's transport takes one transfer per peer at a time, so a second fetch from a busy holder is back-pressured.
        a = start("a", 1);
        b = start("b", TransportSettings.DEFAULT_MAX_IN_FLIGHT_PER_PEER);
        c = start("c", TransportSettings.DEFAULT_MAX_IN_FLIGHT_PER_PEER);
        for (Node n : List.of(a, b, c)) {
            awaitUp(n, 3);
        }
        for (String peer : List.of("b", "c")) {
            assertTrue(a.transport().awaitConnected(peer, WAIT.toMillis()), "a connected to " + peer);
        }
        // Fetch once from each holder so both coordinators are known to a's (the receptionist's listing is async).
        for (Node holder : List.of(b, c)) {
            byte[][] warm = hashes(1);
            holder.hold(random, warm);
            awaitHolders(warm, List.of(holder.id()));
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (!a.fetch(warm).fetched()[0]) {
                assertTrue(System.nanoTime() < deadline, "a never fetched from " + holder.id());
                Thread.sleep(200);
            }
        }
    }

    @AfterAll
    void stopCluster() {
        for (Node n : new Node[] {c, b, a}) {
            if (n != null) {
                n.kit().shutdownTestKit();
                n.transport().close();
                n.storeExecutor().shutdownNow();
                n.store().pool().close();
            }
        }
    }

    @Test
    @Order(1)
    @Timeout(60)
    void shouldTryAnotherHolderWhenTheFirstRefusesTheLeaseAndFetchByteExact() throws Exception {
        byte[][] hashes = hashes(5);
        // The directory says b holds all five, c four: b is asked first, holds none (stale entries), refuses.
        b.claim(hashes);
        List<byte[]> onC = c.hold(random, java.util.Arrays.copyOf(hashes, 4));
        awaitHolders(hashes, null, r -> r.holders(0).size() == 2 && r.holders(4).equals(List.of("b")));
        long retries = a.counters().retries.sum();
        long refusedByB = failures(a, "b", "lease_refused");

        TransferCoordinator.FetchResult result = a.fetch(hashes);

        assertArrayEquals(new boolean[] {true, true, true, true, false}, result.fetched(), result.failureReason());
        for (int i = 0; i < 4; i++) {
            assertArrayEquals(onC.get(i), a.sealedBytes(hashes[i]), "block " + i);
        }
        assertFalse(a.store().isSealed(LAYOUT.namespace(), hashes[4]));
        assertEquals(refusedByB + 1, failures(a, "b", "lease_refused"));
        assertEquals(retries + 1, a.counters().retries.sum());
        assertEquals(0, a.store().incomingBlocks());
        awaitNoLeases(c);
    }

    @Test
    @Order(2)
    @Timeout(60)
    void shouldReportBlocksFailedAndSealNothingWhenTheHolderLeaseExpiresMidTransfer() throws Exception {
        byte[][] hashes = hashes(3);
        b.hold(random, hashes);
        awaitHolders(hashes, List.of("b"));
        long expiredOnB = b.counters().leasesExpiredBeforeRelease.sum();
        // Mid-transfer, b's clock jumps past the lease (its store expires it, the blocks become evictable) and the
        // first block's slot is reused by other bytes: what a reads must not be sealed.
        CountDownLatch served = new CountDownLatch(1);
        b.transport().setTestHook(new TcpTestHook() {
            @Override
            public void beforeServingBlockPart(int blockIndex, int part) {
                if (blockIndex == 0 && part == 0 && served.getCount() == 1) {
                    b.clockSkewNs().addAndGet(TimeUnit.HOURS.toNanos(1));
                    b.store().sweep();
                    long offset = b.store()
                            .describeSealed(LAYOUT.namespace(), hashes[0])
                            .orElseThrow()
                            .poolOffset();
                    b.slot(offset).fill((byte) 0x5A);
                    served.countDown();
                }
            }
        });
        try {
            TransferCoordinator.FetchResult result = a.fetch(hashes);

            assertEquals(0, served.getCount(), "the hook ran");
            assertArrayEquals(new boolean[3], result.fetched());
            assertTrue(result.failureReason().contains("expired"), result.failureReason());
        } finally {
            b.transport().setTestHook(TcpTestHook.NONE);
        }
        for (byte[] h : hashes) {
            assertFalse(a.store().isSealed(LAYOUT.namespace(), h), "nothing half-copied is sealed");
        }
        assertEquals(0, a.store().incomingBlocks(), "the reservations are released");
        assertEquals(expiredOnB + 1, b.counters().leasesExpiredBeforeRelease.sum());
        assertTrue(failures(a, "b", "lease_expired") >= 1);
        assertEquals(0, b.store().activeLeases());
    }

    @Test
    @Order(3)
    @Timeout(60)
    void shouldReportBlocksFailedAndSealNothingWhenTheTransportIsBackPressured() throws Exception {
        byte[][] slow = hashes(2);
        byte[][] refused = hashes(2);
        List<byte[]> slowBytes = b.hold(random, slow);
        b.hold(random, refused);
        awaitHolders(slow, List.of("b"));
        awaitHolders(refused, List.of("b"));
        long backPressured = a.counters().backPressured.sum();
        // b serves the first fetch slowly: it holds a's only in-flight slot to b while the second fetch is submitted.
        CountDownLatch entered = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        b.transport().setTestHook(new TcpTestHook() {
            @Override
            public void beforeServingBlockPart(int blockIndex, int part) throws InterruptedException {
                if (blockIndex == 0 && part == 0 && entered.getCount() == 1) {
                    entered.countDown();
                    release.await(20, TimeUnit.SECONDS);
                }
            }
        });
        try {
            TestProbe<TransferCoordinator.FetchResult> first =
                    TestProbe.create(a.kit().system());
            a.coordinator().tell(new TransferCoordinator.Command.Fetch(LAYOUT, slow, first.getRef()));
            assertTrue(entered.await(20, TimeUnit.SECONDS), "the first transfer reached b");

            TransferCoordinator.FetchResult result = a.fetch(refused);

            assertArrayEquals(new boolean[2], result.fetched());
            assertTrue(result.failureReason().contains("BACK_PRESSURED"), result.failureReason());
            assertEquals(backPressured + 1, a.counters().backPressured.sum());
            for (byte[] h : refused) {
                assertFalse(a.store().isSealed(LAYOUT.namespace(), h));
            }
            assertEquals(2, a.store().incomingBlocks(), "only the first fetch's reservations are left");
            release.countDown();
            var firstResult = first.expectMessageClass(TransferCoordinator.FetchResult.class, Duration.ofSeconds(20));
            assertArrayEquals(new boolean[] {true, true}, firstResult.fetched(), firstResult.failureReason());
            assertArrayEquals(slowBytes.get(0), a.sealedBytes(slow[0]));
        } finally {
            release.countDown();
            b.transport().setTestHook(TcpTestHook.NONE);
        }
        assertEquals(0, a.store().incomingBlocks());
        awaitNoLeases(b);
    }

    @Test
    @Order(4)
    @Timeout(60)
    void shouldTryTheNextHolderWhenTheFirstTransferTimesOutAndSealNoneOfItsBytes() throws Exception {
        byte[][] hashes = hashes(4);
        // b holds three and claims a fourth (b is asked first) but serves too slowly; c holds the three, other bytes.
        b.hold(random, java.util.Arrays.copyOf(hashes, 3));
        b.claim(hashes[3]);
        List<byte[]> onC = c.hold(random, java.util.Arrays.copyOf(hashes, 3));
        awaitHolders(hashes, null, r -> r.holders(0).size() == 2 && r.holders(3).equals(List.of("b")));
        long timedOut = failures(a, "b", "timed_out");
        CountDownLatch release = new CountDownLatch(1);
        b.transport().setTestHook(new TcpTestHook() {
            @Override
            public void beforeServingBlockPart(int blockIndex, int part) throws InterruptedException {
                if (blockIndex == 0 && part == 0) {
                    release.await(20, TimeUnit.SECONDS); // past a's 5 s transfer timeout
                }
            }
        });
        TransferCoordinator.FetchResult result;
        try {
            result = a.fetch(hashes);
        } finally {
            release.countDown();
            b.transport().setTestHook(TcpTestHook.NONE);
        }
        assertArrayEquals(new boolean[] {true, true, true, false}, result.fetched(), result.failureReason());
        assertEquals(timedOut + 1, failures(a, "b", "timed_out"));
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(onC.get(i), a.sealedBytes(hashes[i]), "block " + i + " holds c's bytes, none of b's");
        }
        assertEquals(0, a.store().incomingBlocks());
        awaitNoLeases(b);
        awaitNoLeases(c);
        // b's late reply is dropped on a; the sealed blocks keep c's bytes.
        Thread.sleep(500);
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(onC.get(i), a.sealedBytes(hashes[i]));
        }
    }

    @Test
    @Order(5)
    @Timeout(60)
    void shouldCancelTransfersThroughTheTransportAndAbortReservationsOnDrain() throws Exception {
        byte[][] hashes = hashes(3);
        b.hold(random, hashes);
        awaitHolders(hashes, List.of("b"));
        long cancelled = cancelledTransfers(a, "b");
        long lateBytes = a.transport().snapshot().lateBytesDiscarded();
        CountDownLatch entered = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        b.transport().setTestHook(new TcpTestHook() {
            @Override
            public void beforeServingBlockPart(int blockIndex, int part) throws InterruptedException {
                if (blockIndex == 0 && part == 0 && entered.getCount() == 1) {
                    entered.countDown();
                    release.await(20, TimeUnit.SECONDS);
                }
            }
        });
        try {
            TestProbe<TransferCoordinator.FetchResult> fetch =
                    TestProbe.create(a.kit().system());
            a.coordinator().tell(new TransferCoordinator.Command.Fetch(LAYOUT, hashes, fetch.getRef()));
            assertTrue(entered.await(20, TimeUnit.SECONDS), "the transfer reached b");
            assertEquals(3, a.store().incomingBlocks());

            TestProbe<TransferCoordinator.Drained> drained =
                    TestProbe.create(a.kit().system());
            a.coordinator().tell(new TransferCoordinator.Command.Drain(drained.getRef()));

            assertEquals(
                    1,
                    drained.expectMessageClass(TransferCoordinator.Drained.class, Duration.ofSeconds(10))
                            .fetchesEnded());
            assertEquals(0, a.store().incomingBlocks(), "aborted before the drain is answered");
            assertEquals(cancelled + 1, cancelledTransfers(a, "b"), "cancelled through the transport");
            var result = fetch.expectMessageClass(TransferCoordinator.FetchResult.class, Duration.ofSeconds(5));
            assertArrayEquals(new boolean[3], result.fetched());
            // Drained: a new fetch is refused at once.
            TransferCoordinator.FetchResult after = a.fetch(hashes);
            assertNotNull(after.failureReason());
            assertArrayEquals(new boolean[3], after.fetched());
        } finally {
            release.countDown();
            b.transport().setTestHook(TcpTestHook.NONE);
        }
        // b's late reply is dropped on a, never written into the freed pool space.
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (a.transport().snapshot().lateBytesDiscarded() == lateBytes && System.nanoTime() < deadline) {
            Thread.sleep(50);
        }
        assertTrue(a.transport().snapshot().lateBytesDiscarded() > lateBytes);
        for (byte[] h : hashes) {
            assertFalse(a.store().isSealed(LAYOUT.namespace(), h));
        }
    }

    // ---- helpers ----

    private Node start(String id, int maxInFlightPerPeer) throws Exception {
        Config config = ConfigFactory.parseString(
                        "pekko.cluster.jmx.multi-mbeans-in-same-jvm = on\npekko.actor.serialize-messages = on")
                .withFallback(ClusterSettings.forNode(topology, id, ConfigFactory.load()));
        ActorTestKit kit = ActorTestKit.create(topology.clusterName(), config);
        AtomicLong skew = new AtomicLong();
        BlockPool pool = BlockPool.allocateOffHeap(8L << 20);
        BlockStore store = new BlockStore(pool, TimeUnit.SECONDS.toNanos(30), () -> System.nanoTime() + skew.get());
        NodeSpec self = topology.requireNode(id);
        List<PeerAddress> peers = new ArrayList<>();
        for (NodeSpec n : topology.nodes()) {
            if (!n.id().equals(id)) {
                peers.add(new PeerAddress(n.id(), n.host(), n.transportPort()));
            }
        }
        TcpTransport transport = new TcpTransport(TransportSettings.of(id, self.host(), self.transportPort(), peers)
                .withMaxInFlightPerPeer(maxInFlightPerPeer));
        LocalRegion region = transport.registerRegion(pool.memory());
        transport.start();
        DirectoryNode directory = DirectoryNode.start(kit.system(), topology, id, null);
        StoreEventPublisher publisher = new StoreEventPublisher(directory.publisher());
        store.setListener(publisher::onEvents);
        TransferCounters counters = new TransferCounters();
        ExecutorService storeExecutor = Executors.newSingleThreadExecutor();
        ActorRef<TransferCoordinator.Command> coordinator = kit.spawn(
                TransferCoordinator.create(
                        store,
                        transport,
                        region,
                        directory.client(),
                        topology,
                        storeExecutor,
                        TransferCoordinator.Settings.defaults(),
                        counters),
                TransferCoordinator.NAME);
        return new Node(id, kit, store, skew, transport, region, directory, counters, coordinator, storeExecutor);
    }

    private static NodeSpec nodeSpec(String id, int transportPort) throws IOException {
        return new NodeSpec(
                id,
                "127.0.0.1",
                freePort(),
                0,
                0,
                List.of(),
                List.of(),
                8L << 20,
                io.pegaflow.config.Transport.TCP,
                transportPort);
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static void awaitUp(Node node, int members) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (System.nanoTime() < deadline) {
            long up = 0;
            for (var m : Cluster.get(node.kit().system()).state().getMembers()) {
                if (m.status() == MemberStatus.up()) {
                    up++;
                }
            }
            if (up == members) {
                return;
            }
            Thread.sleep(100);
        }
        throw new AssertionError(members + " members not up on " + node.id());
    }

    private byte[][] hashes(int n) {
        byte[][] out = new byte[n][32];
        for (byte[] h : out) {
            random.nextBytes(h);
        }
        return out;
    }

    private void awaitHolders(byte[][] hashes, List<String> holders) throws Exception {
        awaitHolders(hashes, holders, r -> true);
    }

    /** Until a's directory lookup is complete and names {@code holders} for every hash (null: any) and {@code more}. */
    private void awaitHolders(byte[][] hashes, List<String> holders, Predicate<LocateResult> more) throws Exception {
        long deadline = System.nanoTime() + WAIT.toNanos();
        LocateResult last = null;
        while (System.nanoTime() < deadline) {
            try {
                last = a.directory()
                        .client()
                        .locate(LAYOUT.namespace(), hashes, Duration.ofSeconds(2))
                        .toCompletableFuture()
                        .get(5, TimeUnit.SECONDS);
                boolean all = last.complete() && more.test(last);
                for (int i = 0; all && holders != null && i < hashes.length; i++) {
                    all = last.holders(i).equals(holders);
                }
                if (all) {
                    return;
                }
            } catch (Exception e) {
                // not formed yet: ask again
            }
            Thread.sleep(100);
        }
        throw new AssertionError("directory never showed " + holders + ": " + last);
    }

    private static long failures(Node node, String peer, String reason) {
        Map<TransferCounters.AttemptFailure, Long> all = node.counters().attemptFailures();
        return all.getOrDefault(new TransferCounters.AttemptFailure(peer, reason), 0L);
    }

    private static long cancelledTransfers(Node node, String peer) {
        return node.transport().snapshot().peer(peer).completions(TransferStatus.CANCELLED);
    }

    /** The holder's lease ends by a message after the fetch was answered: wait for it. */
    private static void awaitNoLeases(Node holder) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (holder.store().activeLeases() != 0 && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        assertEquals(0, holder.store().activeLeases(), "leases left on " + holder.id());
    }
}
