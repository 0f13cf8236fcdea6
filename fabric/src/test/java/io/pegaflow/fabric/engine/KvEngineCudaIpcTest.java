package io.pegaflow.fabric.engine;

import static io.pegaflow.fabric.engine.ShmKvCache.hash;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.pegaflow.gpu.CopyBatch;
import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.gpu.HostCopyEngine;
import io.pegaflow.gpu.MappedRegion;
import io.pegaflow.proto.engine.ByteSegment;
import io.pegaflow.proto.engine.CudaIpcRegion;
import io.pegaflow.proto.engine.LayerRegistration;
import io.pegaflow.proto.engine.MemoryRegion;
import io.pegaflow.proto.engine.RegisterContextRequest;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.pool.BlockPool;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashMap;
import java.util.HexFormat;
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
        int opens;
        int closes;

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
        engine = new KvEngine(store, copy, 2, EngineListener.NONE);
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

    private static LayerRegistration layer(int index, byte[] handle, long allocationBytes, long offset) {
        return LayerRegistration.newBuilder()
                .setName("model.layers." + index + ".self_attn.attn")
                .setLayerIndex(index)
                .setRegion(MemoryRegion.newBuilder()
                        .setCudaIpc(CudaIpcRegion.newBuilder()
                                .setIpcHandle(ByteString.copyFrom(handle))
                                .setAllocationSizeBytes(allocationBytes)
                                .setOffsetBytes(offset)))
                .setNumBlocks(BLOCKS)
                .setBlockStrideBytes(SLOT)
                .addSegments(ByteSegment.newBuilder().setOffsetBytes(0).setLengthBytes(SLOT))
                .build();
    }

    /** 4 layers in 2 allocations (2 layers each, the second at an offset). */
    private RegisterContextRequest.Builder request(String device) {
        long layerBytes = (long) BLOCKS * SLOT;
        byte[] a = allocation(1, 2 * layerBytes + 512);
        byte[] b = allocation(2, 2 * layerBytes + 512);
        return RegisterContextRequest.newBuilder()
                .setInstanceId("i1")
                .setNamespace("ns")
                .setTpRank(0)
                .setTpSize(1)
                .setTotalLayers(4)
                .setDevice(device)
                .addLayers(layer(0, a, 2 * layerBytes + 512, 0))
                .addLayers(layer(1, a, 2 * layerBytes + 512, layerBytes + 512))
                .addLayers(layer(2, b, 2 * layerBytes + 512, 512))
                .addLayers(layer(3, b, 2 * layerBytes + 512, layerBytes + 512));
    }

    private static void expect(EngineException.Code code, String part, Runnable call) {
        EngineException e = assertThrows(EngineException.class, call::run);
        assertEquals(code, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains(part), "message \"" + e.getMessage() + "\" lacks \"" + part + "\"");
    }

    @Test
    void shouldOpenEachAllocationOnceShareItAcrossLayersAndReleaseItOnUnregister() throws Exception {
        engine();
        RegisterContextRequest request = request(GPU.substring(4).toUpperCase()).build();
        String ctx = engine.register(request).contextId();
        assertEquals(2, copy.opens, "two allocations, four layers");

        // Save blocks 0..3 of every layer, overwrite them, load them into blocks 10..13.
        Random random = new Random(5);
        byte[][] expected = new byte[4 * 4][SLOT];
        long[] layerOffset = new long[4];
        MemorySegment[] layerMemory = new MemorySegment[4];
        for (int l = 0; l < 4; l++) {
            CudaIpcRegion ipc = request.getLayers(l).getRegion().getCudaIpc();
            layerMemory[l] = allocations()
                    .get(HexFormat.of().formatHex(ipc.getIpcHandle().toByteArray()));
            layerOffset[l] = ipc.getOffsetBytes();
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
                engine.save(ctx, new int[] {0, 1, 2, 3}, hashes, new int[0])
                        .get(10, TimeUnit.SECONDS)
                        .sealed());
        for (int l = 0; l < 4; l++) {
            layerMemory[l].asSlice(layerOffset[l], 4L * SLOT).fill((byte) 0xA5);
        }
        java.nio.file.Path flag =
                java.nio.file.Files.createTempFile(java.nio.file.Path.of("/dev/shm"), "pegaflow-flag", ".bin");
        try {
            java.nio.file.Files.write(flag, new byte[64]);
            engine.load(ctx, new int[] {10, 11, 12, 13}, hashes, 0, flag.toString(), 0);
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
        engine.unregister(ctx, "test");
        assertEquals(2, copy.closes);
    }

    @Test
    void shouldRefuseARegistrationForAnotherGpu() {
        engine();
        expect(
                EngineException.Code.FAILED_PRECONDITION,
                "device: \"GPU-00000000-0000-0000-0000-000000000000\" is not the GPU this node serves (" + GPU + ")",
                () -> engine.register(
                        request("GPU-00000000-0000-0000-0000-000000000000").build()));
        assertEquals(0, copy.opens);
    }

    @Test
    void shouldRejectAHandleThatIsNot64Bytes() {
        engine();
        RegisterContextRequest.Builder r = request(GPU);
        LayerRegistration.Builder bad = r.getLayers(2).toBuilder();
        bad.getRegionBuilder().getCudaIpcBuilder().setIpcHandle(ByteString.copyFrom(new byte[10]));
        r.setLayers(2, bad);
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "layers[2].region.cuda_ipc.ipc_handle: 10 bytes; a cudaIpcMemHandle_t has 64",
                () -> engine.register(r.build()));
        assertEquals(copy.opens, copy.closes, "what was opened before the bad layer is closed again");
    }

    @Test
    void shouldRefuseLayersThatRunPastTheirAllocation() {
        engine();
        RegisterContextRequest.Builder r = request(GPU);
        r.setLayers(3, r.getLayers(3).toBuilder().setNumBlocks(BLOCKS + 1));
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "past the end of cuda-ipc stand-in",
                () -> engine.register(r.build()));
        assertEquals(copy.opens, copy.closes);
    }

    @Test
    void shouldPassOnAHandleTheDriverRefuses() {
        engine();
        RegisterContextRequest.Builder r = request(GPU);
        LayerRegistration.Builder bad = r.getLayers(0).toBuilder();
        bad.getRegionBuilder().getCudaIpcBuilder().setIpcHandle(ByteString.copyFrom(new byte[64]));
        r.setLayers(0, bad);
        expect(
                EngineException.Code.FAILED_PRECONDITION,
                "layers[0].region.cuda_ipc: cannot open the handle: cuIpcOpenMemHandle_v2 failed",
                () -> engine.register(r.build()));
    }
}
