package io.pegaflow.bench;

import io.pegaflow.store.BlockStore;
import io.pegaflow.store.NamespaceLayout;
import io.pegaflow.store.QueryResult;
import io.pegaflow.store.pool.BlockPool;
import java.nio.ByteBuffer;
import java.util.HashMap;
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
 * The block index ({@link BlockStore}) operations behind the Engine RPCs, on a store holding 100,000 sealed blocks:
 * a 1,000-block prefix {@code Query} (what a vLLM scheduler asks per request), the bookkeeping of a 16-block
 * {@code Save} on a full pool (reserve with LRU eviction, then seal), and pinning 16 blocks for a {@code Load}. The
 * baseline is 1,000 lookups of the same 32-byte keys in a plain {@code HashMap<ByteBuffer, Object>}, so the query
 * reads as a ratio to the cheapest possible index. Two more: the same query taking a lease (and releasing it), and the
 * save bookkeeping when the 50,000 least recently used blocks are leased (eviction must get past them to the first
 * evictable block).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class BlockStoreBenchmark {
    static final int BLOCKS = 100_000;
    static final int PREFIX = 1_000;
    static final int SAVE_BATCH = 16;
    static final int SAVE_BATCHES = 8192; // 131,072 new hashes: more than the 100,000 blocks the pool holds
    // A tiny namespace layout (1 layer, 1 rank, 4 KiB) keeps 100k blocks in a 400 MiB pool; index cost does not
    // depend on the block size.
    static final NamespaceLayout LAYOUT = new NamespaceLayout("bench", 1, 1, 4096);

    @State(Scope.Thread)
    public static class Store {
        BlockStore store;
        byte[][] all;
        byte[][] prefix;
        HashMap<ByteBuffer, Object> plainIndex;
        ByteBuffer[] plainKeys;
        int[] slots = {0};
        int[] saveIds = new int[SAVE_BATCH];
        byte[][][] saveBatches;
        int nextBatch;

        @Setup(Level.Trial)
        public void setUp() {
            store = new BlockStore(BlockPool.allocateOffHeap((long) BLOCKS * 4096), Long.MAX_VALUE, System::nanoTime);
            SplittableRandom random = new SplittableRandom(42);
            all = new byte[BLOCKS][];
            for (int i = 0; i < BLOCKS; i += SAVE_BATCH) {
                byte[][] batch = new byte[SAVE_BATCH][];
                for (int j = 0; j < SAVE_BATCH; j++) {
                    batch[j] = hash(random);
                    all[i + j] = batch[j];
                }
                seal(batch);
            }
            prefix = java.util.Arrays.copyOfRange(all, BLOCKS - PREFIX, BLOCKS);
            plainIndex = new HashMap<>();
            plainKeys = new ByteBuffer[PREFIX];
            for (byte[] h : all) {
                plainIndex.put(ByteBuffer.wrap(h), Boolean.TRUE);
            }
            for (int i = 0; i < PREFIX; i++) {
                plainKeys[i] = ByteBuffer.wrap(prefix[i].clone());
            }
            // New hashes for the save benchmark, drawn up front; each save evicts the 16 least recently used blocks.
            // More batches than the pool holds blocks, so that a batch comes round again only after it was evicted
            // (with fewer, a repeated batch would still be sealed and its save would skip it without evicting).
            saveBatches = new byte[SAVE_BATCHES][SAVE_BATCH][];
            for (byte[][] batch : saveBatches) {
                for (int j = 0; j < SAVE_BATCH; j++) {
                    batch[j] = hash(random);
                }
            }
            prepare();
        }

        /** What a subclass adds once the store is full (one setup method: JMH's order across a hierarchy is not ours). */
        void prepare() {}

        void seal(byte[][] hashes) {
            store.completeSave(store.reserveForSave(LAYOUT, saveIds, hashes, slots), true);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            store.pool().close();
        }
    }

    /** {@link Store} with the older half of its blocks held by one lease, so that they cannot be evicted. */
    @State(Scope.Thread)
    public static class HalfLeased extends Store {
        @Override
        void prepare() {
            byte[][] older = java.util.Arrays.copyOf(all, BLOCKS / 2); // sealed first: the least recently used
            if (store.query("bench", older, 600_000).hitCount() != older.length) {
                throw new IllegalStateException("the older half is not all sealed");
            }
        }
    }

    static byte[] hash(SplittableRandom random) {
        byte[] h = new byte[32];
        for (int i = 0; i < 32; i += 8) {
            long v = random.nextLong();
            for (int b = 0; b < 8; b++) {
                h[i + b] = (byte) (v >>> (8 * b));
            }
        }
        return h;
    }

    @Benchmark
    public int queryPrefix1000(Store s) {
        return s.store.query("bench", s.prefix, 0).hitCount();
    }

    @Benchmark
    public int queryPrefix1000WithLease(Store s) {
        QueryResult r = s.store.query("bench", s.prefix, 60_000);
        s.store.release(r.leaseId(), "bench");
        return r.hitCount();
    }

    @Benchmark
    public int plainHashMapLookups1000(Store s) {
        int hits = 0;
        for (ByteBuffer key : s.plainKeys) {
            if (s.plainIndex.get(key) != null) {
                hits++;
            }
        }
        return hits;
    }

    @Benchmark
    public int saveBookkeeping16WithEviction(Store s) {
        byte[][] batch = s.saveBatches[s.nextBatch++ & (SAVE_BATCHES - 1)];
        return s.store.completeSave(s.store.reserveForSave(LAYOUT, s.saveIds, batch, s.slots), true);
    }

    @Benchmark
    public int saveBookkeeping16WithEvictionPastLeasedBlocks(HalfLeased s) {
        return saveBookkeeping16WithEviction(s);
    }

    @Benchmark
    public int pinAndUnpin16ForLoad(Store s) {
        byte[][] hashes = java.util.Arrays.copyOf(s.prefix, SAVE_BATCH);
        var entries = s.store.pinForLoad("bench", hashes, 0);
        s.store.unpinAll(entries);
        return hashes.length;
    }
}
