package io.pegaflow.bench;

import io.pegaflow.store.memory.HostMemory;
import io.pegaflow.store.pool.BlockPool;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * {@link BlockPool} in steady state on a mostly full pool: each operation allocates one block and frees one live block
 * (a random victim, as eviction would pick). The baseline does the same with a trivial {@code ArrayDeque<Long>} free
 * list of fixed offsets (one size, no checks), so the pool's cost reads as a ratio to it. The pool sits on
 * {@link HostMemory} wrapped by {@link BlockPool#wrap}, as a node's pool does (the benchmarks never touch the bytes,
 * so the kind of memory does not change the figures).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class BlockPoolBenchmark {
    static final long POOL_BYTES = 1L << 30; // 16 slabs of 64 MiB

    /** A node's pool: host memory mapped and populated in parallel, carved by the pool. */
    static BlockPool nodePool(HostMemory memory) {
        return BlockPool.wrap(memory.memory(), BlockPool.defaultSlabBytes(memory.sizeBytes()));
    }

    static final long BLOCK_BYTES = 64 << 10; // one layer's slot of a 16-token Llama-3.1-8B block
    static final long[] MIXED_BYTES = {16 << 10, 64 << 10, 2 << 20};
    static final double FILL = 0.9;
    static final int VICTIMS = 1 << 16; // pre-drawn victim indexes, cycled

    /** Random victim indexes in [0, live), drawn once so that no benchmark pays for a random generator. */
    static int[] victims(int live, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        int[] victims = new int[VICTIMS];
        for (int i = 0; i < VICTIMS; i++) {
            victims[i] = random.nextInt(live);
        }
        return victims;
    }

    @State(Scope.Thread)
    public static class OneClass {
        HostMemory memory;
        BlockPool pool;
        long[] live;
        int[] victims;
        int next;

        @Setup(Level.Trial)
        public void setUp() {
            memory = HostMemory.allocate(POOL_BYTES);
            pool = nodePool(memory);
            live = new long[(int) (pool.capacityBytes() / BLOCK_BYTES * FILL)];
            for (int i = 0; i < live.length; i++) {
                live[i] = pool.allocate(BLOCK_BYTES);
            }
            victims = victims(live.length, 1);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            pool.close();
            memory.close();
        }
    }

    @State(Scope.Thread)
    public static class Mixed {
        HostMemory memory;
        BlockPool pool;
        long[] live;
        long[] liveBytes;
        long[] wanted; // the class each operation allocates, drawn once
        int[] victims;
        int next;

        @Setup(Level.Trial)
        public void setUp() {
            memory = HostMemory.allocate(POOL_BYTES);
            pool = nodePool(memory);
            SplittableRandom random = new SplittableRandom(2);
            wanted = new long[VICTIMS];
            for (int i = 0; i < VICTIMS; i++) {
                wanted[i] = MIXED_BYTES[random.nextInt(MIXED_BYTES.length)];
            }
            long[] offsets = new long[(int) (POOL_BYTES / MIXED_BYTES[0])];
            long[] sizes = new long[offsets.length];
            int n = 0;
            for (int i = 0; pool.usedBytes() < POOL_BYTES * FILL; i++) {
                long size = wanted[i % VICTIMS];
                long offset = pool.allocate(size);
                if (offset == -1) {
                    break;
                }
                offsets[n] = offset;
                sizes[n++] = size;
            }
            live = Arrays.copyOf(offsets, n);
            liveBytes = Arrays.copyOf(sizes, n);
            victims = victims(n, 3);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            pool.close();
            memory.close();
        }
    }

    @State(Scope.Thread)
    public static class DequeBaseline {
        ArrayDeque<Long> free;
        long[] live;
        int[] victims;
        int next;

        @Setup(Level.Trial)
        public void setUp() {
            int slots = (int) (POOL_BYTES / BLOCK_BYTES);
            free = new ArrayDeque<>(slots);
            for (int i = slots - 1; i >= 0; i--) {
                free.push(i * BLOCK_BYTES);
            }
            live = new long[(int) (slots * FILL)];
            for (int i = 0; i < live.length; i++) {
                live[i] = free.pop();
            }
            victims = victims(live.length, 1);
        }
    }

    /** One size class: allocate a block, free a random live one (the pool stays 90% full). */
    @Benchmark
    public long oneClassAllocateFree(OneClass s) {
        int v = s.victims[s.next++ & (VICTIMS - 1)];
        long offset = s.pool.allocate(BLOCK_BYTES);
        s.pool.free(s.live[v]);
        s.live[v] = offset;
        return offset;
    }

    /**
     * Three size classes (16 KiB, 64 KiB, 2 MiB, drawn uniformly): allocate one of the drawn class, free a random live
     * block. When the drawn class has no room, free first and allocate the victim's class instead (always room then: the
     * victim's slot, or its slab if it emptied).
     */
    @Benchmark
    public long mixedAllocateFree(Mixed s) {
        int k = s.next++ & (VICTIMS - 1);
        int v = s.victims[k];
        long size = s.wanted[k];
        long offset = s.pool.allocate(size);
        if (offset == -1) {
            s.pool.free(s.live[v]);
            size = s.liveBytes[v];
            offset = s.pool.allocate(size);
        } else {
            s.pool.free(s.live[v]);
        }
        s.live[v] = offset;
        s.liveBytes[v] = size;
        return offset;
    }

    /** Baseline: the cycle of {@link #oneClassAllocateFree} on an {@code ArrayDeque<Long>} of fixed offsets. */
    @Benchmark
    public long dequeAllocateFree(DequeBaseline s) {
        int v = s.victims[s.next++ & (VICTIMS - 1)];
        long offset = s.free.pop();
        s.free.push(s.live[v]);
        s.live[v] = offset;
        return offset;
    }
}
