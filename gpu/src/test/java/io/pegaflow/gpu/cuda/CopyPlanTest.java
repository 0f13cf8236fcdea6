package io.pegaflow.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.gpu.CopyBatch;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The copy plans, checked without a GPU: a byte-level simulation executes the DMAs and kernel descriptors in
 * chunk order over three address spaces (host, GPU, staging ring) and must produce what the batch asks for.
 */
class CopyPlanTest {
    static final long HOST = 0x1000_0000L;
    static final long GPU = 0x2000_0000L;
    static final long STAGING = 0x3000_0000L;
    static final int SPACE = 1 << 20;

    /** Three flat address spaces. */
    static final class Memory {
        final byte[] host = new byte[SPACE];
        final byte[] gpu = new byte[SPACE];
        final byte[] staging = new byte[SPACE];

        byte[] space(long address) {
            if (address >= STAGING) {
                return staging;
            }
            return address >= GPU ? gpu : host;
        }

        int offset(long address) {
            return (int) (address - (address >= STAGING ? STAGING : address >= GPU ? GPU : HOST));
        }

        void copy(long dst, long src, long len) {
            System.arraycopy(space(src), offset(src), space(dst), offset(dst), (int) len);
        }
    }

    private static CopyBatch randomBatch(Random random, int runs, boolean odd) {
        CopyBatch batch = new CopyBatch(runs);
        long src = odd ? 5 : 0;
        long dst = odd ? 11 : 0;
        for (int i = 0; i < runs; i++) {
            long len = odd ? 1 + random.nextInt(70_000) : 16L * (1 + random.nextInt(4096));
            if (src + len + 64 > SPACE || dst + len + 64 > SPACE) {
                break;
            }
            batch.add(src, dst, len);
            src += len + (odd ? random.nextInt(33) : 16L * random.nextInt(3));
            dst += len + (odd ? random.nextInt(33) : 16L * random.nextInt(3));
        }
        return batch;
    }

    private static byte[] expected(byte[] src, byte[] dst, CopyBatch batch) {
        byte[] out = dst.clone();
        for (int i = 0; i < batch.runCount(); i++) {
            System.arraycopy(src, (int) batch.srcOffset(i), out, (int) batch.dstOffset(i), (int) batch.length(i));
        }
        return out;
    }

    @Test
    void shouldCutRunsIntoPiecesForTheKernel() {
        CopyBatch batch = new CopyBatch(2);
        batch.add(0, 1000, 150_000);
        batch.add(200_000, 0, 10);
        CopyPlan plan = new CopyPlan();
        plan.planDirect(batch, new long[] {HOST}, new long[] {GPU}, 65_536);
        assertEquals(4, plan.descCount);
        assertArrayEquals(
                new long[] {
                    HOST,
                    GPU + 1000,
                    65_536,
                    HOST + 65_536,
                    GPU + 1000 + 65_536,
                    65_536,
                    HOST + 131_072,
                    GPU + 1000 + 131_072,
                    150_000 - 131_072,
                    HOST + 200_000,
                    GPU,
                    10
                },
                java.util.Arrays.copyOf(plan.desc, 12));
    }

    @Test
    void shouldStageLoadsThatLandEveryByte() {
        for (boolean odd : new boolean[] {false, true}) {
            Random random = new Random(odd ? 7 : 3);
            for (long chunk : new long[] {64 * 1024, 256 * 1024, 1 << 20}) {
                Memory m = new Memory();
                random.nextBytes(m.host);
                random.nextBytes(m.gpu);
                CopyBatch batch = randomBatch(random, 200, odd);
                byte[] want = expected(m.host, m.gpu, batch);
                long[] ring = {STAGING, STAGING + chunk, STAGING + 2 * chunk};
                CopyPlan plan = new CopyPlan();
                plan.planStaged(batch, new long[] {HOST}, new long[] {GPU}, true, ring, chunk, 65_536);
                for (int c = 0; c < plan.chunkCount; c++) {
                    long base = ring[c % ring.length];
                    for (int d = plan.chunkDma[c]; d < plan.chunkDma[c + 1]; d++) {
                        long dst = plan.dma[d * 3];
                        assertTrue(
                                dst >= base && dst + plan.dma[d * 3 + 2] <= base + chunk,
                                "DMA inside its chunk's buffer");
                        m.copy(dst, plan.dma[d * 3 + 1], plan.dma[d * 3 + 2]);
                    }
                    for (int k = plan.chunkDesc[c]; k < plan.chunkDesc[c + 1]; k++) {
                        long src = plan.desc[k * 3];
                        long dst = plan.desc[k * 3 + 1];
                        assertTrue(
                                src >= base && src + plan.desc[k * 3 + 2] <= base + chunk,
                                "descriptor inside its buffer");
                        assertEquals(0, (src ^ dst) & 15, "staging keeps the GPU side's alignment mod 16");
                        m.copy(dst, src, plan.desc[k * 3 + 2]);
                    }
                }
                assertArrayEquals(want, m.gpu, "odd=" + odd + " chunk=" + chunk);
            }
        }
    }

    @Test
    void shouldStageSavesThatLandEveryByte() {
        for (boolean odd : new boolean[] {false, true}) {
            Random random = new Random(odd ? 11 : 13);
            for (long chunk : new long[] {64 * 1024, 1 << 20}) {
                Memory m = new Memory();
                random.nextBytes(m.host);
                random.nextBytes(m.gpu);
                CopyBatch batch = randomBatch(random, 200, odd);
                byte[] want = expected(m.gpu, m.host, batch);
                long[] ring = {STAGING, STAGING + chunk};
                CopyPlan plan = new CopyPlan();
                plan.planStaged(batch, new long[] {GPU}, new long[] {HOST}, false, ring, chunk, 65_536);
                for (int c = 0; c < plan.chunkCount; c++) {
                    for (int k = plan.chunkDesc[c]; k < plan.chunkDesc[c + 1]; k++) {
                        m.copy(plan.desc[k * 3 + 1], plan.desc[k * 3], plan.desc[k * 3 + 2]);
                    }
                    for (int d = plan.chunkDma[c]; d < plan.chunkDma[c + 1]; d++) {
                        m.copy(plan.dma[d * 3], plan.dma[d * 3 + 1], plan.dma[d * 3 + 2]);
                    }
                }
                assertArrayEquals(want, m.host, "odd=" + odd + " chunk=" + chunk);
            }
        }
    }

    @Test
    void shouldRampChunksUpFromTheFirstChunkSizeAndStillLandEveryByte() {
        for (boolean load : new boolean[] {true, false}) {
            Random random = new Random(load ? 17 : 19);
            Memory m = new Memory();
            random.nextBytes(m.host);
            random.nextBytes(m.gpu);
            // 16 runs of 64 KiB = 1 MiB; chunks of 64, 128, 256 KiB, then 512 KiB (the cap), then what is left.
            CopyBatch batch = new CopyBatch(16);
            for (int i = 0; i < 16; i++) {
                batch.add((15 - i) * 65_536L, i * 65_536L, 65_536);
            }
            long chunk = 512 * 1024;
            long[] ring = {STAGING, STAGING + chunk};
            long[] host = {HOST};
            long[] gpu = {GPU};
            CopyPlan plan = new CopyPlan();
            plan.startStaged(batch, load ? host : gpu, load ? gpu : host, load, ring, 64 * 1024, chunk, 65_536);
            List<Long> sizes = new ArrayList<>();
            for (int c = 0; plan.planNextChunk(); c++) {
                long bytes = 0;
                for (int k = plan.chunkDesc[c]; k < plan.chunkDesc[c + 1]; k++) {
                    bytes += plan.desc[k * 3 + 2];
                }
                sizes.add(bytes);
            }
            assertEquals(List.of(65_536L, 131_072L, 262_144L, 524_288L, 65_536L), sizes, "load=" + load);
            byte[] want = load ? expected(m.host, m.gpu, batch) : expected(m.gpu, m.host, batch);
            for (int c = 0; c < plan.chunkCount; c++) {
                if (load) {
                    for (int d = plan.chunkDma[c]; d < plan.chunkDma[c + 1]; d++) {
                        m.copy(plan.dma[d * 3], plan.dma[d * 3 + 1], plan.dma[d * 3 + 2]);
                    }
                }
                for (int k = plan.chunkDesc[c]; k < plan.chunkDesc[c + 1]; k++) {
                    m.copy(plan.desc[k * 3 + 1], plan.desc[k * 3], plan.desc[k * 3 + 2]);
                }
                if (!load) {
                    for (int d = plan.chunkDma[c]; d < plan.chunkDma[c + 1]; d++) {
                        m.copy(plan.dma[d * 3], plan.dma[d * 3 + 1], plan.dma[d * 3 + 2]);
                    }
                }
            }
            assertArrayEquals(want, load ? m.gpu : m.host, "load=" + load);
            assertTrue(plan.descCount <= CopyPlan.descriptorBound(batch, chunk, 65_536));
        }
    }

    @Test
    void shouldMergeContiguousPoolRangesIntoFewDmas() {
        // A KV save: 16 blocks x 8 layers of 16 KiB, each block's layers contiguous in the pool.
        CopyBatch batch = new CopyBatch(128);
        for (int b = 0; b < 16; b++) {
            for (int l = 0; l < 8; l++) {
                batch.add(((long) l * 64 + b * 3) * 16384, ((long) b * 8 + l) * 16384, 16384);
            }
        }
        CopyPlan plan = new CopyPlan();
        long chunk = 512 * 1024;
        plan.planStaged(
                batch,
                new long[] {GPU},
                new long[] {HOST},
                false,
                new long[] {STAGING, STAGING + chunk},
                chunk,
                65_536);
        assertEquals(4, plan.chunkCount, "2 MiB in 512 KiB chunks");
        assertEquals(4, plan.dmaCount, "one DMA per chunk: the pool side is contiguous");
        assertEquals(128, plan.descCount);
    }

    @Test
    void shouldNeverLetAStagedDmaCrossAPinnedRegistrationBoundary() {
        // The pool is pinned chunk by chunk: a contiguous pool range across a chunk boundary is two DMAs.
        long boundary = ChunkedHostRegistration.BOUNDARY_BYTES;
        long hostBase = 3 * boundary - 100_000; // the 4 blocks of 64 KiB straddle 3 * boundary
        for (boolean save : new boolean[] {true, false}) {
            CopyBatch batch = new CopyBatch(4);
            for (int b = 0; b < 4; b++) {
                batch.add(b * 65_536L, b * 65_536L, 65_536);
            }
            CopyPlan plan = new CopyPlan();
            long chunk = 1 << 20;
            long[] host = {hostBase};
            long[] gpu = {GPU};
            plan.planStaged(batch, save ? gpu : host, save ? host : gpu, !save, new long[] {STAGING}, chunk, 1 << 20);
            long bytes = 0;
            for (int d = 0; d < plan.dmaCount; d++) {
                long hostStart = plan.dma[d * 3 + (save ? 0 : 1)];
                long len = plan.dma[d * 3 + 2];
                assertTrue(
                        hostStart / boundary == (hostStart + len - 1) / boundary,
                        "DMA [" + hostStart + ", +" + len + ") crosses a boundary");
                bytes += len;
            }
            assertEquals(4 * 65_536L, bytes);
            assertEquals(2, plan.dmaCount, "merged on either side of the boundary, split at it");
        }
    }

    @Test
    void shouldPlanNothingForAnEmptyBatch() {
        CopyPlan plan = new CopyPlan();
        plan.planStaged(
                new CopyBatch(1),
                new long[] {HOST},
                new long[] {GPU},
                true,
                new long[] {STAGING, STAGING + 65536},
                65536,
                65536);
        assertEquals(0, plan.chunkCount);
        assertEquals(0, plan.descCount);
        assertEquals(0, plan.dmaCount);
    }
}
