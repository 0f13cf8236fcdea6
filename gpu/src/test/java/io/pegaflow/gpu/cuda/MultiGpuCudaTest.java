package io.pegaflow.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.pegaflow.gpu.CopyBatch;
import io.pegaflow.gpu.MultiGpuCopyEngine;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * On a real GPU: the pool pinned chunk by chunk ({@link ChunkedHostRegistration}) copies across its chunk boundaries
 * in every mode, and the multi-GPU path (the pool shared with a second {@link CudaDevice}, an engine per device behind
 * {@link MultiGpuCopyEngine}). On a one-GPU machine the "second GPU" is device 0 opened a second time: its own
 * registry and engine over the same primary context, so routing, sharing and both engines' copies run for real; a
 * machine with two or more GPUs uses device 1. Skips without CUDA.
 */
@Timeout(180)
class MultiGpuCudaTest {
    private static final long BOUNDARY = ChunkedHostRegistration.BOUNDARY_BYTES;
    static CudaDevice first;
    static CudaDevice second;

    @BeforeEach
    void gpu() {
        assumeTrue(
                CudaProbe.isAvailable(),
                () -> "CUDA tests skipped: " + CudaProbe.unavailabilityCause().orElse(""));
        if (first == null) {
            first = CudaDevice.open("0");
            second = CudaDevice.open(CudaProbe.deviceCount() > 1 ? "1" : "0");
        }
    }

    @AfterAll
    static void close() {
        if (first != null) {
            second.close();
            first.close();
            first = second = null;
        }
    }

    /** 2 x 256 MiB of host memory at a 256 MiB-aligned address, pinned as two chunks. */
    private static PinnedHostMemory pinnedInTwoChunks(MemorySegment memory) {
        ChunkedHostRegistration registration = new ChunkedHostRegistration(first);
        // Out of order, as parallel registrar threads may hand them in.
        registration.register(memory.address() + BOUNDARY, BOUNDARY);
        registration.register(memory.address(), BOUNDARY);
        return registration.finish(memory, "test");
    }

    @Test
    void shouldCopyAcrossAChunkBoundaryOfTheChunkedPoolInEveryMode() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment memory = arena.allocate(2 * BOUNDARY, BOUNDARY);
            try (PinnedHostMemory pool = pinnedInTwoChunks(memory);
                    DeviceBuffer gpu = first.allocate(8L << 20)) {
                assertEquals(2, pool.registrationCount());
                Random random = new Random(1);
                for (CudaCopyMode mode : CudaCopyMode.values()) {
                    CudaCopySettings settings = CudaCopySettings.defaults().withModes(mode, mode);
                    try (CudaCopyEngine engine = CudaCopyEngine.create(first, settings)) {
                        // 4 MiB in 64 KiB runs: pool side contiguous across BOUNDARY, GPU side strided.
                        CopyBatch save = new CopyBatch(64);
                        CopyBatch load = new CopyBatch(64);
                        for (int r = 0; r < 64; r++) {
                            long poolOffset = BOUNDARY - (2L << 20) + r * 65_536L;
                            save.add((long) r * 2 * 65_536, poolOffset, 65_536);
                            load.add(poolOffset, (long) r * 2 * 65_536 + 65_536, 65_536);
                        }
                        byte[] data = new byte[8 << 20];
                        random.nextBytes(data);
                        MemorySegment staging = arena.allocate(data.length, 4096);
                        MemorySegment.copy(data, 0, staging, ValueLayout.JAVA_BYTE, 0, data.length);
                        first.copySync(gpu.address(), staging.address(), data.length);
                        engine.copy(gpu.memory(), pool.memory(), save);
                        engine.copy(pool.memory(), gpu.memory(), load);
                        first.copySync(staging.address(), gpu.address(), data.length);
                        for (int r = 0; r < 64; r++) {
                            byte[] want = java.util.Arrays.copyOfRange(data, r * 2 * 65_536, r * 2 * 65_536 + 65_536);
                            long poolOffset = BOUNDARY - (2L << 20) + r * 65_536L;
                            assertArrayEquals(
                                    want,
                                    pool.memory().asSlice(poolOffset, 65_536).toArray(ValueLayout.JAVA_BYTE),
                                    mode + ": saved run " + r);
                            assertArrayEquals(
                                    want,
                                    staging.asSlice((long) r * 2 * 65_536 + 65_536, 65_536)
                                            .toArray(ValueLayout.JAVA_BYTE),
                                    mode + ": loaded run " + r);
                        }
                    }
                }
            }
        }
    }

    @Test
    void shouldCopyOneRunThatStraddlesTheChunkBoundaryInEveryMode() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment memory = arena.allocate(2 * BOUNDARY, BOUNDARY);
            try (PinnedHostMemory pool = pinnedInTwoChunks(memory);
                    DeviceBuffer gpu = first.allocate(4L << 20)) {
                Random random = new Random(3);
                for (CudaCopyMode mode : CudaCopyMode.values()) {
                    try (CudaCopyEngine engine = CudaCopyEngine.create(
                            first, CudaCopySettings.defaults().withModes(mode, mode))) {
                        // One 1 MiB + 4 KiB run with 512 KiB before the boundary (the H200 failure, BATCH chosen by
                        // AUTO).
                        long len = (1 << 20) + 4096;
                        long poolOffset = BOUNDARY - (1 << 19);
                        CopyBatch save = new CopyBatch(1);
                        save.add(0, poolOffset, len);
                        CopyBatch load = new CopyBatch(1);
                        load.add(poolOffset, 2L << 20, len);
                        byte[] data = new byte[(int) len];
                        random.nextBytes(data);
                        MemorySegment host = arena.allocate(4L << 20, 4096);
                        MemorySegment.copy(data, 0, host, ValueLayout.JAVA_BYTE, 0, data.length);
                        first.copySync(gpu.address(), host.address(), len);
                        engine.copy(gpu.memory(), pool.memory(), save);
                        assertArrayEquals(
                                data,
                                pool.memory().asSlice(poolOffset, len).toArray(ValueLayout.JAVA_BYTE),
                                mode + ": saved");
                        engine.copy(pool.memory(), gpu.memory(), load);
                        first.copySync(host.address(), gpu.address() + (2L << 20), len);
                        assertArrayEquals(data, host.asSlice(0, len).toArray(ValueLayout.JAVA_BYTE), mode + ": loaded");
                    }
                }
            }
        }
    }

    @Test
    void shouldCopyByteExactWhenABatchedCopyIsSplitOverOneToEightStreams() {
        assumeTrue(Cu.hasMemcpyBatch(), "no cuMemcpyBatchAsync in this driver");
        try (Arena arena = Arena.ofShared()) {
            MemorySegment memory = arena.allocate(2 * BOUNDARY, BOUNDARY);
            int gpuBytes = 64 << 20;
            try (PinnedHostMemory pool = pinnedInTwoChunks(memory);
                    DeviceBuffer gpu = first.allocate(2L * gpuBytes)) {
                // Layer runs strided on the GPU, contiguous per block in the pool, odd sizes, some runs adjacent on
                // both sides (merged), one across the pool's chunk boundary; ~37 MiB in all.
                Random random = new Random(11);
                CopyBatch save = new CopyBatch(600);
                CopyBatch load = new CopyBatch(600);
                long poolAt = BOUNDARY - (16L << 20) - 12_345;
                long gpuAt = 0;
                while (gpuAt < gpuBytes - (1 << 20) && save.runCount() < 600) {
                    long len = random.nextInt(4) == 0 ? 1 + random.nextInt(200_000) : 65_536;
                    save.add(gpuAt, poolAt, len);
                    load.add(poolAt, gpuBytes + gpuAt, len);
                    poolAt += len;
                    gpuAt += len + (random.nextBoolean() ? 0 : 65_536);
                }
                long poolStart = BOUNDARY - (16L << 20) - 12_345;
                long poolBytes = poolAt - poolStart;
                assertTrue(poolAt > BOUNDARY, "the batch crosses the boundary");
                byte[] data = new byte[gpuBytes];
                MemorySegment host = arena.allocate(gpuBytes, 4096);
                for (int streams : new int[] {1, 2, 3, 4, 8}) {
                    CudaCopySettings settings = CudaCopySettings.defaults()
                            .withModes(CudaCopyMode.BATCH, CudaCopyMode.BATCH)
                            .withBatchStreams(streams);
                    try (CudaCopyEngine engine = CudaCopyEngine.create(first, settings)) {
                        assertTrue(engine.describe().contains("split over " + streams + " stream"), engine.describe());
                        random.nextBytes(data);
                        MemorySegment.copy(data, 0, host, ValueLayout.JAVA_BYTE, 0, data.length);
                        first.copySync(gpu.address(), host.address(), gpuBytes);
                        pool.memory().asSlice(poolStart, poolBytes).fill((byte) 0);
                        engine.copy(gpu.memory(), pool.memory(), save);
                        for (int i = 0; i < save.runCount(); i++) {
                            int g = (int) save.srcOffset(i);
                            int n = (int) save.length(i);
                            assertArrayEquals(
                                    java.util.Arrays.copyOfRange(data, g, g + n),
                                    pool.memory().asSlice(save.dstOffset(i), n).toArray(ValueLayout.JAVA_BYTE),
                                    streams + " streams: saved run " + i);
                        }
                        engine.copy(pool.memory(), gpu.memory(), load);
                        first.copySync(host.address(), gpu.address() + gpuBytes, gpuBytes);
                        for (int i = 0; i < save.runCount(); i++) {
                            int g = (int) save.srcOffset(i);
                            int n = (int) save.length(i);
                            assertArrayEquals(
                                    java.util.Arrays.copyOfRange(data, g, g + n),
                                    host.asSlice(g, n).toArray(ValueLayout.JAVA_BYTE),
                                    streams + " streams: loaded run " + i);
                        }
                    }
                }
            }
        }
    }

    @Test
    void shouldRefuseChunksThatDoNotTileTheRegionAndUnregisterThem() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment memory = arena.allocate(2 * BOUNDARY, BOUNDARY);
            ChunkedHostRegistration registration = new ChunkedHostRegistration(first);
            registration.register(memory.address() + BOUNDARY, BOUNDARY);
            IllegalStateException e =
                    assertThrows(IllegalStateException.class, () -> registration.finish(memory, "test"));
            assertTrue(e.getMessage().contains("gap"), e.getMessage());
            // Unregistered: the whole region can be registered again.
            first.registerHost(memory).close();
        }
    }

    @Test
    void shouldServeTwoGpusFromOnePoolPinnedOnceAndRouteEachCopyToItsGpu() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment memory = arena.allocate(2 * BOUNDARY, BOUNDARY);
            try (PinnedHostMemory pool = pinnedInTwoChunks(memory);
                    DeviceBuffer onFirst = first.allocate(1 << 20);
                    DeviceBuffer onSecond = second.allocate(1 << 20)) {
                pool.shareWith(second);
                assertEquals(List.of(second), pool.sharedWith());
                CudaCopyEngine e1 = CudaCopyEngine.create(first, CudaCopySettings.defaults());
                CudaCopyEngine e2 = CudaCopyEngine.create(second, CudaCopySettings.defaults());
                // Two engines for one physical GPU would share a UUID: the router needs distinct ones, so on a
                // one-GPU machine route through the engines directly and check the router's choice on its own.
                try (var router = distinctGpus() ? new MultiGpuCopyEngine(List.of(e1, e2)) : null) {
                    assertTrue(e2.ownsDeviceMemory(onSecond.memory()));
                    assertTrue(!e2.ownsDeviceMemory(onFirst.memory()));
                    assertTrue(e1.ownsDeviceMemory(onFirst.memory()));
                    if (router != null) {
                        assertSame(
                                e2,
                                router.engineFor(
                                        new MemorySegment[] {onSecond.memory()},
                                        1,
                                        new MemorySegment[] {pool.memory()},
                                        1));
                        assertSame(
                                e1,
                                router.engineFor(
                                        new MemorySegment[] {pool.memory()},
                                        1,
                                        new MemorySegment[] {onFirst.memory()},
                                        1));
                    }
                    // The second GPU's engine sees the pool as pinned memory (staged, not the memcpy fallback) and
                    // copies its own GPU's bytes into it; the first GPU's engine reads them back out.
                    second.makeCurrent();
                    Cu.check(Cu.memsetD8(onSecond.address(), (byte) 0x5A, 1 << 20), "cuMemsetD8", "");
                    CopyBatch save = new CopyBatch(1);
                    save.add(0, BOUNDARY - (1 << 19), 1 << 20); // across the chunk boundary
                    (router != null ? router : e2).copy(onSecond.memory(), pool.memory(), save);
                    CopyBatch load = new CopyBatch(1);
                    load.add(BOUNDARY - (1 << 19), 0, 1 << 20);
                    (router != null ? router : e1).copy(pool.memory(), onFirst.memory(), load);
                    byte[] back = new byte[1 << 20];
                    MemorySegment host = arena.allocate(1 << 20, 4096);
                    first.copySync(host.address(), onFirst.address(), 1 << 20);
                    MemorySegment.copy(host, ValueLayout.JAVA_BYTE, 0, back, 0, back.length);
                    byte[] want = new byte[1 << 20];
                    java.util.Arrays.fill(want, (byte) 0x5A);
                    assertArrayEquals(want, back);
                } finally {
                    if (!distinctGpus()) {
                        e1.close();
                        e2.close();
                    }
                }
            }
            // Closing the pool removed it from both registries: the memory is ordinary host memory again.
            assertEquals(null, second.regionOf(memory));
            assertEquals(null, first.regionOf(memory));
        }
    }

    private static boolean distinctGpus() {
        return !first.uuid().equals(second.uuid());
    }
}
