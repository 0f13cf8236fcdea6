package io.pegaflow.fabric.engine;

import static io.pegaflow.fabric.engine.ShmKvCache.hash;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.gpu.CopyBatch;
import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.gpu.HostCopyEngine;
import io.pegaflow.gpu.MappedRegion;
import io.pegaflow.gpu.MultiGpuCopyEngine;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.pool.BlockPool;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * One node serving two GPUs: TP ranks on different GPUs register with the one engine, each rank's CUDA IPC handles
 * are opened by its own GPU's copy engine, its copies run there, and a block seals once both ranks' slots are in. The
 * GPUs are stand-ins (this machine has none): each "opens" handles that name host segments and copies with memcpy,
 * counting what it did; {@code MultiGpuCopyEngine} in front of them is the real router.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class KvEngineMultiGpuWithStandInGpusTest {
    static final String GPU_A = "GPU-aaaaaaaa-0000-0000-0000-000000000001";
    static final String GPU_B = "GPU-bbbbbbbb-0000-0000-0000-000000000002";
    static final int SLOT = 4096;
    static final int BLOCKS = 16;
    static final int LAYERS = 2;

    /** One stand-in GPU: its allocations, and counts of opens and copies. */
    static final class StandInGpu implements CopyEngine {
        final String uuid;
        final Map<String, MemorySegment> allocations = new HashMap<>();
        volatile int opens;
        volatile int copies;

        StandInGpu(String uuid) {
            this.uuid = uuid;
        }

        /** A device allocation of {@code bytes} on this GPU, filled with random bytes, opened by IPC handle {@code id}. */
        MemorySegment allocate(Arena arena, int id, byte[] handleOut, Random random, long bytes) {
            handleOut[0] = (byte) id;
            handleOut[63] = 9;
            MemorySegment memory = arena.allocate(bytes, 256);
            byte[] content = new byte[(int) memory.byteSize()];
            random.nextBytes(content);
            MemorySegment.copy(content, 0, memory, ValueLayout.JAVA_BYTE, 0, content.length);
            allocations.put(HexFormat.of().formatHex(handleOut), memory);
            return memory;
        }

        /** {@code layers} layers of {@code blocks} blocks of {@code slot} bytes, one after another in one allocation. */
        static List<LayerSpec> layers(byte[] handle, long bytes, int layers, int blocks, int slot) {
            List<LayerSpec> specs = new java.util.ArrayList<>();
            for (int l = 0; l < layers; l++) {
                specs.add(new LayerSpec(
                        "model.layers." + l + ".self_attn.attn",
                        l,
                        new RegionSpec.CudaIpc(handle, bytes, (long) l * blocks * slot),
                        blocks,
                        slot,
                        List.of(new LayerSpec.Segment(0, slot))));
            }
            return specs;
        }

        @Override
        public String name() {
            return "cuda";
        }

        @Override
        public Optional<String> deviceUuid() {
            return Optional.of(uuid);
        }

        @Override
        public boolean ownsDeviceMemory(MemorySegment s) {
            return allocations.values().stream()
                    .anyMatch(m ->
                            s.address() >= m.address() && s.address() + s.byteSize() <= m.address() + m.byteSize());
        }

        @Override
        public void copy(MemorySegment[] srcs, MemorySegment[] dsts, CopyBatch batch) {
            copies++;
            new HostCopyEngine().copy(srcs, dsts, batch);
        }

        @Override
        public MappedRegion openCudaIpc(byte[] handle, long allocationSizeBytes) {
            MemorySegment memory = allocations.get(HexFormat.of().formatHex(handle));
            if (memory == null) {
                throw new IllegalStateException("cuIpcOpenMemHandle_v2 failed: not an allocation of " + uuid);
            }
            opens++;
            return new MappedRegion() {
                @Override
                public MemorySegment memory() {
                    return memory;
                }

                @Override
                public String description() {
                    return "cuda-ipc stand-in on " + uuid;
                }

                @Override
                public void close() {}
            };
        }
    }

    private final Arena arena = Arena.ofShared();
    private final StandInGpu a = new StandInGpu(GPU_A);
    private final StandInGpu b = new StandInGpu(GPU_B);
    private KvEngine engine;

    @AfterEach
    void cleanUp() {
        if (engine != null) {
            engine.close();
            engine.store().pool().close();
        }
        arena.close();
    }

    private KvEngine engine() {
        BlockStore store = new BlockStore(BlockPool.allocateOffHeap(16L << 20), 30_000_000_000L, System::nanoTime);
        engine = KvEngine.builder(store, new MultiGpuCopyEngine(List.of(a, b))).build();
        return engine;
    }

    private MemorySegment allocation(StandInGpu gpu, int id, byte[] handleOut, Random random) {
        return gpu.allocate(arena, id, handleOut, random, (long) LAYERS * BLOCKS * SLOT);
    }

    private static ContextRegistration rank(int rank, String device, byte[] handle, long bytes) {
        return new ContextRegistration(
                "i1", "ns/tp2", rank, 2, 0, LAYERS, device, StandInGpu.layers(handle, bytes, LAYERS, BLOCKS, SLOT));
    }

    @Test
    void shouldServeRanksOnTwoGpusAndSealABlockOnceBothRanksSavedIt() throws Exception {
        engine();
        Random random = new Random(3);
        byte[] ha = new byte[64];
        byte[] hb = new byte[64];
        MemorySegment memA = allocation(a, 1, ha, random);
        MemorySegment memB = allocation(b, 2, hb, random);
        String ctx0 = KvEngineTest.await(engine.register(rank(0, GPU_A, ha, memA.byteSize())))
                .contextId();
        String ctx1 = KvEngineTest.await(
                        engine.register(rank(1, GPU_B.substring(4).toUpperCase(), hb, memB.byteSize())))
                .contextId();
        assertEquals(1, a.opens, "rank 0's handle opened by GPU A's engine");
        assertEquals(1, b.opens, "rank 1's handle opened by GPU B's engine");

        byte[][] hashes = {hash("x"), hash("y")};
        int[] blocks = {0, 1};
        assertEquals(
                0,
                KvEngineTest.await(engine.save(new SaveBlocks(ctx0, blocks, hashes, new int[0])))
                        .sealed());
        assertEquals(1, a.copies);
        assertEquals(0, b.copies);
        assertEquals(
                2,
                KvEngineTest.await(engine.save(new SaveBlocks(ctx1, blocks, hashes, new int[0])))
                        .sealed());
        assertEquals(1, b.copies, "rank 1's save copied on GPU B");

        // Rank 1 loads the blocks into blocks 5 and 6: its own bytes come back, on its own GPU.
        byte[] before = memB.asSlice(0, 2L * SLOT).toArray(ValueLayout.JAVA_BYTE);
        java.nio.file.Path flag =
                java.nio.file.Files.createTempFile(java.nio.file.Path.of("/dev/shm"), "pegaflow-flag", ".bin");
        try {
            java.nio.file.Files.write(flag, new byte[64]);
            KvEngineTest.await(engine.load(new LoadBlocks(ctx1, new int[] {5, 6}, hashes, 0, flag.toString(), 0)));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (java.nio.file.Files.readAllBytes(flag)[0] == 0 && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            assertEquals(LoadFlagWriter.DONE, java.nio.file.Files.readAllBytes(flag)[0]);
        } finally {
            java.nio.file.Files.deleteIfExists(flag);
        }
        assertEquals(2, b.copies);
        assertEquals(1, a.copies, "GPU A is not involved in rank 1's load");
        assertArrayEquals(before, memB.asSlice(5L * SLOT, 2L * SLOT).toArray(ValueLayout.JAVA_BYTE));
    }

    @Test
    void shouldRefuseARankOnAGpuTheNodeDoesNotServeNamingTheOnesItDoes() throws Exception {
        engine();
        byte[] h = new byte[64];
        MemorySegment mem = allocation(a, 3, h, new Random(1));
        EngineException e = assertThrows(
                EngineException.class,
                () -> KvEngineTest.await(
                        engine.register(rank(0, "GPU-cccccccc-0000-0000-0000-000000000003", h, mem.byteSize()))));
        assertEquals(EngineException.Code.FAILED_PRECONDITION, e.code());
        assertTrue(e.getMessage().contains(GPU_A) && e.getMessage().contains(GPU_B), e.getMessage());
        assertEquals(0, a.opens + b.opens);
    }
}
