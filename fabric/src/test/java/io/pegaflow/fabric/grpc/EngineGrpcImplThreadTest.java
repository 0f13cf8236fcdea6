package io.pegaflow.fabric.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import com.typesafe.config.ConfigFactory;
import io.pegaflow.fabric.engine.KvEngine;
import io.pegaflow.fabric.engine.SharedMemoryMapper;
import io.pegaflow.gpu.CopyBatch;
import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.gpu.HostCopyEngine;
import io.pegaflow.gpu.MappedRegion;
import io.pegaflow.proto.engine.BlockRef;
import io.pegaflow.proto.engine.ByteSegment;
import io.pegaflow.proto.engine.CudaIpcRegion;
import io.pegaflow.proto.engine.LayerRegistration;
import io.pegaflow.proto.engine.LoadFlag;
import io.pegaflow.proto.engine.LoadRequest;
import io.pegaflow.proto.engine.MemoryRegion;
import io.pegaflow.proto.engine.QueryRequest;
import io.pegaflow.proto.engine.RegisterContextRequest;
import io.pegaflow.proto.engine.SaveRequest;
import io.pegaflow.proto.engine.SessionRequest;
import io.pegaflow.proto.engine.SharedMemoryRegion;
import io.pegaflow.proto.engine.UnregisterContextRequest;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.pool.BlockPool;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.stream.javadsl.Sink;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The Engine handlers called on a real ActorSystem's default dispatcher, as Pekko gRPC calls them, against a real
 * engine, pool and shared-memory files: every blocking step (file mapping and unmapping, CUDA IPC open and close,
 * copies) runs on an engine thread, never on a handler's. The CUDA IPC side is a host-memory stand-in for the driver
 * (no GPU here); it records its threads like the rest.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class EngineGrpcImplThreadTest {
    static final String GPU = "GPU-3475cb91-ca10-592d-4a6f-1d59216aaf6c";
    static final int SLOT = 4096;
    static final int BLOCKS = 16;

    /** Which thread did what: "map /dev/shm/x", "copy", "open-ipc", "close ...". */
    final List<String[]> blockingWork = new CopyOnWriteArrayList<>();

    final Set<String> handlerThreads = ConcurrentHashMap.newKeySet();
    final List<Path> files = new ArrayList<>();
    final Arena arena = Arena.ofShared();
    ActorSystem<Void> system;
    KvEngine engine;

    private void did(String what) {
        blockingWork.add(new String[] {what, Thread.currentThread().getName()});
    }

    private MappedRegion recorded(MappedRegion real, String name) {
        return new MappedRegion() {
            @Override
            public MemorySegment memory() {
                return real.memory();
            }

            @Override
            public String description() {
                return real.description();
            }

            @Override
            public void close() {
                did("close " + name);
                real.close();
            }
        };
    }

    /** memcpy copies; "opens" IPC handles onto host memory. */
    final class RecordingEngine implements CopyEngine {
        final HostCopyEngine host = new HostCopyEngine();
        final MemorySegment allocation = arena.allocate(2L * BLOCKS * SLOT, 256);

        @Override
        public String name() {
            return "cuda";
        }

        @Override
        public void copy(MemorySegment[] srcs, MemorySegment[] dsts, CopyBatch batch) {
            did("copy");
            host.copy(srcs, dsts, batch);
        }

        @Override
        public Optional<String> deviceUuid() {
            return Optional.of(GPU);
        }

        @Override
        public MappedRegion openCudaIpc(byte[] handle, long allocationSizeBytes) {
            did("open-ipc");
            return recorded(
                    new MappedRegion() {
                        @Override
                        public MemorySegment memory() {
                            return allocation;
                        }

                        @Override
                        public String description() {
                            return "cuda-ipc stand-in";
                        }

                        @Override
                        public void close() {}
                    },
                    "ipc");
        }
    }

    @AfterEach
    void cleanUp() throws IOException {
        if (engine != null) {
            engine.close();
            engine.store().pool().close();
        }
        if (system != null) {
            system.terminate();
        }
        for (Path f : files) {
            Files.deleteIfExists(f);
        }
        arena.close();
    }

    private Path shmFile(long bytes) throws IOException {
        Path path = Path.of("/dev/shm", "pegaflow-test-" + UUID.randomUUID());
        try (RandomAccessFile f = new RandomAccessFile(path.toFile(), "rw")) {
            f.setLength(bytes);
        }
        files.add(path);
        return path;
    }

    /** Calls a handler on the dispatcher gRPC handlers run on, noting the thread. */
    private <T> T onDispatcher(Supplier<CompletionStage<T>> handler) throws Exception {
        return CompletableFuture.supplyAsync(
                        () -> {
                            handlerThreads.add(Thread.currentThread().getName());
                            return handler.get();
                        },
                        system.executionContext())
                .thenCompose(s -> s)
                .get(10, TimeUnit.SECONDS);
    }

    private static LayerRegistration.Builder layer(int index, MemoryRegion region) {
        return LayerRegistration.newBuilder()
                .setName("model.layers." + index + ".attn")
                .setLayerIndex(index)
                .setRegion(region)
                .setNumBlocks(BLOCKS)
                .setBlockStrideBytes(SLOT)
                .addSegments(ByteSegment.newBuilder().setLengthBytes(SLOT));
    }

    private static List<BlockRef> refs(int from, String... hashes) {
        List<BlockRef> refs = new ArrayList<>();
        for (int i = 0; i < hashes.length; i++) {
            refs.add(BlockRef.newBuilder()
                    .setBlockId(from + i)
                    .setHash(ByteString.copyFromUtf8(hashes[i]))
                    .build());
        }
        return refs;
    }

    @Test
    void shouldNeverMapUnmapOpenCloseOrCopyOnAHandlerThread() throws Exception {
        system = ActorSystem.create(
                Behaviors.empty(),
                "handler-thread-test",
                ConfigFactory.parseString("pekko.actor.provider = local").withFallback(ConfigFactory.load()));
        SharedMemoryMapper mapper = (root, path) -> {
            did("map " + path);
            return recorded(SharedMemoryMapper.FILES.map(root, path), path.toString());
        };
        BlockStore store = new BlockStore(BlockPool.allocateOffHeap(16L << 20), 30_000_000_000L, System::nanoTime);
        engine = KvEngine.builder(store, new RecordingEngine())
                .sharedMemoryMapper(mapper)
                .build();
        EngineGrpcImpl grpc = new EngineGrpcImpl(engine, () -> 0);

        Path kv = shmFile(2L * BLOCKS * SLOT);
        Path flag = shmFile(64 * 32);
        RegisterContextRequest.Builder shm = RegisterContextRequest.newBuilder()
                .setInstanceId("shm-worker")
                .setNamespace("ns")
                .setTpSize(1)
                .setTotalLayers(2)
                .setDevice("host");
        for (int l = 0; l < 2; l++) {
            shm.addLayers(layer(
                    l,
                    MemoryRegion.newBuilder()
                            .setShm(SharedMemoryRegion.newBuilder()
                                    .setPath(kv.toString())
                                    .setOffsetBytes((long) l * BLOCKS * SLOT))
                            .build()));
        }
        RegisterContextRequest.Builder ipc = RegisterContextRequest.newBuilder()
                .setInstanceId("gpu-worker")
                .setNamespace("ns")
                .setTpSize(1)
                .setTotalLayers(2)
                .setDevice(GPU);
        for (int l = 0; l < 2; l++) {
            ipc.addLayers(layer(
                    l,
                    MemoryRegion.newBuilder()
                            .setCudaIpc(CudaIpcRegion.newBuilder()
                                    .setIpcHandle(ByteString.copyFrom(new byte[64]))
                                    .setAllocationSizeBytes(2L * BLOCKS * SLOT)
                                    .setOffsetBytes((long) l * BLOCKS * SLOT))
                            .build()));
        }

        String shmCtx = onDispatcher(() -> grpc.registerContext(shm.build())).getContextId();
        String ipcCtx = onDispatcher(() -> grpc.registerContext(ipc.build())).getContextId();
        assertEquals(
                2,
                onDispatcher(() -> grpc.save(SaveRequest.newBuilder()
                                .setContextId(shmCtx)
                                .addAllBlocks(refs(0, "a", "b"))
                                .build()))
                        .getBlocksSealed());
        assertEquals(
                1,
                onDispatcher(() -> grpc.save(SaveRequest.newBuilder()
                                .setContextId(ipcCtx)
                                .addAllBlocks(refs(0, "c"))
                                .build()))
                        .getBlocksSealed());
        assertEquals(
                3,
                onDispatcher(() -> grpc.query(QueryRequest.newBuilder()
                                .setNamespace("ns")
                                .addHashes(ByteString.copyFromUtf8("a"))
                                .addHashes(ByteString.copyFromUtf8("b"))
                                .addHashes(ByteString.copyFromUtf8("c"))
                                .build()))
                        .getHitBlocks());
        for (int slot = 0; slot < 2; slot++) {
            long offset = slot * 32L;
            assertEquals(
                    3,
                    onDispatcher(() -> grpc.load(LoadRequest.newBuilder()
                                    .setContextId(shmCtx)
                                    .addAllBlocks(refs(8, "a", "b", "c"))
                                    .setFlag(LoadFlag.newBuilder()
                                            .setPath(flag.toString())
                                            .setOffsetBytes(offset))
                                    .build()))
                            .getBlocksScheduled());
            assertEquals(1, awaitFlag(flag, slot), "the load ends done");
        }
        onDispatcher(() -> grpc.unregisterContext(
                UnregisterContextRequest.newBuilder().setContextId(shmCtx).build()));
        // The GPU worker's session ends (its first event read, then the stream is done): the node drops it.
        onDispatcher(() -> grpc.session(
                        SessionRequest.newBuilder().setContextId(ipcCtx).build())
                .take(1)
                .runWith(Sink.seq(), system));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (blockingWork.stream().noneMatch(w -> w[0].equals("close ipc")) && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
        assertFalse(engine.hasContext(ipcCtx));

        List<String> kinds = blockingWork.stream().map(w -> w[0]).toList();
        assertEquals(1, kinds.stream().filter(k -> k.equals("map " + kv)).count(), "the KV file, once");
        assertEquals(1, kinds.stream().filter(k -> k.equals("map " + flag)).count(), "the flag file, once");
        assertTrue(kinds.contains("open-ipc") && kinds.contains("close ipc"), kinds.toString());
        assertTrue(kinds.contains("close " + kv) && kinds.contains("close " + flag), kinds.toString());
        assertTrue(kinds.contains("copy"), kinds.toString());
        assertFalse(handlerThreads.isEmpty());
        for (String handler : handlerThreads) {
            assertTrue(handler.contains("default-dispatcher"), handler);
        }
        for (String[] work : blockingWork) {
            assertFalse(handlerThreads.contains(work[1]), work[0] + " ran on handler thread " + work[1]);
            assertTrue(work[1].startsWith("pegaflow-"), work[0] + " ran on " + work[1]);
        }
    }

    private static long awaitFlag(Path flag, int slot) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        try (FileChannel ch = FileChannel.open(flag, StandardOpenOption.READ)) {
            ByteBuffer state = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            while (System.nanoTime() < deadline) {
                state.clear();
                ch.read(state, slot * 32L);
                long value = state.getLong(0);
                if (value != 0) {
                    return value;
                }
                Thread.sleep(1);
            }
        }
        return 0;
    }
}
