package io.pegaflow.gpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The behaviour every {@link CopyEngine} owes the block store, run against each implementation: the host engine in
 * CI, the CUDA engine (every copy mode) on a GPU machine. Subclasses say what plays the worker's memory (GPU memory
 * for CUDA) and the pool (pinned memory for CUDA) and how tests read and write them.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
public abstract class CopyEngineContract {
    protected abstract CopyEngine engine();

    /** Memory on the worker's side of a copy (for CUDA: device memory), contents undefined. */
    protected abstract MemorySegment workerMemory(long bytes);

    /** Memory on the pool's side (for CUDA: pinned host memory), contents undefined. */
    protected abstract MemorySegment poolMemory(long bytes);

    protected abstract void write(MemorySegment target, long offset, byte[] data);

    protected abstract byte[] read(MemorySegment source, long offset, int length);

    private final Random random = new Random(42);

    private byte[] randomBytes(int n) {
        byte[] b = new byte[n];
        random.nextBytes(b);
        return b;
    }

    private byte[] fill(MemorySegment segment) {
        byte[] data = randomBytes((int) segment.byteSize());
        write(segment, 0, data);
        return data;
    }

    /** Non-overlapping runs placed in order with gaps, lengths from {@code lengths}. */
    private CopyBatch runs(int count, long srcBytes, long dstBytes, int[] lengths, boolean unaligned) {
        CopyBatch batch = new CopyBatch(count);
        long src = unaligned ? 3 : 0;
        long dst = unaligned ? 7 : 0;
        for (int i = 0; i < count; i++) {
            int len = lengths[random.nextInt(lengths.length)] + (unaligned ? random.nextInt(15) : 0);
            if (src + len > srcBytes || dst + len > dstBytes) {
                break;
            }
            batch.add(src, dst, len);
            int gap = unaligned ? random.nextInt(40) : 16 * random.nextInt(4);
            src += len + gap + (unaligned ? 1 : 0);
            dst += len + 16 * random.nextInt(3) + (unaligned ? 5 : 0);
        }
        return batch;
    }

    private void assertCopied(byte[] srcData, byte[] dstBefore, MemorySegment dst, CopyBatch batch) {
        byte[] expected = dstBefore.clone();
        for (int i = 0; i < batch.runCount(); i++) {
            System.arraycopy(
                    srcData, (int) batch.srcOffset(i), expected, (int) batch.dstOffset(i), (int) batch.length(i));
        }
        byte[] actual = read(dst, 0, (int) dst.byteSize());
        if (!Arrays.equals(expected, actual)) {
            int at = Arrays.mismatch(expected, actual);
            throw new AssertionError(engine().name() + ": destination differs first at byte " + at);
        }
    }

    @Test
    void shouldNameItself() {
        assertFalse(engine().name().isBlank());
    }

    @Test
    void shouldCopyEveryRunToItsPlaceFromWorkerToPoolAndBack() {
        MemorySegment worker = workerMemory(4 << 20);
        MemorySegment pool = poolMemory(4 << 20);
        byte[] workerData = fill(worker);
        byte[] poolBefore = fill(pool);
        CopyBatch save = runs(300, worker.byteSize(), pool.byteSize(), new int[] {16, 4096, 32768, 65536}, false);
        engine().copy(worker, pool, save);
        assertCopied(workerData, poolBefore, pool, save);

        byte[] poolData = read(pool, 0, (int) pool.byteSize());
        byte[] workerBefore = fill(worker);
        CopyBatch load = runs(300, pool.byteSize(), worker.byteSize(), new int[] {16, 4096, 65536, 100_000}, false);
        engine().copy(pool, worker, load);
        assertCopied(poolData, workerBefore, worker, load);
    }

    @Test
    void shouldCopyRunsOfAnyAlignmentAndLength() {
        MemorySegment worker = workerMemory(1 << 20);
        MemorySegment pool = poolMemory(1 << 20);
        byte[] workerData = fill(worker);
        byte[] poolBefore = fill(pool);
        CopyBatch save = runs(200, worker.byteSize(), pool.byteSize(), new int[] {1, 3, 17, 1000, 4099}, true);
        engine().copy(worker, pool, save);
        assertCopied(workerData, poolBefore, pool, save);

        byte[] poolData = read(pool, 0, (int) pool.byteSize());
        byte[] workerBefore = fill(worker);
        CopyBatch load = runs(200, pool.byteSize(), worker.byteSize(), new int[] {2, 15, 33, 999, 8191}, true);
        engine().copy(pool, worker, load);
        assertCopied(poolData, workerBefore, worker, load);
    }

    @Test
    void shouldMoveKvBlocksBetweenPagedLayersAndContiguousPoolBlocks() {
        int layers = 8;
        int blocks = 64;
        int slot = 16 * 1024;
        MemorySegment worker = workerMemory((long) layers * blocks * slot);
        MemorySegment pool = poolMemory((long) layers * 16 * slot);
        byte[] workerData = fill(worker);
        int[] saved = {5, 9, 1, 63, 17, 40, 41, 42, 0, 2, 30, 31, 60, 11, 12, 13};
        CopyBatch save = new CopyBatch(16);
        for (int b = 0; b < saved.length; b++) {
            for (int l = 0; l < layers; l++) {
                save.add(((long) l * blocks + saved[b]) * slot, ((long) b * layers + l) * slot, slot);
            }
        }
        engine().copy(worker, pool, save);
        int[] target = {20, 21, 22, 23, 50, 51, 3, 4, 6, 7, 8, 10, 14, 15, 16, 18};
        CopyBatch load = new CopyBatch(16);
        for (int b = 0; b < target.length; b++) {
            for (int l = 0; l < layers; l++) {
                load.add(((long) b * layers + l) * slot, ((long) l * blocks + target[b]) * slot, slot);
            }
        }
        engine().copy(pool, worker, load);
        byte[] after = read(worker, 0, (int) worker.byteSize());
        for (int b = 0; b < saved.length; b++) {
            for (int l = 0; l < layers; l++) {
                int from = (l * blocks + saved[b]) * slot;
                int to = (l * blocks + target[b]) * slot;
                assertArrayEquals(
                        Arrays.copyOfRange(workerData, from, from + slot),
                        Arrays.copyOfRange(after, to, to + slot),
                        "block " + saved[b] + " layer " + l + " loaded into block " + target[b]);
            }
        }
        // Blocks not loaded into are untouched.
        for (int l = 0; l < layers; l++) {
            int untouched = (l * blocks + 63) * slot;
            assertArrayEquals(
                    Arrays.copyOfRange(workerData, untouched, untouched + slot),
                    Arrays.copyOfRange(after, untouched, untouched + slot));
        }
    }

    @Test
    void shouldGatherFromSeveralSegmentsAndScatterBackInOneBatch() {
        int regions = 5;
        int blocks = 32;
        int slot = 16 * 1024;
        MemorySegment[] workers = new MemorySegment[regions];
        byte[][] data = new byte[regions][];
        for (int r = 0; r < regions; r++) {
            workers[r] = workerMemory((long) blocks * slot);
            data[r] = fill(workers[r]);
        }
        MemorySegment pool = poolMemory((long) 8 * regions * slot);
        // A save in pool order: block b's slot from every region, contiguous in the pool.
        int[] saved = {3, 17, 0, 31, 8, 9, 10, 22};
        CopyBatch save = new CopyBatch(64);
        for (int b = 0; b < saved.length; b++) {
            for (int r = 0; r < regions; r++) {
                save.add(r, 0, (long) saved[b] * slot, ((long) b * regions + r) * slot, slot);
            }
        }
        assertEquals(saved.length * regions, save.runCount(), "runs of different parts never merge");
        engine().copy(workers, new MemorySegment[] {pool}, save);
        byte[] poolData = read(pool, 0, (int) pool.byteSize());
        for (int b = 0; b < saved.length; b++) {
            for (int r = 0; r < regions; r++) {
                int at = (b * regions + r) * slot;
                assertArrayEquals(
                        Arrays.copyOfRange(data[r], saved[b] * slot, saved[b] * slot + slot),
                        Arrays.copyOfRange(poolData, at, at + slot),
                        "block " + saved[b] + " region " + r);
            }
        }
        int[] target = {1, 2, 4, 5, 6, 7, 11, 12};
        CopyBatch load = new CopyBatch(64);
        for (int b = 0; b < target.length; b++) {
            for (int r = 0; r < regions; r++) {
                load.add(0, r, ((long) b * regions + r) * slot, (long) target[b] * slot, slot);
            }
        }
        engine().copy(new MemorySegment[] {pool}, workers, load);
        for (int r = 0; r < regions; r++) {
            byte[] after = read(workers[r], 0, (int) workers[r].byteSize());
            for (int b = 0; b < target.length; b++) {
                assertArrayEquals(
                        Arrays.copyOfRange(data[r], saved[b] * slot, saved[b] * slot + slot),
                        Arrays.copyOfRange(after, target[b] * slot, target[b] * slot + slot),
                        "region " + r + " block " + saved[b] + " loaded into " + target[b]);
            }
            assertArrayEquals(
                    Arrays.copyOfRange(data[r], 30 * slot, 31 * slot), Arrays.copyOfRange(after, 30 * slot, 31 * slot));
        }
    }

    @Test
    void shouldRejectARunWhosePartHasNoSegment() {
        MemorySegment worker = workerMemory(4096);
        MemorySegment pool = poolMemory(4096);
        byte[] poolBefore = fill(pool);
        CopyBatch batch = new CopyBatch(2);
        batch.add(0, 0, 0, 0, 16);
        batch.add(1, 0, 0, 16, 16);
        assertThrows(
                IndexOutOfBoundsException.class,
                () -> engine().copy(new MemorySegment[] {worker}, new MemorySegment[] {pool}, batch));
        assertArrayEquals(poolBefore, read(pool, 0, 4096));
    }

    @Test
    void shouldCopyOneLargeRun() {
        int bytes = 24 << 20;
        MemorySegment worker = workerMemory(bytes);
        MemorySegment pool = poolMemory(bytes);
        byte[] workerData = fill(worker);
        CopyBatch batch = new CopyBatch(1);
        batch.add(0, 0, bytes);
        engine().copy(worker, pool, batch);
        assertArrayEquals(workerData, read(pool, 0, bytes));
    }

    @Test
    void shouldRejectARunOutsideEitherSegmentAndCopyNothing() {
        MemorySegment worker = workerMemory(1 << 16);
        MemorySegment pool = poolMemory(1 << 16);
        fill(worker);
        byte[] poolBefore = fill(pool);
        CopyBatch batch = new CopyBatch(2);
        batch.add(0, 0, 4096);
        batch.add(8192, (1 << 16) - 100, 4096);
        assertThrows(IndexOutOfBoundsException.class, () -> engine().copy(worker, pool, batch));
        assertArrayEquals(poolBefore, read(pool, 0, 1 << 16));
        CopyBatch source = new CopyBatch(1);
        source.add((1 << 16) - 10, 0, 4096);
        assertThrows(IndexOutOfBoundsException.class, () -> engine().copy(worker, pool, source));
        assertArrayEquals(poolBefore, read(pool, 0, 1 << 16));
    }

    @Test
    void shouldDoNothingForAnEmptyBatch() {
        MemorySegment worker = workerMemory(4096);
        MemorySegment pool = poolMemory(4096);
        byte[] poolBefore = fill(pool);
        engine().copy(worker, pool, new CopyBatch(1));
        assertArrayEquals(poolBefore, read(pool, 0, 4096));
    }

    @Test
    void shouldServeConcurrentCopiesFromSeveralThreads() throws Exception {
        int threads = 4;
        int slice = 1 << 20;
        MemorySegment worker = workerMemory((long) threads * slice);
        MemorySegment pool = poolMemory((long) threads * slice);
        byte[] workerData = fill(worker);
        ExecutorService executor = Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                long base = (long) t * slice;
                futures.add(executor.submit(() -> {
                    CopyBatch batch = new CopyBatch(64);
                    for (int round = 0; round < 10; round++) {
                        batch.clear();
                        for (int r = 0; r < 16; r++) {
                            long off = base + (long) ((r * 7 + round) % 16) * (slice / 16);
                            batch.add(off, off, slice / 16);
                        }
                        engine().copy(worker, pool, batch);
                    }
                }));
            }
            for (Future<?> f : futures) {
                f.get(60, TimeUnit.SECONDS);
            }
        } finally {
            executor.shutdownNow();
        }
        assertArrayEquals(workerData, read(pool, 0, threads * slice));
    }

    @Test
    void shouldMergeAdjacentRunsWithoutChangingTheResult() {
        MemorySegment worker = workerMemory(1 << 20);
        MemorySegment pool = poolMemory(1 << 20);
        byte[] workerData = fill(worker);
        CopyBatch batch = new CopyBatch(4);
        for (int i = 0; i < 256; i++) {
            batch.add(i * 4096L, i * 4096L, 4096);
        }
        assertEquals(1, batch.runCount());
        engine().copy(worker, pool, batch);
        assertArrayEquals(workerData, read(pool, 0, 1 << 20));
    }
}
