package io.pegaflow.bench.directory;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.pegaflow.actors.cluster.ClusterSettings;
import io.pegaflow.actors.directory.BlockRange;
import io.pegaflow.actors.directory.DirectoryClient;
import io.pegaflow.actors.directory.DirectoryNode;
import io.pegaflow.actors.directory.Fingerprints;
import io.pegaflow.actors.directory.LocateResult;
import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import io.pegaflow.config.Transport;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding;
import org.apache.pekko.cluster.typed.Cluster;

/**
 * Directory lookup latency as a node sees it: three nodes (ActorSystems in this JVM, Artery TCP on loopback, no
 * serialization checks), the ranges spread over them, 1,000 blocks published; then {@code DirectoryClient.locate} of
 * those 1,000 hashes from one node, one call at a time, p50/p90/p99 over the measured runs. {@code --no-relay} asks
 * every range directly (one sharding ask per range) instead of through each host's relay.
 *
 * <pre>
 * java -cp bench/target/classes:$(cat bench/target/classpath.txt) \
 *     io.pegaflow.bench.directory.DirectoryLocateBench [ranges] [runs] [--no-relay]
 * </pre>
 */
public final class DirectoryLocateBench {
    private static final String NS = "bench";
    private static final Duration TIMEOUT = Duration.ofSeconds(5);

    private DirectoryLocateBench() {}

    public static void main(String[] args) throws Exception {
        int ranges = args.length > 0 ? Integer.parseInt(args[0]) : 256;
        int runs = args.length > 1 ? Integer.parseInt(args[1]) : 2_000;
        boolean relay = !Arrays.asList(args).contains("--no-relay");
        List<NodeSpec> specs = new ArrayList<>();
        for (String id : new String[] {"n1", "n2", "n3"}) {
            specs.add(new NodeSpec(id, "127.0.0.1", freePort(), 0, 0, List.of(), List.of(), 1 << 20, Transport.TCP));
        }
        Topology topology = new Topology("locate-bench", ranges, specs);
        List<ActorSystem<Void>> systems = new ArrayList<>();
        List<DirectoryNode> nodes = new ArrayList<>();
        try {
            for (NodeSpec spec : specs) {
                Config config = ConfigFactory.parseString("pekko.cluster.jmx.multi-mbeans-in-same-jvm = on\n"
                                + "pekko.loglevel = WARNING\n"
                                + "pekko.cluster.sharding.rebalance-interval = 2s\n"
                                + "pegaflow.directory.lookup-relay = " + (relay ? "on" : "off"))
                        .withFallback(ClusterSettings.forNode(topology, spec.id(), ConfigFactory.load()));
                ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), topology.clusterName(), config);
                systems.add(system);
                nodes.add(DirectoryNode.start(system, topology, spec.id(), null));
            }
            awaitUp(systems.get(0), 3);
            awaitBalanced(systems.get(0), ranges);

            SplittableRandom random = new SplittableRandom(1);
            byte[][] hashes = new byte[1_000][32];
            for (byte[] h : hashes) {
                random.nextBytes(h);
            }
            long[] fps =
                    Arrays.stream(hashes).mapToLong(h -> Fingerprints.of(NS, h)).toArray();
            nodes.get(0).publisher().publishFingerprints(Arrays.copyOf(fps, 700), new long[0]);
            nodes.get(2).publisher().publishFingerprints(Arrays.copyOfRange(fps, 300, 1_000), new long[0]);
            DirectoryClient client = nodes.get(2).client();
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (true) {
                LocateResult r = locate(client, hashes);
                if (r.complete() && r.prefixLength() == 1_000) {
                    break;
                }
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("the blocks never became visible");
                }
                Thread.sleep(50);
            }
            for (int i = 0; i < Math.max(200, runs / 5); i++) {
                locate(client, hashes);
            }
            long[] nanos = new long[runs];
            int partial = 0;
            double loadBefore = ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
            long cpu0 = processCpuNanos();
            long wall0 = System.nanoTime();
            for (int i = 0; i < runs; i++) {
                long t0 = System.nanoTime();
                LocateResult r = locate(client, hashes);
                nanos[i] = System.nanoTime() - t0;
                if (!r.complete() || r.prefixLength() != 1_000) {
                    partial++;
                }
            }
            long cpuPerCall = (processCpuNanos() - cpu0) / runs;
            long wallPerCall = (System.nanoTime() - wall0) / runs;
            Arrays.sort(nanos);
            System.out.printf(
                    "locate 1,000 hashes, %d ranges over 3 nodes, %s, %d runs: p50 %.3f ms, p90 %.3f ms, "
                            + "p99 %.3f ms, max %.3f ms; %d partial; CPU (all 3 nodes) %.3f ms per call over %.3f ms "
                            + "wall; load average %.2f before, %.2f after, %d cores%n",
                    ranges,
                    relay ? "through each host's relay" : "one ask per range",
                    runs,
                    nanos[runs / 2] / 1e6,
                    nanos[runs * 9 / 10] / 1e6,
                    nanos[runs * 99 / 100] / 1e6,
                    nanos[runs - 1] / 1e6,
                    partial,
                    cpuPerCall / 1e6,
                    wallPerCall / 1e6,
                    loadBefore,
                    ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage(),
                    Runtime.getRuntime().availableProcessors());
        } finally {
            for (ActorSystem<Void> s : systems) {
                s.terminate();
            }
            for (ActorSystem<Void> s : systems) {
                s.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
            }
        }
    }

    private static LocateResult locate(DirectoryClient client, byte[][] hashes) throws Exception {
        return client.locate(NS, hashes, TIMEOUT).toCompletableFuture().get(10, TimeUnit.SECONDS);
    }

    /** CPU time of this whole process (all three nodes and the caller), the figure a loaded machine does not skew. */
    private static long processCpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime();
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static void awaitUp(ActorSystem<?> system, int members) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (System.nanoTime() < deadline) {
            long up = 0;
            for (var m : Cluster.get(system).state().getMembers()) {
                if (m.status() == MemberStatus.up()) {
                    up++;
                }
            }
            if (up == members) {
                return;
            }
            Thread.sleep(100);
        }
        throw new IllegalStateException("cluster did not form");
    }

    /** Waits until every node hosts at least a fifth of the ranges (the first rebalance rounds are done). */
    private static void awaitBalanced(ActorSystem<?> system, int ranges) throws Exception {
        ClusterSharding sharding = ClusterSharding.get(system);
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (System.nanoTime() < deadline) {
            List<CompletableFuture<BlockRange.RangeStats>> asks = new ArrayList<>();
            for (int r = 0; r < ranges; r++) {
                asks.add(sharding.entityRefFor(BlockRange.TYPE_KEY, Integer.toString(r))
                        .<BlockRange.RangeStats>ask(BlockRange.Command.GetStats::new, TIMEOUT)
                        .toCompletableFuture());
            }
            int[] count = new int[3];
            for (CompletableFuture<BlockRange.RangeStats> f : asks) {
                try {
                    count[f.get(10, TimeUnit.SECONDS).hostNode()]++;
                } catch (java.util.concurrent.ExecutionException moving) {
                    // counted on the next round
                }
            }
            if (Arrays.stream(count).allMatch(c -> c >= ranges / 5)) {
                return;
            }
            Thread.sleep(500);
        }
        throw new IllegalStateException("ranges did not spread over the nodes");
    }
}
