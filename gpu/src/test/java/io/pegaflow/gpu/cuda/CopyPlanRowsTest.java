package io.pegaflow.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.gpu.CopyBatch;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * 2D DMAs ({@link CopyPlan#coalesceRows}), checked without a GPU: which stretches of runs become one 2D copy, where
 * they are cut, and a byte-level simulation that executes the 2D copies row by row plus the remaining ranges and must
 * produce exactly what the batch asks for.
 */
class CopyPlanRowsTest {
    static final long B = ChunkedHostRegistration.BOUNDARY_BYTES;
    static final long KIB = 1024;

    /** A TP-1 style save, layer by layer: layer l's block b at gpu[l] + b * run, pool block b at pool + b * block. */
    static CopyBatch layerMajorSave(int layers, int[] blockIds, long run, long poolBlock, int[] poolBlocks) {
        CopyBatch batch = new CopyBatch(layers * blockIds.length);
        for (int l = 0; l < layers; l++) {
            for (int i = 0; i < blockIds.length; i++) {
                batch.add(l, 0, (long) blockIds[i] * run, poolBlocks[i] * poolBlock + l * run, run);
            }
        }
        return batch;
    }

    static int[] sequence(int from, int n) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = from + i;
        }
        return ids;
    }

    static long[] layerBases(int layers, long gpu, long layerBytes) {
        long[] bases = new long[layers];
        for (int l = 0; l < layers; l++) {
            // separate allocations, not one regular stride apart
            bases[l] = gpu + l * (layerBytes + 3 * B) + (l * l % 7) * (2L << 20);
        }
        return bases;
    }

    @Test
    void shouldMoveEachLayersConsecutiveBlocksAsOne2dDma() {
        int layers = 32;
        int blocks = 100;
        long run = 64 * KIB;
        long poolBlock = layers * run;
        CopyBatch batch = layerMajorSave(layers, sequence(7, blocks), run, poolBlock, sequence(0, blocks));
        CopyPlan plan = new CopyPlan();
        long pool = 4 * B;
        plan.planDma(batch, layerBases(layers, 0x7f00_0000_0000L, 4096 * run), false, new long[] {pool}, true);
        assertEquals(layers * blocks, plan.dmaCount, "before: one range per block and layer");
        plan.coalesceRows(32, false, true);
        assertEquals(layers, plan.rowOpCount);
        assertEquals(0, plan.dmaCount);
        assertEquals(batch.totalBytes(), plan.rowBytes);
        assertEquals(0, plan.dmaBytes);
        long[] first = java.util.Arrays.copyOf(plan.rows, CopyPlan.ROW_OP);
        assertArrayEquals(new long[] {pool, poolBlock, 0x7f00_0000_0000L + 7 * run, run, run, blocks}, first);
        assertEquals(layers, new CopyPlan().dmaOperations(batch, 32), "AUTO's count agrees");
    }

    @Test
    void shouldGroupBlockByBlockRunsByLayerAllocationSoTheirRowsMeet() {
        // the engine adds runs block by block (each block's layers in pool order): part = the layer's allocation
        int layers = 32;
        int blocks = 625;
        long run = 64 * KIB;
        long poolBlock = layers * run;
        CopyBatch batch = new CopyBatch(layers * blocks);
        for (int b = 0; b < blocks; b++) {
            for (int l = 0; l < layers; l++) {
                batch.add(l, 0, (long) (100 + b) * run, b * poolBlock + l * run, run);
            }
        }
        CopyPlan plan = new CopyPlan();
        long[] gpu = layerBases(layers, 0x7f00_0000_0000L, 4096 * run);
        plan.planDma(batch, gpu, false, new long[] {4 * B}, true, false);
        plan.coalesceRows(32, false, true);
        assertEquals(0, plan.rowOpCount, "in batch order no two neighbours are one pitch apart");
        plan.planDma(batch, gpu, false, new long[] {4 * B}, true, true);
        plan.coalesceRows(32, false, true);
        // 625 rows of 2 MiB pool pitch span 1.22 GiB: cut at each 256 MiB registration boundary, 5 or 6 per layer
        assertTrue(plan.rowOpCount >= 5 * layers && plan.rowOpCount <= 6 * layers, "2D DMAs " + plan.rowOpCount);
        assertEquals(batch.totalBytes(), plan.rowBytes + plan.dmaBytes);
        assertTrue(plan.dmaCount < 32 * layers, "ranges left at the cuts: " + plan.dmaCount);
        assertEquals(layers, new CopyPlan().dmaOperations(batch, 32), "AUTO's count (no boundaries known)");
    }

    @Test
    void shouldCutA2dDmaWhereItsHostSideCrossesARegistrationBoundary() {
        long run = 64 * KIB;
        long poolBlock = 2 << 20;
        int blocks = 200;
        CopyBatch batch = layerMajorSave(1, sequence(0, blocks), run, poolBlock, sequence(0, blocks));
        long pool = 4 * B - 100 * poolBlock; // rows 0..99 below the boundary, 100..199 above
        CopyPlan plan = new CopyPlan();
        plan.planDma(batch, new long[] {0x7f00_0000_0000L}, false, new long[] {pool}, true);
        plan.coalesceRows(32, false, true);
        assertEquals(2, plan.rowOpCount);
        assertEquals(100, plan.rows[5]);
        assertEquals(100, plan.rows[CopyPlan.ROW_OP + 5]);
        assertEquals(4 * B, plan.rows[CopyPlan.ROW_OP], "the second 2D DMA starts at the boundary");
        for (int k = 0; k < plan.rowOpCount; k++) {
            long start = plan.rows[k * CopyPlan.ROW_OP];
            long end = start + plan.rows[k * CopyPlan.ROW_OP + 1] * (plan.rows[k * CopyPlan.ROW_OP + 5] - 1) + run;
            assertEquals(start / B, (end - 1) / B, "2D DMA " + k + " inside one registration");
        }
    }

    @Test
    void shouldLeaveStretchesShorterThanTheMinimumAsRanges() {
        long run = 64 * KIB;
        CopyBatch batch = layerMajorSave(1, sequence(0, 31), run, 2 << 20, sequence(0, 31));
        CopyPlan plan = new CopyPlan();
        plan.planDma(batch, new long[] {1L << 40}, false, new long[] {1L << 41}, true);
        plan.coalesceRows(32, false, true);
        assertEquals(0, plan.rowOpCount);
        assertEquals(31, plan.dmaCount);
        assertEquals(batch.totalBytes(), plan.dmaBytes);
        plan.coalesceRows(0, false, true);
        assertEquals(31, plan.dmaCount, "0 turns 2D DMAs off");
    }

    @Test
    void shouldFindAStretchThatStartsAfterAnIrregularRun() {
        long run = 16 * KIB;
        CopyBatch batch = new CopyBatch(64);
        batch.add(0, 900 * run, run); // irregular: the next run is not one pitch on
        for (int i = 0; i < 40; i++) {
            batch.add(5 * run + i * run, i * 8 * run, run);
        }
        CopyPlan plan = new CopyPlan();
        plan.planDma(batch, new long[] {1L << 40}, false, new long[] {1L << 41}, true);
        plan.coalesceRows(32, false, true);
        assertEquals(1, plan.dmaCount);
        assertEquals(1, plan.rowOpCount);
        assertEquals(40, plan.rows[5]);
        assertEquals(2, new CopyPlan().dmaOperations(batch, 32));
    }

    @Test
    void shouldNotMakeRowsThatOverlapOrHaveDifferentLengths() {
        CopyBatch overlap = new CopyBatch(64);
        for (int i = 0; i < 40; i++) {
            overlap.add(i * 100, i * 4096, 4096); // sources 100 bytes apart: rows would overlap
        }
        CopyBatch lengths = new CopyBatch(64);
        for (int i = 0; i < 40; i++) {
            lengths.add(i * 8192, i * 8192, 4096 + (i % 2) * 16);
        }
        for (CopyBatch batch : new CopyBatch[] {overlap, lengths}) {
            CopyPlan plan = new CopyPlan();
            plan.planDma(batch, new long[] {1L << 40}, false, new long[] {1L << 41}, true);
            plan.coalesceRows(4, false, true);
            assertEquals(0, plan.rowOpCount);
            assertEquals(40, plan.dmaCount);
            assertEquals(40, new CopyPlan().dmaOperations(batch, 4));
        }
    }

    @Test
    void shouldLandEveryByteWhenRowsAndRangesRunTogether() {
        // small spaces: 8 layers of 64 blocks x 512 bytes on the "GPU", pool blocks of 8 x 512 bytes on the "host"
        int layers = 8;
        long run = 512;
        int cacheBlocks = 64;
        long poolBlock = layers * run;
        Random random = new Random(11);
        for (int trial = 0; trial < 50; trial++) {
            int n = 20 + random.nextInt(40);
            int[] ids = new int[n];
            int[] poolIds = new int[n];
            // stretches of consecutive ids (and pool blocks) broken at random
            int id = random.nextInt(4);
            int poolId = random.nextInt(4);
            for (int i = 0; i < n; i++) {
                if (random.nextInt(6) == 0) {
                    id += 1 + random.nextInt(2);
                    poolId += random.nextInt(2) == 0 ? 0 : 1;
                }
                ids[i] = id++ % cacheBlocks;
                poolIds[i] = poolId++ % cacheBlocks;
            }
            java.util.Set<Integer> seenPool = new java.util.HashSet<>();
            java.util.Set<Integer> seenIds = new java.util.HashSet<>();
            int m = 0;
            for (int i = 0; i < n; i++) { // distinct targets: a copy never writes one place twice
                if (seenPool.add(poolIds[i]) && seenIds.add(ids[i])) {
                    ids[m] = ids[i];
                    poolIds[m] = poolIds[i];
                    m++;
                }
            }
            ids = java.util.Arrays.copyOf(ids, m);
            poolIds = java.util.Arrays.copyOf(poolIds, m);
            boolean save = random.nextBoolean();
            byte[] gpu = new byte[(int) (layers * cacheBlocks * run)];
            byte[] host = new byte[(int) (cacheBlocks * poolBlock)];
            random.nextBytes(gpu);
            random.nextBytes(host);
            CopyBatch batch = new CopyBatch(layers * m);
            long layerBytes = cacheBlocks * run;
            for (int l = 0; l < layers; l++) {
                for (int i = 0; i < m; i++) {
                    long g = l * layerBytes + ids[i] * run;
                    long h = poolIds[i] * poolBlock + l * run;
                    if (save) {
                        batch.add(g, h, run);
                    } else {
                        batch.add(h, g, run);
                    }
                }
            }
            long gpuBase = 1L << 40;
            long hostBase = 1L << 41;
            byte[][] want = simulateRuns(batch, save, gpu.clone(), host.clone());
            CopyPlan plan = new CopyPlan();
            long[] srcBase = {save ? gpuBase : hostBase};
            long[] dstBase = {save ? hostBase : gpuBase};
            plan.planDma(batch, srcBase, !save, dstBase, save, true);
            plan.coalesceRows(3, !save, save);
            int opsPlanned = plan.rowOpCount + plan.dmaCount;
            byte[] g = gpu.clone();
            byte[] h = host.clone();
            for (int k = 0; k < plan.rowOpCount; k++) {
                int at = k * CopyPlan.ROW_OP;
                for (long r = 0; r < plan.rows[at + 5]; r++) {
                    copy(
                            g,
                            h,
                            gpuBase,
                            hostBase,
                            plan.rows[at] + r * plan.rows[at + 1],
                            plan.rows[at + 2] + r * plan.rows[at + 3],
                            plan.rows[at + 4]);
                }
            }
            for (int d = 0; d < plan.dmaCount; d++) {
                copy(g, h, gpuBase, hostBase, plan.dma[d * 3], plan.dma[d * 3 + 1], plan.dma[d * 3 + 2]);
            }
            assertArrayEquals(want[0], g, "trial " + trial + ": GPU bytes");
            assertArrayEquals(want[1], h, "trial " + trial + ": host bytes");
            assertEquals(batch.totalBytes(), plan.rowBytes + plan.dmaBytes);
            assertEquals(new CopyPlan().dmaOperations(batch, 3), opsPlanned, "trial " + trial + ": AUTO's count");
            assertTrue(opsPlanned <= batch.runCount());
        }
    }

    private static byte[][] simulateRuns(CopyBatch batch, boolean save, byte[] gpu, byte[] host) {
        for (int i = 0; i < batch.runCount(); i++) {
            byte[] src = save ? gpu : host;
            byte[] dst = save ? host : gpu;
            System.arraycopy(src, (int) batch.srcOffset(i), dst, (int) batch.dstOffset(i), (int) batch.length(i));
        }
        return new byte[][] {gpu, host};
    }

    /** One row or range between the two simulated spaces (addresses tell which). */
    private static void copy(byte[] gpu, byte[] host, long gpuBase, long hostBase, long dst, long src, long len) {
        byte[] from = src >= hostBase ? host : gpu;
        byte[] to = dst >= hostBase ? host : gpu;
        int s = (int) (src - (src >= hostBase ? hostBase : gpuBase));
        int d = (int) (dst - (dst >= hostBase ? hostBase : gpuBase));
        System.arraycopy(from, s, to, d, (int) len);
    }

    @Test
    void shouldLetAutoBatchTp4LayerRunsThatFormRows() {
        // TP 4: 16 KiB per block and layer; consecutive ids form rows, random ones do not
        long run = 16 * KIB;
        int blocks = 625;
        CopyBatch rows = layerMajorSave(32, sequence(0, blocks), run, 2 << 20, sequence(0, blocks));
        int[] shuffled = sequence(0, blocks);
        Random random = new Random(5);
        for (int i = blocks - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = shuffled[i];
            shuffled[i] = shuffled[j];
            shuffled[j] = t;
        }
        CopyBatch scattered = layerMajorSave(32, shuffled, run, 2 << 20, sequence(0, blocks));
        long min = CudaCopySettings.DEFAULT_AUTO_BATCH_MIN_BYTES;
        int rowsMin = CudaCopySettings.SUGGESTED_DMA_ROWS_MIN;
        assertEquals(CudaCopyMode.BATCH, CudaCopyEngine.autoMode(rows, false, 128 * KIB, min, rowsMin));
        assertEquals(CudaCopyMode.KERNEL, CudaCopyEngine.autoMode(rows, false, 128 * KIB, min, 0), "2D off");
        assertEquals(CudaCopyMode.KERNEL, CudaCopyEngine.autoMode(scattered, false, 128 * KIB, min, rowsMin));
    }
}
