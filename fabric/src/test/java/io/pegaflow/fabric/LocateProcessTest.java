package io.pegaflow.fabric;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import io.pegaflow.config.TopologyLoader;
import io.pegaflow.fabric.cli.FabricClients;
import io.pegaflow.fabric.cli.HostPort;
import io.pegaflow.fabric.cli.LocateWire;
import io.pegaflow.fabric.cli.Main;
import io.pegaflow.fabric.cli.NodeProcess;
import io.pegaflow.fabric.cli.StatusFormat;
import io.pegaflow.proto.engine.BlockRef;
import io.pegaflow.proto.engine.ByteSegment;
import io.pegaflow.proto.engine.EngineClient;
import io.pegaflow.proto.engine.LayerRegistration;
import io.pegaflow.proto.engine.MemoryRegion;
import io.pegaflow.proto.engine.PackedHashes;
import io.pegaflow.proto.engine.RegisterContextRequest;
import io.pegaflow.proto.engine.SaveRequest;
import io.pegaflow.proto.engine.SharedMemoryRegion;
import io.pegaflow.proto.fabric.ClusterStatusRequest;
import io.pegaflow.proto.fabric.FabricClient;
import io.pegaflow.proto.fabric.LocateRequest;
import io.pegaflow.proto.fabric.LocateResponse;
import io.pegaflow.proto.fabric.LocationEvent;
import io.pegaflow.proto.fabric.WatchLocationsRequest;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.apache.pekko.stream.javadsl.Sink;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Three node processes from a topology file; a shared-memory worker registers with n1 and saves through the engine's
 * gRPC; {@code Locate} on n3 (gRPC and the CLI) shows n1 as the holder; n1's {@code WatchLocations} stream shows the
 * snapshot, the seals and, once the small pool evicts them, the removals. Steps run in order on one cluster.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class LocateProcessTest {
    private static final Duration CALL = Duration.ofSeconds(5);
    private static final String NS = "locate-test-ns";
    private static final int LAYERS = 2;
    private static final int NUM_BLOCKS = 64;
    private static final int LAYER_BLOCK_BYTES = 32 * 1024; // 64 KiB per block: a 16 MiB pool holds < 256

    @TempDir
    static Path dir;

    static Topology topology;
    static FabricClients clients;
    static Path shm;
    static final Map<String, NodeProcess> processes = new LinkedHashMap<>();
    static final Map<String, FabricClient> fabric = new LinkedHashMap<>();
    static EngineClient engineN1;
    static String contextId;
    static final BlockingQueue<LocationEvent> watched = new LinkedBlockingQueue<>();
    static final List<byte[]> saved = new ArrayList<>();
    static volatile String watchEnd = "running";

    @BeforeAll
    static void startCluster() throws Exception {
        Path file = dir.resolve("cluster.yaml");
        Files.writeString(file, TestPorts.topologyYaml("pegaflow-locate", 3));
        topology = TopologyLoader.load(file);
        clients = new FabricClients();
        for (NodeSpec node : topology.nodes()) {
            processes.put(
                    node.id(),
                    NodeProcess.start(
                            node.id(),
                            List.of("-Xmx256m", "-XX:+UseSerialGC"),
                            List.of("--topology", file.toString(), "--node", node.id(), "--pool-size", "16mb"),
                            dir.resolve("logs")));
            fabric.put(node.id(), clients.fabric(new HostPort(node.host(), node.grpcPort()), CALL));
        }
        NodeSpec n1 = topology.requireNode("n1");
        engineN1 = clients.engine(new HostPort(n1.host(), n1.grpcPort()), CALL);
        shm = Path.of("/dev/shm", "pegaflow-locate-test-" + UUID.randomUUID());
        try (RandomAccessFile f = new RandomAccessFile(shm.toFile(), "rw")) {
            f.setLength((long) LAYERS * NUM_BLOCKS * LAYER_BLOCK_BYTES);
        }
    }

    @AfterAll
    static void stopCluster() throws Exception {
        processes.values().forEach(NodeProcess::close);
        if (clients != null) {
            clients.close();
        }
        if (shm != null) {
            Files.deleteIfExists(shm);
        }
    }

    @Test
    @Order(1)
    void shouldFormTheClusterAndRegisterAShmWorkerOnN1() throws Exception {
        for (String id : List.of("n1", "n2", "n3")) {
            awaitUp(id, Duration.ofSeconds(150)); // generous: the shared 2-core box runs at load 10-20
        }
        RegisterContextRequest.Builder reg = RegisterContextRequest.newBuilder()
                .setInstanceId("worker-1")
                .setNamespace(NS)
                .setTpRank(0)
                .setTpSize(1)
                .setTotalLayers(LAYERS)
                .setDevice("host");
        for (int l = 0; l < LAYERS; l++) {
            reg.addLayers(LayerRegistration.newBuilder()
                    .setName("model.layers." + l + ".attn")
                    .setLayerIndex(l)
                    .setRegion(MemoryRegion.newBuilder()
                            .setShm(SharedMemoryRegion.newBuilder()
                                    .setPath(shm.toString())
                                    .setOffsetBytes((long) l * NUM_BLOCKS * LAYER_BLOCK_BYTES)))
                    .setNumBlocks(NUM_BLOCKS)
                    .setBlockStrideBytes(LAYER_BLOCK_BYTES)
                    .addSegments(ByteSegment.newBuilder().setOffsetBytes(0).setLengthBytes(LAYER_BLOCK_BYTES)));
        }
        contextId = engineN1.registerContext(reg.build())
                .toCompletableFuture()
                .get(10, TimeUnit.SECONDS)
                .getContextId();
        assertTrue(!contextId.isEmpty());
    }

    @Test
    @Order(2)
    void shouldStreamAnEmptySnapshotThenTheSealsOfASave() throws Exception {
        // The clients' deadline bounds a stream's whole life: the watch gets a client of its own, with a long one.
        NodeSpec n1 = topology.requireNode("n1");
        clients.fabric(new HostPort(n1.host(), n1.grpcPort()), Duration.ofMinutes(3))
                .watchLocations(
                        WatchLocationsRequest.newBuilder().setNamespace(NS).build())
                .runWith(Sink.foreach(watched::add), clients.system())
                .whenComplete((done, e) -> watchEnd = e == null ? "completed" : e.toString());
        LocationEvent first = poll(Duration.ofSeconds(10));
        assertEquals(LocationEvent.Kind.SNAPSHOT_END, first.getKind(), first.toString());
        assertEquals("n1", first.getNodeId());

        saveRound(0, 4);
        for (int i = 0; i < 4; i++) {
            LocationEvent e = poll(Duration.ofSeconds(10));
            assertEquals(LocationEvent.Kind.STORED, e.getKind(), e.toString());
            assertEquals(ByteString.copyFrom(saved.get(i)), e.getHash());
            assertEquals(first.getSequence() + i + 1, e.getSequence());
        }
    }

    @Test
    @Order(3)
    void shouldLocateTheSavedPrefixOnN1FromN3OverGrpc() throws Exception {
        byte[] unknown = hash(999);
        LocateRequest request = LocateRequest.newBuilder()
                .setNamespace(NS)
                .addHashes(ByteString.copyFrom(saved.get(0)))
                .addHashes(ByteString.copyFrom(saved.get(1)))
                .addHashes(ByteString.copyFrom(saved.get(2)))
                .addHashes(ByteString.copyFrom(saved.get(3)))
                .addHashes(ByteString.copyFrom(unknown))
                .build();
        LocateResponse reply = awaitLocate("n3", request, r -> r.getPrefixLength() == 4 && r.getComplete());
        assertEquals("n3", reply.getNodeId());
        assertEquals(5, reply.getBlocksCount());
        for (int i = 0; i < 4; i++) {
            assertEquals(List.of("n1"), reply.getBlocks(i).getNodeIdsList());
        }
        assertEquals(List.of(), reply.getBlocks(4).getNodeIdsList());

        // This release's clients: hashes packed, the packed reply (node-id table, one holder mask per hash) only.
        LocateResponse packed = awaitLocate(
                "n3",
                LocateWire.request(NS, List.of(saved.get(0), saved.get(1), saved.get(2), saved.get(3), unknown)),
                r -> r.getPrefixLength() == 4 && r.getComplete());
        assertEquals(0, packed.getBlocksCount(), "no per-hash messages in a packed reply");
        assertEquals(List.of("n1", "n2", "n3"), packed.getHolderNodeIdsList());
        assertEquals(List.of(1L, 1L, 1L, 1L, 0L), packed.getHolderMasksList());
        assertEquals(reply.getHolderMasksList(), packed.getHolderMasksList(), "both forms carry the masks");
        for (int i = 0; i < 5; i++) {
            assertEquals(reply.getBlocks(i).getNodeIdsList(), LocateWire.holders(packed, i));
        }
    }

    @Test
    @Order(3)
    void shouldRefuseAMalformedPackedLocateRequestNamingTheField() {
        LocateRequest both = LocateRequest.newBuilder(LocateWire.request(NS, List.of(saved.get(0))))
                .addHashes(ByteString.copyFrom(saved.get(1)))
                .build();
        assertInvalid(both, "hashes and packed_hashes: a request sets one of them, not both");
        LocateRequest ragged = LocateRequest.newBuilder()
                .setNamespace(NS)
                .setPackedHashes(PackedHashes.newBuilder()
                        .setData(ByteString.copyFrom(new byte[10]))
                        .setHashBytes(4))
                .build();
        assertInvalid(ragged, "packed_hashes.data: 10 bytes are not a whole number of hashes of 4 bytes (hash_bytes)");
        LocateRequest wide = LocateRequest.newBuilder()
                .setNamespace(NS)
                .setPackedHashes(PackedHashes.newBuilder()
                        .setData(ByteString.copyFrom(new byte[65]))
                        .setHashBytes(65))
                .build();
        assertInvalid(wide, "packed_hashes.hash_bytes: 65; a hash has 1..64 bytes");
        LocateRequest many = LocateRequest.newBuilder()
                .setNamespace(NS)
                .setPackedHashes(PackedHashes.newBuilder()
                        .setData(ByteString.copyFrom(new byte[8193]))
                        .setHashBytes(1))
                .build();
        assertInvalid(many, "packed_hashes: 8193 hashes; at most 8192 per request");
    }

    @Test
    @Order(4)
    void shouldPrintHoldersAndPrefixFromTheCommandLine() {
        HexFormat hex = HexFormat.of();
        String endpoint = "127.0.0.1:" + topology.requireNode("n3").grpcPort();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        String[] hashes = {hex.formatHex(saved.get(0)), hex.formatHex(saved.get(1)), hex.formatHex(hash(998))};
        List<String> args = new ArrayList<>(List.of("locate", "--endpoint", endpoint, "--namespace", NS));
        args.addAll(List.of(hashes));
        int rc = Main.run(args.toArray(String[]::new), new PrintStream(out), new PrintStream(err));
        assertEquals(0, rc, err.toString());
        String table = out.toString(StandardCharsets.UTF_8);
        assertTrue(table.contains("prefix 2 of 3 (complete)"), table);
        assertTrue(table.contains(hashes[0] + "  n1"), table);
        assertTrue(table.contains(hashes[2] + "  -"), table);

        out.reset();
        args.add("--json");
        rc = Main.run(args.toArray(String[]::new), new PrintStream(out), new PrintStream(err));
        assertEquals(0, rc, err.toString());
        String json = out.toString(StandardCharsets.UTF_8);
        assertTrue(json.contains("\"prefixLength\" : 2"), json);
        assertTrue(json.contains("\"hash\" : \"" + hashes[1] + "\""), json);
        assertTrue(json.contains("\"holders\" : [ \"n1\" ]"), json);

        out.reset();
        err.reset();
        rc = Main.run(
                new String[] {"locate", "--endpoint", endpoint, "--namespace", NS, "zz12"},
                new PrintStream(out),
                new PrintStream(err));
        assertEquals(2, rc);
        assertTrue(err.toString().contains("not hex"), err.toString());
    }

    @Test
    @Order(5)
    void shouldRefuseOversizedOrEmptyInputNamingTheField() {
        LocateRequest.Builder tooMany = LocateRequest.newBuilder().setNamespace(NS);
        for (int i = 0; i < 8193; i++) {
            tooMany.addHashes(ByteString.copyFrom(hash(i)));
        }
        assertInvalid(tooMany.build(), "hashes: 8193");
        assertInvalid(
                LocateRequest.newBuilder()
                        .setNamespace(NS)
                        .addHashes(ByteString.copyFrom(hash(1)))
                        .addHashes(ByteString.EMPTY)
                        .build(),
                "hashes[1]: 0 bytes");
        assertInvalid(
                LocateRequest.newBuilder()
                        .setNamespace(NS)
                        .addHashes(ByteString.copyFrom(new byte[65]))
                        .build(),
                "hashes[0]: 65 bytes");
        assertInvalid(
                LocateRequest.newBuilder()
                        .setNamespace("n".repeat(257))
                        .addHashes(ByteString.copyFrom(hash(1)))
                        .build(),
                "namespace: 257 bytes");
    }

    @Test
    @Order(6)
    void shouldStreamRemovalsAndDropTheHolderOnceThePoolEvictsTheBlocks() throws Exception {
        // 16 MiB of 64 KiB blocks: four more rounds of 64 new blocks push the first four out (LRU).
        for (int round = 1; round <= 5; round++) {
            saveRound(round * NUM_BLOCKS, NUM_BLOCKS);
        }
        java.util.Set<ByteString> removed = new java.util.HashSet<>();
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (removed.size() < 4 && System.nanoTime() < deadline) {
            LocationEvent e = watched.poll(1, TimeUnit.SECONDS);
            if (e != null && e.getKind() == LocationEvent.Kind.REMOVED) {
                for (int i = 0; i < 4; i++) {
                    if (e.getHash().equals(ByteString.copyFrom(saved.get(i)))) {
                        removed.add(e.getHash());
                    }
                }
            }
        }
        assertEquals(
                4, removed.size(), "removals of the first four blocks seen on the watch stream; stream " + watchEnd);
        LocateRequest first = LocateRequest.newBuilder()
                .setNamespace(NS)
                .addHashes(ByteString.copyFrom(saved.get(0)))
                .build();
        LocateResponse reply = awaitLocate("n3", first, r -> r.getPrefixLength() == 0 && r.getComplete());
        assertEquals(List.of(), reply.getBlocks(0).getNodeIdsList());
    }

    private static void saveRound(int firstHash, int count) throws Exception {
        SaveRequest.Builder save = SaveRequest.newBuilder().setContextId(contextId);
        for (int i = 0; i < count; i++) {
            byte[] h = hash(firstHash + i);
            if (firstHash == 0) {
                saved.add(h);
            }
            save.addBlocks(BlockRef.newBuilder().setBlockId(i).setHash(ByteString.copyFrom(h)));
        }
        var reply = engineN1.save(save.build()).toCompletableFuture().get(20, TimeUnit.SECONDS);
        assertEquals(count, reply.getBlocksSealed(), reply.toString());
    }

    private static byte[] hash(int i) {
        byte[] h = new byte[32];
        java.nio.ByteBuffer.wrap(h).putLong(0x5eedL).putInt(i);
        return h;
    }

    private static LocationEvent poll(Duration timeout) throws InterruptedException {
        LocationEvent e = watched.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
        if (e == null) {
            fail("no location event within " + timeout);
        }
        return e;
    }

    private static void assertInvalid(LocateRequest request, String message) {
        try {
            fabric.get("n2").locate(request).toCompletableFuture().get(10, TimeUnit.SECONDS);
            fail("accepted: " + message);
        } catch (ExecutionException | java.util.concurrent.TimeoutException | InterruptedException e) {
            Status status = Status.fromThrowable(e.getCause() == null ? e : e.getCause());
            assertEquals(Status.Code.INVALID_ARGUMENT, status.getCode(), e.toString());
            assertTrue(String.valueOf(status.getDescription()).startsWith(message), status.getDescription());
        }
    }

    private static LocateResponse awaitLocate(String nodeId, LocateRequest request, Predicate<LocateResponse> done)
            throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        LocateResponse last = null;
        while (System.nanoTime() < deadline) {
            last = fabric.get(nodeId).locate(request).toCompletableFuture().get(10, TimeUnit.SECONDS);
            if (done.test(last)) {
                return last;
            }
            Thread.sleep(200);
        }
        fail("locate on " + nodeId + " never matched; last: " + last);
        return null;
    }

    private static void awaitUp(String nodeId, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            if (!processes.get(nodeId).isAlive()) {
                fail("node " + nodeId + " died:\n" + processes.get(nodeId).logTail(40));
            }
            try {
                var s = fabric.get(nodeId)
                        .clusterStatus(ClusterStatusRequest.getDefaultInstance())
                        .toCompletableFuture()
                        .get(5, TimeUnit.SECONDS);
                if (StatusFormat.upCount(s) == 3) {
                    return;
                }
            } catch (Exception e) {
                // not listening yet
            }
            Thread.sleep(300);
        }
        fail("node " + nodeId + " never saw 3 members Up\n"
                + processes.get(nodeId).logTail(40));
    }
}
