package io.pegaflow.gpu.cuda;

import static io.pegaflow.gpu.cuda.CudaCopyEngineContractTest.device;
import static io.pegaflow.gpu.cuda.CudaCopyEngineContractTest.requireGpu;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.gpu.CopyBatch;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * On a real GPU: a layer's consecutive blocks go to the copy engine as 2D DMAs (cuMemcpy2DAsync) in the BATCH and
 * MEMCPY modes, land byte for byte in both directions, including a stretch whose pool side crosses a 256 MiB
 * registration boundary and irregular runs around them; with {@code dma-rows-min=0} no 2D DMA is made. Skips
 * without CUDA.
 */
@Timeout(180)
class Dma2dCudaTest {
    private static final long RUN = 16 * 1024;
    private static final long POOL_PITCH = 1 << 20;
    private static final int ROWS = 400; // 400 MiB of pool footprint: crosses at least one 256 MiB boundary
    private static final long GPU_BYTES = 2 * ROWS * RUN;

    /** Runs 0..ROWS-1: GPU row i at i*RUN, pool row i at i*POOL_PITCH; then 5 irregular runs. */
    private static CopyBatch batch(boolean save) {
        CopyBatch batch = new CopyBatch(ROWS + 8);
        for (int i = 0; i < ROWS; i++) {
            add(batch, save, i * RUN, i * POOL_PITCH + 4096, RUN);
        }
        for (int k = 0; k < 5; k++) { // irregular: different lengths and places
            add(batch, save, ROWS * RUN + k * 3 * RUN, 3 * POOL_PITCH / 2 + k * 2 * RUN, RUN - 16 * k);
        }
        return batch;
    }

    private static void add(CopyBatch batch, boolean save, long gpu, long pool, long len) {
        if (save) {
            batch.add(gpu, pool, len);
        } else {
            batch.add(pool, gpu, len);
        }
    }

    @Test
    void shouldMoveALayersConsecutiveBlocksAs2dDmasByteForByte() {
        requireGpu();
        for (String mode : new String[] {"batch", "memcpy"}) {
            for (String rowsMin : new String[] {"32", "0"}) {
                check(mode, rowsMin);
            }
        }
    }

    private static void check(String mode, String rowsMin) {
        long poolBytes = (ROWS + 2) * POOL_PITCH;
        Random random = new Random(mode.hashCode() + rowsMin.hashCode());
        CudaCopyEngine engine = CudaCopyEngine.create(
                device,
                CudaCopySettings.from(Map.of("pegaflow.cuda.mode", mode, "pegaflow.cuda.dma-rows-min", rowsMin)));
        try (DeviceBuffer gpu = device.allocate(GPU_BYTES);
                Arena arena = Arena.ofShared()) {
            MemorySegment poolMemory = arena.allocate(poolBytes, 4096);
            MemorySegment gpuImage = arena.allocate(GPU_BYTES, 4096);
            PinnedHostMemory pool = device.registerHost(poolMemory);
            PinnedHostMemory image = device.registerHost(gpuImage);
            try {
                byte[] gpuBytes = new byte[(int) GPU_BYTES];
                random.nextBytes(gpuBytes);
                MemorySegment.copy(gpuBytes, 0, gpuImage, ValueLayout.JAVA_BYTE, 0, gpuBytes.length);
                CopyBatch whole = new CopyBatch(1);
                whole.add(0, 0, GPU_BYTES);
                engine.copy(image.memory(), gpu.memory(), whole, CudaCopyMode.MEMCPY);
                byte[] poolBefore = new byte[(int) poolBytes];
                random.nextBytes(poolBefore);
                MemorySegment.copy(poolBefore, 0, poolMemory, ValueLayout.JAVA_BYTE, 0, poolBefore.length);

                long before = engine.rowDmas();
                CopyBatch save = batch(true);
                engine.copy(gpu.memory(), pool.memory(), save);
                byte[] wantPool = poolBefore.clone();
                for (int i = 0; i < save.runCount(); i++) {
                    System.arraycopy(
                            gpuBytes, (int) save.srcOffset(i), wantPool, (int) save.dstOffset(i), (int) save.length(i));
                }
                assertArrayEquals(wantPool, poolMemory.toArray(ValueLayout.JAVA_BYTE), mode + " save, rows " + rowsMin);
                long saved2d = engine.rowDmas() - before;
                if (rowsMin.equals("0")) {
                    assertEquals(0, saved2d, mode + ": dma-rows-min=0 makes no 2D DMA");
                } else {
                    assertTrue(saved2d >= 2, mode + ": the rows went as 2D DMAs, cut at the boundary: " + saved2d);
                }

                // load: fresh pool bytes back into the GPU's other half and the first half's rows
                random.nextBytes(poolBefore);
                MemorySegment.copy(poolBefore, 0, poolMemory, ValueLayout.JAVA_BYTE, 0, poolBefore.length);
                CopyBatch load = batch(false);
                engine.copy(pool.memory(), gpu.memory(), load);
                byte[] wantGpu = gpuBytes.clone();
                for (int i = 0; i < load.runCount(); i++) {
                    System.arraycopy(poolBefore, (int) load.srcOffset(i), wantGpu, (int) load.dstOffset(i), (int)
                            load.length(i));
                }
                engine.copy(gpu.memory(), image.memory(), whole, CudaCopyMode.MEMCPY);
                assertArrayEquals(wantGpu, gpuImage.toArray(ValueLayout.JAVA_BYTE), mode + " load, rows " + rowsMin);
            } finally {
                pool.close();
                image.close();
            }
        } finally {
            engine.close();
        }
    }
}
