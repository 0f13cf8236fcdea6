package io.pegaflow.bench.fabric;

import com.google.protobuf.ByteString;
import io.pegaflow.fabric.cli.FabricClients;
import io.pegaflow.fabric.cli.HostPort;
import io.pegaflow.fabric.cli.LocateWire;
import io.pegaflow.fabric.cli.NodeProcess;
import io.pegaflow.fabric.cli.StatusFormat;
import io.pegaflow.proto.engine.BlockRef;
import io.pegaflow.proto.engine.ByteSegment;
import io.pegaflow.proto.engine.EngineClient;
import io.pegaflow.proto.engine.LayerRegistration;
import io.pegaflow.proto.engine.MemoryRegion;
import io.pegaflow.proto.engine.RegisterContextRequest;
import io.pegaflow.proto.engine.SaveRequest;
import io.pegaflow.proto.engine.SharedMemoryRegion;
import io.pegaflow.proto.fabric.ClusterStatusRequest;
import io.pegaflow.proto.fabric.FabricClient;
import io.pegaflow.proto.fabric.LocateRequest;
import io.pegaflow.proto.fabric.LocateResponse;
import java.io.RandomAccessFile;
import java.lang.management.ManagementFactory;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

/**
 * {@code Locate} of 1,000 hashes over gRPC on a 3-node loopback cluster (three node processes): a shm worker saves
 * 1,000 blocks on n1 through the engine's gRPC, then one client times {@code Locate} of those hashes against n3, one
 * call at a time. Prints p50/p90/p99/max in ms and the CPU each process spent per call.
 *
 * <p>Run: {@code java -cp bench/target/classes:$(cat bench/target/classpath.txt)
 * io.pegaflow.bench.fabric.LocateGrpcBench [calls=2000] [warmup=400] [packed|legacy] [plain|pekko]}: {@code packed}
 * (default) sends the hashes as {@code packed_hashes} and asks for the packed reply ({@link LocateWire}); {@code
 * legacy} sends one {@code bytes} per hash and reads {@code blocks}, as clients of the previous release do. {@code
 * plain} (default) times the calls with {@link PlainLocateClient} (grpc-java, a lean client as a router would use);
 * {@code pekko} with the pekko-grpc generated client (heavier: its CPU shows in the client's share). The system
 * property {@code locate.bench.nodeFlags} adds JVM flags to the node processes (space-separated, e.g. a JFR
 * recording), {@code locate.bench.jfrDumpDir} dumps such a recording of each node before the nodes are killed; the
 * timed window's wall-clock bounds are printed ({@code timed window (epoch ms)}) to cut a recording to it.
 */
public final class LocateGrpcBench {
    private static final int HASHES = 1000;
    private static final int LAYERS = 1;
    private static final int LAYER_BLOCK_BYTES = 4096;

    public static void main(String[] args) throws Exception {
        int calls = args.length > 0 ? Integer.parseInt(args[0]) : 2000;
        int warmup = args.length > 1 ? Integer.parseInt(args[1]) : 400;
        String form = args.length > 2 ? args[2] : "packed";
        if (!form.equals("packed") && !form.equals("legacy")) {
            throw new IllegalArgumentException("request form: packed or legacy, got " + form);
        }
        String clientKind = args.length > 3 ? args[3] : "plain";
        if (!clientKind.equals("plain") && !clientKind.equals("pekko")) {
            throw new IllegalArgumentException("client: plain or pekko, got " + clientKind);
        }
        List<String> nodeFlags = new ArrayList<>(List.of("-Xmx512m"));
        String extra = System.getProperty("locate.bench.nodeFlags", "").strip();
        if (!extra.isEmpty()) {
            nodeFlags.addAll(List.of(extra.split("\\s+")));
        }
        Path dir = Files.createTempDirectory("pegaflow-locate-bench");
        int[] ports = freePorts(9);
        StringBuilder yaml = new StringBuilder("cluster: locate-bench\nnodes:\n");
        for (int i = 0; i < 3; i++) {
            yaml.append("  - id: n%d\n    host: 127.0.0.1\n    clusterPort: %d\n    grpcPort: %d\n    metricsPort: %d\n"
                    .formatted(i + 1, ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]));
            yaml.append("    poolSize: 64mb\n    transport: tcp\n");
        }
        Path topology = dir.resolve("cluster.yaml");
        Files.writeString(topology, yaml);
        List<NodeProcess> nodes = new java.util.concurrent.CopyOnWriteArrayList<>();
        // A bench killed by its timeout (SIGTERM) takes its node processes with it.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> nodes.forEach(NodeProcess::close)));
        Path shm = Path.of("/dev/shm", "pegaflow-locate-bench-" + UUID.randomUUID());
        PlainLocateClient plain = null;
        try (FabricClients clients = new FabricClients()) {
            for (int i = 1; i <= 3; i++) {
                nodes.add(NodeProcess.start(
                        "n" + i,
                        nodeFlags,
                        List.of("--topology", topology.toString(), "--node", "n" + i),
                        dir.resolve("logs")));
            }
            Duration call = Duration.ofSeconds(10);
            FabricClient n3 = clients.fabric(new HostPort("127.0.0.1", ports[7]), call);
            awaitUp(n3);
            EngineClient n1 = clients.engine(new HostPort("127.0.0.1", ports[1]), call);
            try (RandomAccessFile f = new RandomAccessFile(shm.toFile(), "rw")) {
                f.setLength((long) LAYERS * HASHES * LAYER_BLOCK_BYTES);
            }
            String context = n1.registerContext(RegisterContextRequest.newBuilder()
                            .setInstanceId("bench")
                            .setNamespace("bench")
                            .setTpSize(1)
                            .setTotalLayers(LAYERS)
                            .setDevice("host")
                            .addLayers(LayerRegistration.newBuilder()
                                    .setName("model.layers.0.attn")
                                    .setRegion(MemoryRegion.newBuilder()
                                            .setShm(SharedMemoryRegion.newBuilder()
                                                    .setPath(shm.toString())))
                                    .setNumBlocks(HASHES)
                                    .setBlockStrideBytes(LAYER_BLOCK_BYTES)
                                    .addSegments(ByteSegment.newBuilder().setLengthBytes(LAYER_BLOCK_BYTES)))
                            .build())
                    .toCompletableFuture()
                    .get(30, TimeUnit.SECONDS)
                    .getContextId();
            SaveRequest.Builder save = SaveRequest.newBuilder().setContextId(context);
            LocateRequest.Builder locate = LocateRequest.newBuilder().setNamespace("bench");
            List<byte[]> hashes = new ArrayList<>();
            for (int i = 0; i < HASHES; i++) {
                byte[] h = new byte[32];
                ByteBuffer.wrap(h).putLong(0xbe9cL).putInt(i);
                save.addBlocks(BlockRef.newBuilder().setBlockId(i).setHash(ByteString.copyFrom(h)));
                locate.addHashes(ByteString.copyFrom(h));
                hashes.add(h);
            }
            n1.save(save.build()).toCompletableFuture().get(30, TimeUnit.SECONDS);
            LocateRequest request = form.equals("legacy") ? locate.build() : LocateWire.request("bench", hashes);
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            LocateResponse reply;
            do {
                reply = n3.locate(request).toCompletableFuture().get(10, TimeUnit.SECONDS);
            } while ((reply.getPrefixLength() < HASHES || !reply.getComplete()) && System.nanoTime() < deadline);
            System.out.printf(
                    "ready: prefix %d of %d, complete %b%n", reply.getPrefixLength(), HASHES, reply.getComplete());
            // Ranges first start on the first node Up and move when the others join: a range that moves rebuilds on
            // its new host and answers "incomplete" meanwhile. Time the steady state, not the rebalance.
            awaitSettled(new int[] {ports[2], ports[5], ports[8]});
            plain = clientKind.equals("plain") ? new PlainLocateClient("127.0.0.1", ports[7]) : null;
            System.out.println("client: "
                    + (plain != null
                            ? "plain grpc-java (PlainLocateClient)"
                            : "pekko-grpc generated client (FabricClient)"));
            long epoch0 = 0;
            long[] ns = new long[calls];
            int partial = 0;
            long cpu0 = 0;
            long[] cpuEach0 = null;
            double[] idleRate = null;
            long wall0 = 0;
            double load0 = 0;
            for (int i = -warmup; i < calls; i++) {
                if (i == 0) {
                    long[] idle0 = cpuNanosEach();
                    long idleWall0 = System.nanoTime();
                    Thread.sleep(5_000);
                    idleRate = rates(idle0, cpuNanosEach(), System.nanoTime() - idleWall0);
                    System.out.println("timed calls start");
                    cpuEach0 = cpuNanosEach();
                    cpu0 = cpuNanosOfAll();
                    wall0 = System.nanoTime();
                    load0 = ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
                    epoch0 = System.currentTimeMillis();
                }
                long t = System.nanoTime();
                reply = plain != null
                        ? plain.locate(request, call)
                        : n3.locate(request).toCompletableFuture().get(10, TimeUnit.SECONDS);
                long took = System.nanoTime() - t;
                if (i >= 0) {
                    ns[i] = took;
                    if (!reply.getComplete()
                            || reply.getPrefixLength() != HASHES
                            || LocateWire.holders(reply, HASHES - 1).isEmpty()) {
                        partial++;
                        // which way it fell short, and when: to match against the nodes' logs and recordings
                        System.out.printf(
                                "partial answer: call %d at epoch ms %d, %.2f ms, complete %s, prefix %d of %d,"
                                        + " last hash held by %s%n",
                                i,
                                System.currentTimeMillis(),
                                took / 1e6,
                                reply.getComplete(),
                                reply.getPrefixLength(),
                                HASHES,
                                LocateWire.holders(reply, HASHES - 1));
                    }
                }
            }
            double cpuMs = (cpuNanosOfAll() - cpu0) / 1e6 / calls;
            System.out.printf(
                    "timed window (epoch ms): %d %d; node pids in start order: %s%n",
                    epoch0,
                    System.currentTimeMillis(),
                    ProcessHandle.current()
                            .children()
                            .map(ProcessHandle::pid)
                            .sorted()
                            .toList());
            long[] cpuEach = cpuNanosEach();
            double wallNs = System.nanoTime() - wall0;
            StringBuilder each = new StringBuilder();
            double net = 0;
            for (int k = 0; k < cpuEach.length && k < cpuEach0.length && k < idleRate.length; k++) {
                double perCall = (cpuEach[k] - cpuEach0[k]) / 1e6 / calls;
                double idlePerCall = idleRate[k] * wallNs / 1e6 / calls;
                net += perCall - idlePerCall;
                each.append(k == 0 ? "client" : "node " + k)
                        .append(String.format(" %.2f ms (idle share %.2f)  ", perCall, idlePerCall));
            }
            System.out.printf(
                    "CPU per call by process (children in start order): %s; net of idle CPU: %.2f ms per call%n",
                    each, net);
            dumpRecordings(System.getProperty("locate.bench.jfrDumpDir", ""));
            double wallMs = (System.nanoTime() - wall0) / 1e6 / calls;
            Arrays.sort(ns);
            System.out.printf(
                    "Locate of %d hashes (%s request, %s client) over gRPC from n3, %d calls: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms,"
                            + " partial answers %d; CPU (3 nodes + client) %.2f ms per call over %.2f ms wall;"
                            + " load average %.2f before, %.2f after, %d cores%n",
                    HASHES,
                    form,
                    clientKind,
                    calls,
                    pct(ns, 50),
                    pct(ns, 90),
                    pct(ns, 99),
                    ns[calls - 1] / 1e6,
                    partial,
                    cpuMs,
                    wallMs,
                    load0,
                    ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage(),
                    Runtime.getRuntime().availableProcessors());
        } finally {
            if (plain != null) {
                plain.close();
            }
            nodes.forEach(NodeProcess::close);
            Files.deleteIfExists(shm);
        }
    }

    /**
     * With {@code -Dlocate.bench.jfrDumpDir=DIR} (and a recording started through {@code locate.bench.nodeFlags}),
     * dumps each node's flight recording to {@code DIR/node-<k>.jfr} before the nodes are killed.
     */
    private static void dumpRecordings(String dir) throws Exception {
        if (dir.isEmpty()) {
            return;
        }
        String jcmd = Path.of(System.getProperty("java.home"), "bin", "jcmd").toString();
        List<ProcessHandle> children = ProcessHandle.current()
                .children()
                .sorted(java.util.Comparator.comparingLong(ProcessHandle::pid))
                .toList();
        for (int k = 0; k < children.size(); k++) {
            Path file = Path.of(dir, "node-" + (k + 1) + ".jfr");
            Process p = new ProcessBuilder(
                            jcmd, Long.toString(children.get(k).pid()), "JFR.dump", "filename=" + file.toAbsolutePath())
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                    .start();
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
            }
            System.out.println("recording of node " + (k + 1) + ": " + file);
        }
    }

    /** CPU time of this process and its children (the node processes): what a loaded machine does not inflate. */
    private static long cpuNanosOfAll() {
        long total = ProcessHandle.current()
                .info()
                .totalCpuDuration()
                .map(Duration::toNanos)
                .orElse(0L);
        for (ProcessHandle child : ProcessHandle.current().children().toList()) {
            total += child.info().totalCpuDuration().map(Duration::toNanos).orElse(0L);
        }
        return total;
    }

    /** CPU seconds per wall second of each process between two samples (what it burns while idle). */
    private static double[] rates(long[] before, long[] after, long wallNanos) {
        double[] out = new double[Math.min(before.length, after.length)];
        for (int k = 0; k < out.length; k++) {
            out[k] = (after[k] - before[k]) / (double) wallNanos;
        }
        return out;
    }

    private static long[] cpuNanosEach() {
        List<Long> out = new ArrayList<>();
        out.add(ProcessHandle.current()
                .info()
                .totalCpuDuration()
                .map(Duration::toNanos)
                .orElse(0L));
        ProcessHandle.current()
                .children()
                .sorted(java.util.Comparator.comparingLong(ProcessHandle::pid))
                .forEach(c -> out.add(
                        c.info().totalCpuDuration().map(Duration::toNanos).orElse(0L)));
        return out.stream().mapToLong(Long::longValue).toArray();
    }

    private static double pct(long[] sorted, int p) {
        return sorted[Math.min(sorted.length - 1, (int) Math.ceil(sorted.length * p / 100.0) - 1)] / 1e6;
    }

    private static void awaitUp(FabricClient client) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(120).toNanos();
        while (System.nanoTime() < deadline) {
            try {
                if (StatusFormat.upCount(client.clusterStatus(ClusterStatusRequest.getDefaultInstance())
                                .toCompletableFuture()
                                .get(5, TimeUnit.SECONDS))
                        == 3) {
                    return;
                }
            } catch (Exception e) {
                // not up yet
            }
            Thread.sleep(300);
        }
        throw new IllegalStateException("the cluster did not form within 120 s");
    }

    /**
     * Waits (at most 60 s) until the shard rebalance is over: every node hosts ranges, the counts differ by at most
     * one (every range on its home node: 86/85/85 for 256 ranges), and neither they nor any node's rebuild count
     * changed for 3 s. Read from the nodes' Prometheus endpoints ({@code pegaflow_directory_hosted_ranges}, {@code
     * pegaflow_directory_rebuilds_total}, updated every second).
     */
    private static void awaitSettled(int[] metricsPorts) throws Exception {
        java.net.http.HttpClient http = java.net.http.HttpClient.newHttpClient();
        long start = System.nanoTime();
        long deadline = start + Duration.ofSeconds(60).toNanos();
        String last = "";
        long stableSince = System.nanoTime();
        while (true) {
            StringBuilder state = new StringBuilder();
            long min = Long.MAX_VALUE;
            long max = 0;
            for (int port : metricsPorts) {
                String body = http.send(
                                java.net.http.HttpRequest.newBuilder(
                                                java.net.URI.create("http://127.0.0.1:" + port + "/metrics"))
                                        .timeout(Duration.ofSeconds(5))
                                        .build(),
                                java.net.http.HttpResponse.BodyHandlers.ofString())
                        .body();
                long hosted = metric(body, "pegaflow_directory_hosted_ranges");
                min = Math.min(min, hosted);
                max = Math.max(max, hosted);
                state.append(hosted)
                        .append('/')
                        .append(metric(body, "pegaflow_directory_rebuilds_total"))
                        .append(' ');
            }
            String now = state.toString().strip();
            if (!now.equals(last)) {
                last = now;
                stableSince = System.nanoTime();
            }
            boolean balanced = min > 0 && max - min <= 1;
            if (balanced
                    && System.nanoTime() - stableSince >= Duration.ofSeconds(3).toNanos()) {
                System.out.printf(
                        "settled after %.1f s: hosted ranges/rebuilds per node %s%n",
                        (System.nanoTime() - start) / 1e9, now);
                return;
            }
            if (System.nanoTime() > deadline) {
                System.out.printf("NOT settled within 60 s (timing anyway): hosted ranges/rebuilds per node %s%n", now);
                return;
            }
            Thread.sleep(250);
        }
    }

    /** The value of the first sample of {@code name} in {@code body}, whatever its labels (-1 when absent). */
    private static long metric(String body, String name) {
        for (String line : body.split("\n")) {
            if (line.startsWith(name + " ") || line.startsWith(name + "{")) {
                return (long) Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        return -1;
    }

    private static int[] freePorts(int count) throws Exception {
        int[] ports = new int[count];
        List<ServerSocket> sockets = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            ServerSocket s = new ServerSocket(0);
            sockets.add(s);
            ports[i] = s.getLocalPort();
        }
        for (ServerSocket s : sockets) {
            s.close();
        }
        return ports;
    }
}
