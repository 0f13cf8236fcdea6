package io.pegaflow.actors.directory;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.pegaflow.actors.cluster.ClusterSettings;
import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import io.pegaflow.config.Transport;
import io.pegaflow.store.BlockKey;
import io.pegaflow.store.HashList;
import io.pegaflow.store.StoreEvent;
import java.io.IOException;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.apache.pekko.actor.Address;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Down;
import org.apache.pekko.cluster.typed.Leave;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;

/**
 * The directory on a real three-node cluster: three ActorSystems in this JVM on loopback (free ports, static seeds),
 * every message serialized. Each node's store is a {@link TestStore} (the fingerprints it holds) fed through the real
 * {@link StoreEventPublisher}. The methods run in order on one cluster; the last two take nodes away.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class DirectoryClusterTest {
    private static final String NS = "llama/bf16/tp1";
    private static final Duration ASK = Duration.ofSeconds(3);
    private static final int RANGES = Topology.DEFAULT_DIRECTORY_RANGES;

    private Topology topology;
    private Node a;
    private Node b;
    private Node c;
    private final SplittableRandom random = new SplittableRandom(2026);

    /** One node: its actor system, directory and stand-in store. */
    private record Node(String id, int index, ActorTestKit kit, DirectoryNode directory, TestStore store) {
        void save(byte[]... hashes) {
            List<StoreEvent> events = new ArrayList<>();
            for (byte[] h : hashes) {
                store.add(Fingerprints.of(NS, h));
                events.add(new StoreEvent(StoreEvent.Kind.SEALED, new BlockKey(NS, h), 4096));
            }
            new StoreEventPublisher(directory.publisher()).onEvents(events);
        }

        void evict(byte[]... hashes) {
            List<StoreEvent> events = new ArrayList<>();
            for (byte[] h : hashes) {
                store.remove(Fingerprints.of(NS, h));
                events.add(new StoreEvent(StoreEvent.Kind.EVICTED, new BlockKey(NS, h), 4096));
            }
            new StoreEventPublisher(directory.publisher()).onEvents(events);
        }

        Address address() {
            return Cluster.get(kit.system()).selfMember().address();
        }
    }

    /** A node's holdings: a set of fingerprints; answers for one range can be held back to stretch a rebuild. */
    static final class TestStore implements LocalHoldings {
        private final Set<Long> fingerprints = new HashSet<>();
        private volatile int heldRange = -1;
        private volatile CountDownLatch gate = new CountDownLatch(0);

        synchronized void add(long fp) {
            fingerprints.add(fp);
        }

        synchronized void remove(long fp) {
            fingerprints.remove(fp);
        }

        void holdBack(int range) {
            gate = new CountDownLatch(1);
            heldRange = range;
        }

        void release() {
            heldRange = -1;
            gate.countDown();
        }

        @Override
        public long[] fingerprintsInRange(int range, int rangeCount) {
            if (range == heldRange) {
                try {
                    gate.await(60, TimeUnit.SECONDS); // runs on the holdings dispatcher, not an actor
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            synchronized (this) {
                return fingerprints.stream()
                        .mapToLong(Long::longValue)
                        .filter(fp -> Fingerprints.rangeOf(fp, rangeCount) == range)
                        .toArray();
            }
        }
    }

    @BeforeAll
    void startCluster() throws Exception {
        topology = new Topology("directory-test", RANGES, List.of(nodeSpec("a"), nodeSpec("b"), nodeSpec("c")));
        long started = System.nanoTime();
        a = start("a", "");
        // b is the node killed later: its system stops without leaving the cluster, as a crashed process would.
        b = start(
                "b",
                "pekko.coordinated-shutdown.run-by-actor-system-terminate = off\n"
                        + "pekko.cluster.run-coordinated-shutdown-when-down = off");
        c = start("c", "");
        awaitUp(a, 3, Duration.ofSeconds(60));
        awaitUp(c, 3, Duration.ofSeconds(30));
        long up = System.nanoTime();
        // The first node up starts every range; the next rebalance rounds spread them. Wait for that.
        int[] hosted = awaitBalanced(Duration.ofSeconds(60));
        System.out.printf(
                "[directory] cluster of 3 up in %d ms; ranges balanced %s %d ms later%n",
                (up - started) / 1_000_000, Arrays.toString(hosted), (System.nanoTime() - up) / 1_000_000);
    }

    @AfterAll
    void stopCluster() {
        for (Node n : new Node[] {c, b, a}) {
            if (n != null) {
                try {
                    n.kit().shutdownTestKit();
                } catch (RuntimeException e) {
                    // already stopped by a test
                }
            }
        }
    }

    @Test
    @Order(0)
    @Timeout(60)
    void shouldRunEveryRangeOnItsHomeNodeOnceAllNodesAreUp() throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(45);
        List<Integer> away;
        do {
            int[] hosts = hosts();
            away = new ArrayList<>();
            for (int r = 0; r < RANGES; r++) {
                if (hosts[r] != HomeRangeAllocation.homeOf(r, 3)) {
                    away.add(r);
                }
            }
            if (!away.isEmpty()) {
                Thread.sleep(200);
            }
        } while (!away.isEmpty() && System.nanoTime() < deadline);
        assertEquals(List.of(), away, "ranges not on their home node (range r's home: node r mod 3)");
    }

    @Test
    @Order(1)
    @Timeout(60)
    void shouldLocateFromNodeCABlockPublishedOnNodeA() throws Exception {
        byte[][] hashes = hashes(40);
        a.save(hashes);
        b.save(Arrays.copyOf(hashes, 10));
        LocateResult result = awaitLocate(c, hashes, r -> r.complete() && r.prefixLength() == hashes.length);
        for (int i = 0; i < hashes.length; i++) {
            assertEquals(i < 10 ? List.of("a", "b") : List.of("a"), result.holders(i), "hash " + i);
        }
        long entries = 0;
        long hosted = 0;
        // The keeper wakes every range after membership changes; on a loaded machine the last ones may still be
        // starting when the first lookups complete, so wait (bounded) for all of them to be hosted.
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        do {
            entries = 0;
            hosted = 0;
            for (Node n : new Node[] {a, b, c}) {
                entries += n.directory().counters().entries();
                hosted += n.directory().counters().hostedRanges();
            }
            if (hosted != RANGES) {
                Thread.sleep(100);
            }
        } while (hosted != RANGES && System.nanoTime() < deadline);
        for (Node n : new Node[] {a, b, c}) {
            assertTrue(n.directory().counters().rebuilds() > 0, n.id() + " rebuilt no range");
        }
        assertTrue(entries >= 40, "entries counted: " + entries);
        assertEquals(RANGES, hosted, "every range runs on exactly one node");
        LocateResult unknown = c.directory()
                .client()
                .locate(NS, hashes(3), ASK)
                .toCompletableFuture()
                .get(10, TimeUnit.SECONDS);
        assertEquals(0, unknown.prefixLength());
        assertTrue(unknown.complete());
    }

    @Test
    @Order(2)
    @Timeout(60)
    void shouldForgetAHolderWhenItsBlockIsEvicted() throws Exception {
        byte[][] hashes = hashes(6);
        a.save(hashes);
        c.save(hashes[2]);
        awaitLocate(b, hashes, r -> r.complete() && r.prefixLength() == 6);
        a.evict(hashes[2], hashes[4]);
        LocateResult result = awaitLocate(
                b,
                hashes,
                r -> r.complete()
                        && r.holders(2).equals(List.of("c"))
                        && r.holders(4).isEmpty());
        assertEquals(4, result.prefixLength());
        assertEquals(List.of("c"), result.holders(2));
        assertEquals(List.of(), result.holders(4));
        assertEquals(List.of("a"), result.holders(5));
    }

    @Test
    @Order(3)
    @Timeout(90)
    void shouldLocateABatchOfAThousandHashes() throws Exception {
        byte[][] hashes = hashes(1_000);
        a.save(Arrays.copyOf(hashes, 700));
        c.save(Arrays.copyOfRange(hashes, 300, 1_000));
        awaitLocate(c, hashes, r -> r.complete() && r.prefixLength() == 1_000);
        DirectoryClient client = c.directory().client();
        for (int i = 0; i < 50; i++) {
            client.locate(NS, hashes, ASK).toCompletableFuture().get(10, TimeUnit.SECONDS);
        }
        int runs = 300;
        long[] nanos = new long[runs];
        int partial = 0;
        for (int i = 0; i < runs; i++) {
            long t0 = System.nanoTime();
            LocateResult r =
                    client.locate(NS, hashes, ASK).toCompletableFuture().get(10, TimeUnit.SECONDS);
            nanos[i] = System.nanoTime() - t0;
            if (!r.complete() || r.prefixLength() != 1_000) {
                partial++; // a range moved by a rebalance round and rebuilt meanwhile
            }
        }
        Arrays.sort(nanos);
        System.out.printf(
                "[directory] locate 1,000 hashes over %d ranges from node c, %d runs, serialize-messages on: "
                        + "p50 %.2f ms, p99 %.2f ms, max %.2f ms; %d partial answers; load average %.1f%n",
                RANGES,
                runs,
                nanos[runs / 2] / 1e6,
                nanos[runs * 99 / 100] / 1e6,
                nanos[runs - 1] / 1e6,
                partial,
                java.lang.management.ManagementFactory.getOperatingSystemMXBean()
                        .getSystemLoadAverage());
        assertTrue(partial < runs / 10, partial + " partial answers");
        LocateResult packed = client.locate(NS, HashList.of(hashes), ASK)
                .toCompletableFuture()
                .get(10, TimeUnit.SECONDS);
        LocateResult each = client.locate(NS, hashes, ASK).toCompletableFuture().get(10, TimeUnit.SECONDS);
        if (packed.complete() && each.complete()) {
            assertArrayEquals(each.holderMasks(), packed.holderMasks(), "hashes read in place locate the same");
        }
        long waitUntil = System.nanoTime() + TimeUnit.SECONDS.toNanos(5); // a timed-out waiter leaves just after
        while (client.relayRepliesWaiting() > 0 && System.nanoTime() < waitUntil) {
            Thread.sleep(10);
        }
        assertEquals(0, client.relayRepliesWaiting(), "no relayed lookup is left waiting once answered");
    }

    @Test
    @Order(4)
    @Timeout(120)
    void shouldRebuildTheRangesOfAHostThatDiedFromTheLiveNodes() throws Exception {
        List<Integer> onB = rangesHostedBy(b.index());
        assertTrue(onB.size() >= 2, "b hosts " + onB);
        int held = onB.get(0); // its rebuild is held back by c's store, to watch it incomplete
        int timed = onB.get(1); // rebuilds freely: the time to complete is measured on it
        byte[][] inHeld = hashesIn(held, 12);
        byte[][] inTimed = hashesIn(timed, 12);
        a.save(Arrays.copyOf(inHeld, 8));
        c.save(Arrays.copyOfRange(inHeld, 4, 12));
        b.save(inHeld);
        a.save(Arrays.copyOf(inTimed, 6));
        c.save(Arrays.copyOfRange(inTimed, 6, 12));
        b.save(inTimed[0], inTimed[11]);
        awaitLocate(
                a,
                inHeld,
                r -> r.complete() && r.holders(0).contains("b") && r.holders(11).contains("c"));
        awaitLocate(a, inTimed, r -> r.complete() && r.holders(11).contains("b"));

        c.store().holdBack(held);
        long killed = System.nanoTime();
        b.kit().system().terminate();
        b.kit().system().getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
        Cluster.get(a.kit().system()).manager().tell(new Down(b.address()));
        Address bAddress = b.address();
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (memberOf(a, bAddress) && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        long removedMs = (System.nanoTime() - killed) / 1_000_000;

        // The timed range: complete again (asked directly with short timeouts, to time it closely) and right (a's and
        // c's blocks, none of b's).
        awaitLookup(a, timed, inTimed, reply -> reply.complete() && reply.hostNode() != b.index());
        long completeMs = (System.nanoTime() - killed) / 1_000_000;
        LocateResult timedResult = awaitLocate(
                a,
                inTimed,
                r -> r.complete()
                        && r.prefixLength() == 12
                        && r.holders(0).equals(List.of("a"))
                        && r.holders(11).equals(List.of("c")),
                Duration.ofSeconds(60));
        BlockRange.RangeStats timedStats = stats(a, timed);
        assertTrue(timedStats.hostNode() != b.index());
        for (int i = 0; i < 12; i++) {
            assertEquals(List.of(i < 6 ? "a" : "c"), timedResult.holders(i), "hash " + i);
        }

        // The held range restarted elsewhere too, and says it is incomplete while c's holdings are held back.
        BlockRange.LookupReply during = awaitLookup(a, held, inHeld, reply -> reply.hostNode() != b.index());
        assertFalse(during.complete(), "c has not answered yet");
        // Publishes while it rebuilds: a seals one more block and evicts one; neither may be lost or undone.
        byte[] extra = hashesIn(held, 1)[0];
        a.save(extra);
        a.evict(inHeld[5]);
        awaitLookup(a, held, new byte[][] {extra}, reply -> reply.holderMasks()[0] != 0);
        c.store().release();
        LocateResult heldResult = awaitLocate(a, inHeld, LocateResult::complete);
        for (int i = 0; i < 12; i++) {
            List<String> expected = new ArrayList<>();
            if (i < 8 && i != 5) {
                expected.add("a");
            }
            if (i >= 4) {
                expected.add("c");
            }
            assertEquals(expected, heldResult.holders(i), "hash " + i);
        }
        assertEquals(
                List.of("a"),
                awaitLocate(a, new byte[][] {extra}, LocateResult::complete).holders(0));
        System.out.printf(
                "[directory] host b of %d ranges killed and downed: removed from the cluster %d ms later; "
                        + "range %d complete again %d ms after the kill (%d ms after the removal) on node %s "
                        + "with %d entries%n",
                onB.size(),
                removedMs,
                timed,
                completeMs,
                completeMs - removedMs,
                a.directory().nodes().idOf(timedStats.hostNode()),
                timedStats.entries());
    }

    @Test
    @Order(5)
    @Timeout(90)
    void shouldPurgeTheHoldingsOfANodeThatLeaves() throws Exception {
        byte[][] hashes = hashes(20);
        a.save(Arrays.copyOf(hashes, 10));
        c.save(hashes);
        awaitLocate(
                a,
                hashes,
                r -> r.complete() && r.prefixLength() == 20 && r.holders(19).equals(List.of("c")));
        Cluster.get(a.kit().system()).manager().tell(new Leave(c.address()));
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (Cluster.get(c.kit().system()).selfMember().status() != MemberStatus.removed()
                && System.nanoTime() < deadline) {
            Thread.sleep(100);
        }
        LocateResult result = awaitLocate(a, hashes, r -> r.complete() && r.prefixLength() == 10);
        for (int i = 0; i < 20; i++) {
            assertEquals(i < 10 ? List.of("a") : List.of(), result.holders(i), "hash " + i);
        }
    }

    @Test
    @Order(6)
    @Timeout(120)
    void shouldMoveARestartedNodesRangesBackHome() throws Exception {
        // b was killed (Order 4) and c has left (Order 5): a hosts every range. b comes back on its address.
        b = start("b", "");
        awaitUp(a, 2, Duration.ofSeconds(60));
        long up = System.nanoTime();
        long deadline = up + TimeUnit.SECONDS.toNanos(60);
        List<Integer> notHome;
        int[] hosts;
        do {
            hosts = hosts();
            notHome = new ArrayList<>();
            for (int r = 0; r < RANGES; r++) {
                int home = HomeRangeAllocation.homeOf(r, 3);
                // c's ranges have no home up: they stay on a or b
                if ((home == 2 && hosts[r] != 0 && hosts[r] != 1) || (home != 2 && hosts[r] != home)) {
                    notHome.add(r);
                }
            }
            if (!notHome.isEmpty()) {
                Thread.sleep(200);
            }
        } while (!notHome.isEmpty() && System.nanoTime() < deadline);
        assertEquals(List.of(), notHome, "ranges not back on their home (or on a live node, for c's)");
        byte[][] hashes = hashes(30);
        b.save(hashes);
        LocateResult result = awaitLocate(a, hashes, r -> r.complete() && r.prefixLength() == 30);
        for (int i = 0; i < hashes.length; i++) {
            assertEquals(List.of("b"), result.holders(i), "hash " + i);
        }
        System.out.printf(
                "[directory] b restarted: its %d ranges home %d ms after it was up%n",
                rangesHostedBy(b.index()).size(), (System.nanoTime() - up) / 1_000_000);
    }

    // ---- helpers ----

    private Node start(String id, String overrides) {
        Config config = ConfigFactory.parseString(overrides
                        + "\npekko.cluster.jmx.multi-mbeans-in-same-jvm = on\npekko.actor.serialize-messages = on"
                        + "\npekko.cluster.sharding.rebalance-interval = 2s"
                        // The crash test downs b by hand; SBR's removal margin (its stable-after, 10 s) would only
                        // delay the hand-over of b's ranges, which the printout reports separately.
                        + "\npekko.cluster.down-removal-margin = 1s")
                .withFallback(ClusterSettings.forNode(topology, id, ConfigFactory.load()));
        ActorTestKit kit = ActorTestKit.create(topology.clusterName(), config);
        TestStore store = new TestStore();
        DirectoryNode directory = DirectoryNode.start(kit.system(), topology, id, store);
        return new Node(id, directory.selfIndex(), kit, directory, store);
    }

    private static NodeSpec nodeSpec(String id) throws IOException {
        return new NodeSpec(id, "127.0.0.1", freePort(), 0, 0, List.of(), List.of(), 1 << 20, Transport.TCP);
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static void awaitUp(Node node, int members, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
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
        throw new AssertionError(members + " members not up on " + node.id() + " within " + timeout);
    }

    private byte[][] hashes(int n) {
        byte[][] out = new byte[n][32];
        for (byte[] h : out) {
            random.nextBytes(h);
        }
        return out;
    }

    private byte[][] hashesIn(int range, int n) {
        byte[][] out = new byte[n][];
        int k = 0;
        while (k < n) {
            byte[] h = new byte[32];
            random.nextBytes(h);
            if (Fingerprints.rangeOf(Fingerprints.of(NS, h), RANGES) == range) {
                out[k++] = h;
            }
        }
        return out;
    }

    private static LocateResult awaitLocate(Node from, byte[][] hashes, Predicate<LocateResult> done) throws Exception {
        return awaitLocate(from, hashes, done, Duration.ofSeconds(30));
    }

    private static LocateResult awaitLocate(Node from, byte[][] hashes, Predicate<LocateResult> done, Duration timeout)
            throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        LocateResult last = null;
        while (System.nanoTime() < deadline) {
            last = from.directory()
                    .client()
                    .locate(NS, hashes, ASK)
                    .toCompletableFuture()
                    .get(10, TimeUnit.SECONDS);
            if (done.test(last)) {
                return last;
            }
            Thread.sleep(20);
        }
        throw new AssertionError("locate from " + from.id() + " never satisfied the condition; last: complete="
                + (last == null ? "-" : last.complete() + " prefix=" + last.prefixLength()));
    }

    private static BlockRange.LookupReply awaitLookup(
            Node from, int range, byte[][] hashes, Predicate<BlockRange.LookupReply> done) throws Exception {
        long[] fps =
                Arrays.stream(hashes).mapToLong(h -> Fingerprints.of(NS, h)).toArray();
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (System.nanoTime() < deadline) {
            try {
                BlockRange.LookupReply reply = ClusterSharding.get(from.kit().system())
                        .entityRefFor(BlockRange.TYPE_KEY, Integer.toString(range))
                        .<BlockRange.LookupReply>ask(
                                replyTo -> new BlockRange.Command.Lookup(fps, replyTo), Duration.ofMillis(300))
                        .toCompletableFuture()
                        .get(10, TimeUnit.SECONDS);
                if (done.test(reply)) {
                    return reply;
                }
            } catch (java.util.concurrent.ExecutionException timeoutWhileTheRangeMoves) {
                // asked again below
            }
            Thread.sleep(10);
        }
        throw new AssertionError("range " + range + " never answered as expected");
    }

    private static BlockRange.RangeStats stats(Node from, int range) throws Exception {
        return ClusterSharding.get(from.kit().system())
                .entityRefFor(BlockRange.TYPE_KEY, Integer.toString(range))
                .<BlockRange.RangeStats>ask(BlockRange.Command.GetStats::new, ASK)
                .toCompletableFuture()
                .get(10, TimeUnit.SECONDS);
    }

    private List<Integer> rangesHostedBy(int node) throws Exception {
        List<Integer> out = new ArrayList<>();
        int[] hosts = hosts();
        for (int r = 0; r < RANGES; r++) {
            if (hosts[r] == node) {
                out.add(r);
            }
        }
        return out;
    }

    /** The host node index of every range, asked of all ranges at once. */
    private int[] hosts() throws Exception {
        List<java.util.concurrent.CompletableFuture<BlockRange.RangeStats>> asks = new ArrayList<>();
        ClusterSharding sharding = ClusterSharding.get(a.kit().system());
        for (int r = 0; r < RANGES; r++) {
            asks.add(sharding.entityRefFor(BlockRange.TYPE_KEY, Integer.toString(r))
                    .<BlockRange.RangeStats>ask(BlockRange.Command.GetStats::new, ASK)
                    .toCompletableFuture());
        }
        int[] hosts = new int[RANGES];
        for (int r = 0; r < RANGES; r++) {
            try {
                hosts[r] = asks.get(r).get(10, TimeUnit.SECONDS).hostNode();
            } catch (java.util.concurrent.ExecutionException movingRange) {
                hosts[r] = -1;
            }
        }
        return hosts;
    }

    private int[] awaitBalanced(Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        int[] count = new int[3];
        while (System.nanoTime() < deadline) {
            Arrays.fill(count, 0);
            for (int h : hosts()) {
                if (h >= 0) {
                    count[h]++;
                }
            }
            if (Arrays.stream(count).allMatch(n -> n >= RANGES / 5)) {
                return count;
            }
            Thread.sleep(500);
        }
        throw new AssertionError("ranges never spread over the three nodes: " + Arrays.toString(count));
    }

    private static boolean memberOf(Node node, Address address) {
        for (var m : Cluster.get(node.kit().system()).state().getMembers()) {
            if (m.address().equals(address)) {
                return true;
            }
        }
        return false;
    }
}
