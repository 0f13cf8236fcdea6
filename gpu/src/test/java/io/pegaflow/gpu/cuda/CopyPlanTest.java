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

    private static final long B = ChunkedHostRegistration.BOUNDARY_BYTES;

    /** The plan's DMA ranges as {dst, src, length} rows. */
    private static List<long[]> ranges(CopyPlan plan) {
        List<long[]> out = new ArrayList<>();
        for (int d = 0; d < plan.dmaCount; d++) {
            out.add(new long[] {plan.dma[d * 3], plan.dma[d * 3 + 1], plan.dma[d * 3 + 2]});
        }
        return out;
    }

    @Test
    void shouldCutADmaRunWhereItsHostSideCrossesARegistrationBoundary() {
        CopyPlan plan = new CopyPlan();
        CopyBatch save = new CopyBatch(1);
        long gpu = 0x7f00_0000_0000L;
        long pool = 4 * B; // a pool that starts at a boundary
        save.add(0, B - (1 << 19), 1 << 20); // the failing H200 test's run: 512 KiB either side of the boundary
        plan.planDma(save, new long[] {gpu}, false, new long[] {pool}, true);
        assertEquals(2, plan.dmaCount);
        assertArrayEquals(
                new long[] {pool + B - (1 << 19), gpu, 1 << 19}, ranges(plan).get(0));
        assertArrayEquals(
                new long[] {pool + B, gpu + (1 << 19), 1 << 19}, ranges(plan).get(1));
        assertEquals(1 << 20, plan.dmaBytes);

        // A load, the host side being the source; 600 MiB spans three registrations.
        CopyBatch load = new CopyBatch(1);
        load.add(B - 4096, 0, 600L << 20);
        plan.planDma(load, new long[] {pool}, true, new long[] {gpu}, false);
        List<long[]> r = ranges(plan);
        assertEquals(4, r.size());
        assertArrayEquals(new long[] {gpu, pool + B - 4096, 4096}, r.get(0));
        assertArrayEquals(new long[] {gpu + 4096, pool + B, B}, r.get(1));
        assertArrayEquals(new long[] {gpu + 4096 + B, pool + 2 * B, B}, r.get(2));
        assertEquals((600L << 20) - 4096 - 2 * B, r.get(3)[2]);
        assertEquals(pool + 3 * B, r.get(3)[1]);
    }

    @Test
    void shouldNeverCutADeviceSideRangeAndCutAtEitherHostSidesBoundary() {
        CopyPlan plan = new CopyPlan();
        CopyBatch batch = new CopyBatch(1);
        batch.add(B - 100, 0, 1000);
        plan.planDma(batch, new long[] {0}, false, new long[] {0}, false);
        assertEquals(1, plan.dmaCount, "device to device: nothing to cut");
        // Host to host with the two sides' boundaries at different places: cut at each.
        CopyBatch both = new CopyBatch(1);
        both.add(B - 100, B - 300, 1000);
        plan.planDma(both, new long[] {0}, true, new long[] {0}, true);
        List<long[]> r = ranges(plan);
        assertEquals(3, r.size());
        assertEquals(List.of(100L, 200L, 700L), r.stream().map(x -> x[2]).toList());
    }

    @Test
    void shouldMergeRunsContiguousOnBothSidesButNotAcrossABoundary() {
        CopyPlan plan = new CopyPlan();
        long gpu = 0x7f00_0000_0000L;
        // Four 64 KiB runs contiguous on both sides (a group layout's adjacent blocks): one range.
        CopyBatch adjacent = new CopyBatch(4);
        for (int i = 0; i < 4; i++) {
            adjacent.add(i * 65_536L, B - 2 * 65_536 + i * 65_536L, 65_536);
        }
        plan.planDma(adjacent, new long[] {gpu}, false, new long[] {0}, true);
        // ... but the boundary after run 1 stays a cut.
        assertEquals(2, plan.dmaCount);
        assertArrayEquals(
                new long[] {B - 2 * 65_536, gpu, 2 * 65_536}, ranges(plan).get(0));
        assertArrayEquals(
                new long[] {B, gpu + 2 * 65_536, 2 * 65_536}, ranges(plan).get(1));
        // Contiguous in the pool, strided on the GPU (layer runs of one block): one range per run.
        CopyBatch strided = new CopyBatch(4);
        for (int i = 0; i < 4; i++) {
            strided.add(i * 2 * 65_536L, i * 65_536L, 65_536);
        }
        plan.planDma(strided, new long[] {gpu}, false, new long[] {0}, true);
        assertEquals(4, plan.dmaCount);
    }

    @Test
    void shouldCoverEveryByteOfRandomBatchesInOrderWithNoHostRangeAcrossABoundary() {
        Random random = new Random(7);
        CopyPlan plan = new CopyPlan();
        for (int trial = 0; trial < 200; trial++) {
            boolean hostIsDst = random.nextBoolean();
            CopyBatch batch = new CopyBatch(8);
            long host = B - random.nextInt(1 << 22);
            long gpu = 0;
            for (int i = 0; i < 1 + random.nextInt(40); i++) {
                long len = 1 + random.nextInt(1 << 19);
                if (hostIsDst) {
                    batch.add(gpu, host, len);
                } else {
                    batch.add(host, gpu, len);
                }
                host += len + (random.nextBoolean() ? 0 : random.nextInt(4096));
                gpu += len + (random.nextBoolean() ? 0 : random.nextInt(4096));
            }
            plan.planDma(batch, new long[] {0}, !hostIsDst, new long[] {0}, hostIsDst);
            // Replay: the ranges, in order, are exactly the runs' bytes.
            int d = 0;
            long done = 0;
            long total = 0;
            for (int i = 0; i < batch.runCount(); i++) {
                for (long off = 0; off < batch.length(i); ) {
                    long[] r = ranges(plan).get(d);
                    long h = hostIsDst ? r[0] : r[1];
                    assertEquals(h & -B, (h + r[2] - 1) & -B, "trial " + trial + ": range " + d + " crosses");
                    assertEquals(batch.srcOffset(i) + off, r[1] + done);
                    assertEquals(batch.dstOffset(i) + off, r[0] + done);
                    long take = Math.min(r[2] - done, batch.length(i) - off);
                    off += take;
                    done += take;
                    if (done == r[2]) {
                        d++;
                        done = 0;
                    }
                }
                total += batch.length(i);
            }
            assertEquals(plan.dmaCount, d, "trial " + trial + ": every range used");
            assertEquals(total, plan.dmaBytes);
        }
    }
}
