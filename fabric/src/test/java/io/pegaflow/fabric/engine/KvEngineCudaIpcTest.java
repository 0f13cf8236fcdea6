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
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.pool.BlockPool;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * CUDA IPC registrations through the engine without a GPU: a stand-in copy engine "opens" handles onto host memory
 * and copies with memcpy, so the engine's side (device check, handle validation, one mapping per allocation shared
 * by its layers, bounds, release on unregister) runs in CI. The real handles run in bench/gpu on a GPU machine.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class KvEngineCudaIpcTest {
    static final String GPU = "GPU-3475cb91-ca10-592d-4a6f-1d59216aaf6c";
    static final int SLOT = 4096;
    static final int BLOCKS = 32;

    /** Handles name host segments; counts opens and closes. */
    static final class StandInIpcEngine implements CopyEngine {
        final HostCopyEngine host = new HostCopyEngine();
        final Map<String, MemorySegment> allocations = new HashMap<>();
        volatile int opens;
        volatile int closes;

        @Override
        public String name() {
            return "cuda";
        }

        @Override
        public void copy(MemorySegment[] srcs, MemorySegment[] dsts, CopyBatch batch) {
            host.copy(srcs, dsts, batch);
        }

        @Override
        public java.util.Optional<String> deviceUuid() {
            return java.util.Optional.of(GPU);
        }

        @Override
        public MappedRegion openCudaIpc(byte[] handle, long allocationSizeBytes) {
            MemorySegment memory = allocations.get(HexFormat.of().formatHex(handle));
            if (memory == null) {
                throw new IllegalStateException("cuIpcOpenMemHandle_v2 failed: CUDA_ERROR_INVALID_VALUE (1)");
            }
            if (allocationSizeBytes > memory.byteSize()) {
                throw new IllegalArgumentException(
                        "allocation_size_bytes: " + allocationSizeBytes + " is larger than the allocation");
            }
            opens++;
            return new MappedRegion() {
                @Override
                public MemorySegment memory() {
                    return memory;
                }

                @Override
                public String description() {
                    return "cuda-ipc stand-in";
                }

                @Override
                public void close() {
                    closes++;
                }
            };
        }
    }

    private final Arena arena = Arena.ofShared();
    private final StandInIpcEngine copy = new StandInIpcEngine();
    private KvEngine engine;

    private KvEngine engine() {
        BlockStore store = new BlockStore(BlockPool.allocateOffHeap(16L << 20), 30_000_000_000L, System::nanoTime);
        engine = KvEngine.builder(store, copy).build();
        return engine;
    }

    @AfterEach
    void cleanUp() {
        if (engine != null) {
            engine.close();
            engine.store().pool().close();
        }
        arena.close();
    }

    private byte[] allocation(int id, long bytes) {
        byte[] handle = new byte[64];
        handle[0] = (byte) id;
        handle[63] = 7;
        allocations().put(HexFormat.of().formatHex(handle), arena.allocate(bytes, 256));
        return handle;
    }

    private Map<String, MemorySegment> allocations() {
        return copy.allocations;
    }

    private static LayerSpec layer(int index, byte[] handle, long allocationBytes, long offset) {
        return new LayerSpec(
                "model.layers." + index + ".self_attn.attn",
                index,
                new RegionSpec.CudaIpc(handle, allocationBytes, offset),
                BLOCKS,
                SLOT,
                List.of(new LayerSpec.Segment(0, SLOT)));
    }

    /** 4 layers in 2 allocations (2 layers each, the second at an offset). */
    private ContextRegistration request(String device) {
        long layerBytes = (long) BLOCKS * SLOT;
        byte[] a = allocation(1, 2 * layerBytes + 512);
        byte[] b = allocation(2, 2 * layerBytes + 512);
        return new ContextRegistration(
                "i1",
                "ns",
                0,
                1,
                0,
                4,
                device,
                List.of(
                        layer(0, a, 2 * layerBytes + 512, 0),
                        layer(1, a, 2 * layerBytes + 512, layerBytes + 512),
                        layer(2, b, 2 * layerBytes + 512, 512),
                        layer(3, b, 2 * layerBytes + 512, layerBytes + 512)));
    }

    private String register(ContextRegistration r) throws Exception {
        return KvEngineTest.await(engine.register(r)).contextId();
    }

    private static void expect(EngineException.Code code, String part, KvEngineTest.Executable call) {
        EngineException e = assertThrows(EngineException.class, call::execute);
        assertEquals(code, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains(part), "message \"" + e.getMessage() + "\" lacks \"" + part + "\"");
    }

    private static LayerSpec withHandle(LayerSpec layer, byte[] handle) {
        RegionSpec.CudaIpc ipc = (RegionSpec.CudaIpc) layer.region();
        return Registrations.withRegion(
                layer, new RegionSpec.CudaIpc(handle, ipc.allocationSizeBytes(), ipc.offsetBytes()));
    }

    @Test
    void shouldOpenEachAllocationOnceShareItAcrossLayersAndReleaseItOnUnregister() throws Exception {
        engine();
        ContextRegistration request = request(GPU.substring(4).toUpperCase());
        String ctx = register(request);
        assertEquals(2, copy.opens, "two allocations, four layers");

        // Save blocks 0..3 of every layer, overwrite them, load them into blocks 10..13.
        Random random = new Random(5);
        byte[][] expected = new byte[4 * 4][SLOT];
        long[] layerOffset = new long[4];
        MemorySegment[] layerMemory = new MemorySegment[4];
        for (int l = 0; l < 4; l++) {
            RegionSpec.CudaIpc ipc =
                    (RegionSpec.CudaIpc) request.layers().get(l).region();
            layerMemory[l] = allocations().get(HexFormat.of().formatHex(ipc.ipcHandle()));
            layerOffset[l] = ipc.offsetBytes();
            for (int b = 0; b < 4; b++) {
                random.nextBytes(expected[l * 4 + b]);
                MemorySegment.copy(
                        expected[l * 4 + b],
                        0,
                        layerMemory[l],
                        ValueLayout.JAVA_BYTE,
                        layerOffset[l] + (long) b * SLOT,
                        SLOT);
            }
        }
        byte[][] hashes = {hash("a"), hash("b"), hash("c"), hash("d")};
        assertEquals(
                4,
                KvEngineTest.await(engine.save(new SaveBlocks(ctx, new int[] {0, 1, 2, 3}, hashes, new int[0])))
                        .sealed());
        for (int l = 0; l < 4; l++) {
            layerMemory[l].asSlice(layerOffset[l], 4L * SLOT).fill((byte) 0xA5);
        }
        java.nio.file.Path flag =
                java.nio.file.Files.createTempFile(java.nio.file.Path.of("/dev/shm"), "pegaflow-flag", ".bin");
        try {
            java.nio.file.Files.write(flag, new byte[64]);
            KvEngineTest.await(
                    engine.load(new LoadBlocks(ctx, new int[] {10, 11, 12, 13}, hashes, 0, flag.toString(), 0)));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (java.nio.file.Files.readAllBytes(flag)[0] == 0 && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            assertEquals(LoadFlagWriter.DONE, java.nio.file.Files.readAllBytes(flag)[0]);
        } finally {
            java.nio.file.Files.deleteIfExists(flag);
        }
        for (int l = 0; l < 4; l++) {
            for (int b = 0; b < 4; b++) {
                byte[] got = layerMemory[l]
                        .asSlice(layerOffset[l] + (long) (10 + b) * SLOT, SLOT)
                        .toArray(ValueLayout.JAVA_BYTE);
                assertArrayEquals(expected[l * 4 + b], got, "layer " + l + " block " + b);
            }
        }
        assertTrue(KvEngineTest.await(engine.unregister(ctx, "test")));
        assertEquals(2, copy.closes, "both allocations closed once the unregistration completes");
    }

    @Test
    void shouldRefuseARegistrationForAnotherGpu() {
        engine();
        expect(
                EngineException.Code.FAILED_PRECONDITION,
                "device: \"GPU-00000000-0000-0000-0000-000000000000\" is not a GPU this node serves (" + GPU + ")",
                () -> register(request("GPU-00000000-0000-0000-0000-000000000000")));
        assertEquals(0, copy.opens);
    }

    @Test
    void shouldRejectAHandleThatIsNot64Bytes() {
        engine();
        ContextRegistration good = request(GPU);
        ContextRegistration r =
                Registrations.withLayer(good, 2, withHandle(good.layers().get(2), new byte[10]));
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "layers[2].region.cuda_ipc.ipc_handle: 10 bytes; a cudaIpcMemHandle_t has 64",
                () -> register(r));
        assertEquals(copy.opens, copy.closes, "what was opened before the bad layer is closed again");
    }

    @Test
    void shouldRefuseLayersThatRunPastTheirAllocation() {
        engine();
        ContextRegistration good = request(GPU);
        ContextRegistration r = Registrations.withLayer(
                good, 3, Registrations.withNumBlocks(good.layers().get(3), BLOCKS + 1));
        expect(EngineException.Code.INVALID_ARGUMENT, "past the end of cuda-ipc stand-in", () -> register(r));
        assertEquals(copy.opens, copy.closes);
    }

    @Test
    void shouldPassOnAHandleTheDriverRefuses() {
        engine();
        ContextRegistration good = request(GPU);
        ContextRegistration r =
                Registrations.withLayer(good, 0, withHandle(good.layers().get(0), new byte[64]));
        expect(
                EngineException.Code.FAILED_PRECONDITION,
                "layers[0].region.cuda_ipc: cannot open the handle: cuIpcOpenMemHandle_v2 failed",
                () -> register(r));
    }
}
