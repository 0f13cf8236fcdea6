package io.pegaflow.fabric.softroce;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.google.protobuf.ByteString;
import io.pegaflow.fabric.TestPorts;
import io.pegaflow.fabric.cli.FabricClients;
import io.pegaflow.fabric.cli.HostPort;
import io.pegaflow.fabric.node.FabricNode;
import io.pegaflow.fabric.node.NodeLaunch;
import io.pegaflow.proto.engine.BlockRef;
import io.pegaflow.proto.engine.ByteSegment;
import io.pegaflow.proto.engine.EngineClient;
import io.pegaflow.proto.engine.LayerRegistration;
import io.pegaflow.proto.engine.LoadFlag;
import io.pegaflow.proto.engine.LoadRequest;
import io.pegaflow.proto.engine.LoadResponse;
import io.pegaflow.proto.engine.MemoryRegion;
import io.pegaflow.proto.engine.QueryRequest;
import io.pegaflow.proto.engine.QueryScope;
import io.pegaflow.proto.engine.RegisterContextRequest;
import io.pegaflow.proto.engine.SaveRequest;
import io.pegaflow.proto.engine.SharedMemoryRegion;
import io.pegaflow.transport.PeerSnapshot;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A cross-node load over the topology's transport with two real nodes in one JVM (what the Soft-RoCE VM can afford):
 * a worker on n1 saves blocks of random bytes; a worker on n2, which never saw them, finds them with a cluster-scope
 * query and loads them; n2's load pipeline leases them on n1 and reads them over the transport into its pool; the bytes
 * that arrive in n2's worker memory are the bytes n1's worker saved, and n2's transport counted the bytes from n1.
 *
 * <p>{@code -Dpegaflow.softroce.transport=rdma} (the VM: both nodes on {@code -Dpegaflow.softroce.device}, default
 * rxe0, GID index {@code -Dpegaflow.softroce.gidIndex}, default 1, no fallback) or {@code tcp} (any host).
 */
@Timeout(value = 400, unit = TimeUnit.SECONDS)
public class RdmaCrossNodeLoadCheck {
    private static final Duration CALL = Duration.ofSeconds(20);
    private static final String NS = "softroce-cross-node";
    private static final int LAYERS = 2;
    private static final int NUM_BLOCKS = 32;
    private static final int BLOCKS = 16;
    private static final int LAYER_BLOCK_BYTES = 64 * 1024;

    @Test
    void shouldLoadOnN2ByteExactTheBlocksAWorkerOnN1SavedOverTheTopologysTransport() throws Exception {
        String transport = System.getProperty("pegaflow.softroce.transport", "rdma");
        Path dir = Files.createTempDirectory("pegaflow-softroce-");
        Path shmDir = Files.createDirectories(dir.resolve("shm"));
        System.setProperty("pegaflow.shm-dir", shmDir.toString());
        // Two actor systems in one JVM each register cluster MBeans.
        System.setProperty("pekko.cluster.jmx.multi-mbeans-in-same-jvm", "on");
        com.typesafe.config.ConfigFactory.invalidateCaches();
        Path topology = dir.resolve("cluster.yaml");
        Files.writeString(topology, topologyYaml(transport));
        // The ports, to read the guest's socket log (ss.log) against.
        System.out.println("topology:\n" + Files.readString(topology));

        List<FabricNode> nodes = new ArrayList<>();
        List<NodeLaunch> launches = new ArrayList<>();
        try (FabricClients clients = new FabricClients()) {
            for (String id : List.of("n1", "n2")) {
                NodeLaunch launch = io.pegaflow.fabric.node.NodeOptions.resolve(
                        new String[] {"--topology", topology.toString(), "--node", id, "--pool-size", "32mb"});
                launches.add(launch);
                nodes.add(FabricNode.start(launch));
            }
            FabricNode n1 = nodes.get(0);
            FabricNode n2 = nodes.get(1);
            assertEquals(transport, n1.transport());
            assertEquals(transport, n2.transport());
            EngineClient e1 = clients.engine(grpc(launches.get(0)), CALL);
            EngineClient e2 = clients.engine(grpc(launches.get(1)), CALL);

            Path shm1 = worker(shmDir, "n1");
            Path shm2 = worker(shmDir, "n2");
            String ctx1 = register(e1, shm1, "saver");
            String ctx2 = register(e2, shm2, "loader");
            byte[] saved = new byte[LAYERS * NUM_BLOCKS * LAYER_BLOCK_BYTES];
            new Random(20261201).nextBytes(saved);
            Files.write(shm1, saved);

            List<ByteString> hashes = new ArrayList<>();
            SaveRequest.Builder save = SaveRequest.newBuilder().setContextId(ctx1);
            for (int b = 0; b < BLOCKS; b++) {
                ByteString h = ByteString.copyFrom(hash(b));
                hashes.add(h);
                save.addBlocks(BlockRef.newBuilder().setBlockId(b).setHash(h));
            }
            assertEquals(BLOCKS, get(e1.save(save.build())).getBlocksSealed());

            // The directory learns of n1's seals asynchronously, and the cluster may still be forming.
            long deadline = System.nanoTime() + Duration.ofSeconds(120).toNanos();
            int seen = 0;
            while (System.nanoTime() < deadline) {
                seen = get(e2.query(QueryRequest.newBuilder()
                                .setNamespace(NS)
                                .addAllHashes(hashes)
                                .setScope(QueryScope.QUERY_SCOPE_CLUSTER)
                                .build()))
                        .getHitBlocks();
                if (seen == BLOCKS) {
                    break;
                }
                Thread.sleep(300);
            }
            assertEquals(BLOCKS, seen, "n2's cluster-scope query never saw n1's blocks");

            Path flagFile = shmDir.resolve("flags-n2");
            try (RandomAccessFile f = new RandomAccessFile(flagFile.toFile(), "rw")) {
                f.setLength(4096);
            }
            // Into the other end of n2's worker cache, so a block landing in its own slot index would not pass.
            LoadRequest.Builder load = LoadRequest.newBuilder()
                    .setContextId(ctx2)
                    .setFlag(LoadFlag.newBuilder().setPath(flagFile.toString()).setOffsetBytes(0));
            for (int b = 0; b < BLOCKS; b++) {
                load.addBlocks(
                        BlockRef.newBuilder().setBlockId(NUM_BLOCKS - 1 - b).setHash(hashes.get(b)));
            }
            LoadResponse scheduled = get(e2.load(load.build()));
            assertEquals(List.of(), scheduled.getFailedBlockIdsList(), scheduled.toString());
            long[] flag = awaitFlag(flagFile, Duration.ofSeconds(60));
            assertEquals(1, flag[0], "load flag state (1 done, 2 failed): loaded " + flag[1] + ", failed " + flag[2]);
            assertEquals(BLOCKS, flag[1]);

            byte[] loaded = Files.readAllBytes(shm2);
            for (int l = 0; l < LAYERS; l++) {
                for (int b = 0; b < BLOCKS; b++) {
                    int from = (l * NUM_BLOCKS + b) * LAYER_BLOCK_BYTES;
                    int to = (l * NUM_BLOCKS + NUM_BLOCKS - 1 - b) * LAYER_BLOCK_BYTES;
                    assertArrayEquals(
                            java.util.Arrays.copyOfRange(saved, from, from + LAYER_BLOCK_BYTES),
                            java.util.Arrays.copyOfRange(loaded, to, to + LAYER_BLOCK_BYTES),
                            "layer " + l + " block " + b);
                }
            }
            PeerSnapshot fromN1 = n2.nodeTransport().transport().snapshot().peers().stream()
                    .filter(p -> p.peerNodeId().equals("n1"))
                    .findFirst()
                    .orElseThrow();
            assertTrue(
                    fromN1.bytesRead() >= (long) BLOCKS * LAYERS * LAYER_BLOCK_BYTES,
                    "n2 read " + fromN1.bytesRead() + " bytes from n1 over " + transport);
            System.out.println("cross-node load over " + transport + ": " + BLOCKS + " blocks, " + fromN1.bytesRead()
                    + " bytes read by n2 from n1");
        } finally {
            for (FabricNode node : nodes.reversed()) {
                node.stop("test done").toCompletableFuture().get(60, TimeUnit.SECONDS);
            }
        }
    }

    private static String topologyYaml(String transport) {
        int[] p = TestPorts.free(8);
        String device = System.getProperty("pegaflow.softroce.device", "rxe0");
        String gid = System.getProperty("pegaflow.softroce.gidIndex", "1");
        StringBuilder yaml = new StringBuilder("cluster: softroce\nnodes:\n");
        for (int i = 0; i < 2; i++) {
            yaml.append("  - {id: n")
                    .append(i + 1)
                    .append(", host: 127.0.0.1, clusterPort: ")
                    .append(p[4 * i])
                    .append(", grpcPort: ")
                    .append(p[4 * i + 1])
                    .append(", metricsPort: ")
                    .append(p[4 * i + 2])
                    .append(", transportPort: ")
                    .append(p[4 * i + 3])
                    .append(", poolSize: 32mb, transport: ")
                    .append(transport)
                    .append(", rdma: [{device: ")
                    .append(device)
                    .append(", port: 1, gidIndex: ")
                    .append(gid)
                    .append("}]}\n");
        }
        return yaml.toString();
    }

    private static HostPort grpc(NodeLaunch launch) {
        return new HostPort(launch.self().host(), launch.self().grpcPort());
    }

    private static Path worker(Path shmDir, String id) throws Exception {
        Path file = shmDir.resolve("worker-" + id);
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength((long) LAYERS * NUM_BLOCKS * LAYER_BLOCK_BYTES);
        }
        return file;
    }

    private static String register(EngineClient engine, Path shm, String instance) throws Exception {
        RegisterContextRequest.Builder reg = RegisterContextRequest.newBuilder()
                .setInstanceId(instance)
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
        // Under TCG a node's first gRPC connection can be reset, or not be made within the call's deadline
        // (waiting_for_connection), while two nodes start on two emulated CPUs: retry those, bounded.
        long deadline = System.nanoTime() + Duration.ofSeconds(150).toNanos();
        while (true) {
            try {
                return get(engine.registerContext(reg.build())).getContextId();
            } catch (java.util.concurrent.ExecutionException e) {
                io.grpc.Status.Code code =
                        io.grpc.Status.fromThrowable(e.getCause()).getCode();
                boolean notConnected =
                        code == io.grpc.Status.Code.UNAVAILABLE || code == io.grpc.Status.Code.DEADLINE_EXCEEDED;
                if (!notConnected || System.nanoTime() > deadline) {
                    throw e;
                }
                Throwable root = e.getCause();
                while (root.getCause() != null) {
                    root = root.getCause();
                }
                System.out.println("register on " + instance + ": " + e.getCause() + " (" + root + "); retrying");
                Thread.sleep(1000);
            }
        }
    }

    /** The flag slot's state, loaded and failed counts once the state is final (engine.proto, LoadFlag). */
    private static long[] awaitFlag(Path flagFile, Duration timeout) throws Exception {
        ValueLayout.OfLong le = ValueLayout.JAVA_LONG.withOrder(ByteOrder.LITTLE_ENDIAN);
        try (Arena arena = Arena.ofConfined();
                FileChannel ch = FileChannel.open(flagFile, StandardOpenOption.READ)) {
            MemorySegment slot = ch.map(FileChannel.MapMode.READ_ONLY, 0, 32, arena);
            long deadline = System.nanoTime() + timeout.toNanos();
            while (System.nanoTime() < deadline) {
                long state = (long) le.varHandle().getAcquire(slot, 0L);
                if (state != 0) {
                    return new long[] {state, slot.get(le, 8), slot.get(le, 16)};
                }
                Thread.sleep(20);
            }
        }
        fail("the load flag stayed pending for " + timeout);
        return null;
    }

    private static byte[] hash(int i) {
        byte[] h = new byte[32];
        java.nio.ByteBuffer.wrap(h).putLong(0x50f7_40ceL).putInt(i);
        return h;
    }

    private static <T> T get(java.util.concurrent.CompletionStage<T> stage) throws Exception {
        return stage.toCompletableFuture().get(CALL.toSeconds() + 5, TimeUnit.SECONDS);
    }
}
