package io.pegaflow.fabric.engine;

import static io.pegaflow.fabric.engine.ShmKvCache.hash;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.gpu.HostCopyEngine;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.HashList;
import io.pegaflow.store.pool.BlockPool;
import java.lang.management.ManagementFactory;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The request checks a Save and a Query run on the caller's thread (a gRPC handler or the command channel's thread)
 * allocate per request, not per block: measured with the JVM's per-thread allocation counter around calls of a real
 * engine over a real pool and a real shared-memory KV cache. (A field name per block, built whether or not the check
 * failed, cost ~60 bytes and a number formatting per block.)
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class EngineCheckAllocationTest {
    private static final int BLOCKS = 625;

    private static long allocatedBytes(Runnable work) {
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long tid = Thread.currentThread().threadId();
        long before = threads.getThreadAllocatedBytes(tid);
        work.run();
        return threads.getThreadAllocatedBytes(tid) - before;
    }

    @Test
    void shouldCheckASealedSaveAndAQueryWithoutAllocatingPerBlock() throws Exception {
        BlockStore store = new BlockStore(BlockPool.allocateOffHeap(8 << 20), 30_000_000_000L, System::nanoTime);
        KvEngine engine = KvEngine.builder(store, new HostCopyEngine()).build();
        try (ShmKvCache cache = new ShmKvCache(1, BLOCKS, 4096, false)) {
            String ctx = KvEngineTest.await(engine.register(cache.registration("i1", "ns", 0, 1, 1, 0)))
                    .contextId();
            byte[][] raw = new byte[BLOCKS][];
            for (int i = 0; i < BLOCKS; i++) {
                raw[i] = hash("b" + i);
            }
            HashList hashes = HashList.of(raw);
            int[] ids = IntStream.range(0, BLOCKS).toArray();
            SaveBlocks save = new SaveBlocks(ctx, ids, hashes, new int[0]);
            PrefixQuery query = new PrefixQuery("ns", hashes, 0);
            assertEquals(BLOCKS, KvEngineTest.await(engine.save(save)).sealed());
            for (int warm = 0; warm < 500; warm++) { // let the JIT settle (escape analysis changes the counts)
                engine.save(save).toCompletableFuture().join();
                engine.query(query);
            }
            // All sealed: the save is answered on this thread (checks, one lookup per block, the reply).
            long saved = allocatedBytes(() -> assertEquals(
                    BLOCKS, engine.save(save).toCompletableFuture().join().skipped()));
            long queried = allocatedBytes(
                    () -> assertEquals(BLOCKS, engine.query(query).hitBlocks()));
            // The repeated-id check sorts one long per block; a few small objects per call besides.
            assertTrue(saved <= 8L * BLOCKS + 4096, "a sealed save allocated " + saved + " bytes");
            assertTrue(queried <= 4096, "a query allocated " + queried + " bytes");
        } finally {
            engine.close();
            store.pool().close();
        }
    }
}
