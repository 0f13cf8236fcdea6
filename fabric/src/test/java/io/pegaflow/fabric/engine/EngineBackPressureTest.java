package io.pegaflow.fabric.engine;

import static io.pegaflow.fabric.engine.EngineFixture.hashes;
import static io.pegaflow.fabric.engine.EngineFixture.ids;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.store.BlockStore;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The engine's bounded executors when they are saturated: a full queue refuses with RESOURCE_EXHAUSTED naming the
 * queue, counts the refusal and leaves the store and the mappings as they were; unmappings are never dropped.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class EngineBackPressureTest {
    private EngineFixture fx;

    @AfterEach
    void cleanUp() throws Exception {
        if (fx != null) {
            fx.files.gate = null;
            fx.files.closeGate = null;
            fx.close();
        }
    }

    private long[] snapshot() {
        BlockStore s = fx.store;
        return new long[] {
            s.sealedBlocks(),
            s.inFlightBlocks(),
            s.activeLeases(),
            s.pool().usedBytes(),
            s.counters().insertions(),
            s.counters().evictions()
        };
    }

    private static EngineException refusal(CompletableFuture<?> stage) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> stage.get(10, TimeUnit.SECONDS));
        EngineException refused = EngineException.unwrap(e);
        if (refused == null) {
            throw new AssertionError("expected an EngineException, got " + e.getCause(), e);
        }
        return refused;
    }

    @Test
    void shouldRefuseASaveWhenTheCopyQueueIsFullAndLeaveTheStoreUnchanged() throws Exception {
        fx = new EngineFixture(64L << 20, EngineSettings.defaults().withCopy(1, 1), RemoteBlockSource.NONE);
        ShmKvCache cache = fx.cache(2, 64);
        String ctx = fx.register(cache.registration("i1", "ns", 0, 1, 2, 0));
        fx.copies.gated = true;
        CompletableFuture<SaveResult> running = fx.engine
                .save(new SaveBlocks(ctx, ids(0, 2), hashes("a", 2), new int[0]))
                .toCompletableFuture();
        assertTrue(fx.copies.entered.await(10, TimeUnit.SECONDS), "the first save holds the only copy thread");
        CompletableFuture<SaveResult> queued = fx.engine
                .save(new SaveBlocks(ctx, ids(2, 2), hashes("b", 2), new int[0]))
                .toCompletableFuture();
        assertEquals(1, fx.engine.executorLoads().get(0).queued(), "the second waits in the copy queue of 1");
        long[] before = snapshot();

        EngineException e = refusal(fx.engine
                .save(new SaveBlocks(ctx, ids(4, 2), hashes("c", 2), new int[0]))
                .toCompletableFuture());

        assertEquals(EngineException.Code.RESOURCE_EXHAUSTED, e.code());
        assertTrue(
                e.getMessage().startsWith("the copy queue is full (1 tasks waiting for 1 pegaflow-copy threads)"),
                e.getMessage());
        assertTrue(e.getMessage().contains("save refused; retry later"), e.getMessage());
        assertArrayEquals(before, snapshot(), "a refused save reserved nothing");
        assertEquals(List.of("save/queue_full"), fx.listener.rejected);
        assertFalse(running.isDone());

        fx.copies.release.countDown();
        assertEquals(new SaveResult(2, 0, 2), running.get(10, TimeUnit.SECONDS));
        assertEquals(new SaveResult(2, 0, 2), queued.get(10, TimeUnit.SECONDS));
        assertFalse(fx.store.isSealed("ns", ShmKvCache.hash("c0")));
        assertEquals(new SaveResult(2, 0, 2), fx.save(ctx, ids(4, 2), hashes("c", 2)), "accepted once there is room");
    }

    @Test
    void shouldRefuseARegistrationWhenTheMappingQueueIsFullAndMapNothing() throws Exception {
        fx = new EngineFixture(64L << 20, EngineSettings.defaults().withMapping(1, 1), RemoteBlockSource.NONE);
        ShmKvCache c1 = fx.cache(2, 16);
        ShmKvCache c2 = fx.cache(2, 16);
        ShmKvCache c3 = fx.cache(2, 16);
        CountDownLatch gate = new CountDownLatch(1);
        fx.files.gate = gate;
        var first = fx.engine.register(c1.registration("i1", "ns", 0, 1, 2, 0)).toCompletableFuture();
        assertTrue(fx.files.entered.await(10, TimeUnit.SECONDS), "the first registration holds the mapping thread");
        var second = fx.engine.register(c2.registration("i2", "ns", 0, 1, 2, 0)).toCompletableFuture();

        EngineException e = refusal(
                fx.engine.register(c3.registration("i3", "ns", 0, 1, 2, 0)).toCompletableFuture());

        assertEquals(EngineException.Code.RESOURCE_EXHAUSTED, e.code());
        assertTrue(e.getMessage().startsWith("the mapping queue is full"), e.getMessage());
        assertTrue(e.getMessage().contains("register refused"), e.getMessage());
        assertEquals(List.of("register/queue_full"), fx.listener.rejected);
        gate.countDown();
        first.get(10, TimeUnit.SECONDS);
        second.get(10, TimeUnit.SECONDS);
        assertEquals(2, fx.engine.contextCount());
        assertEquals(0, fx.files.mapped(c3.path), "the refused registration mapped nothing");
    }

    @Test
    void shouldPutOffUnmappingWhenTheCleanupQueueIsFullAndStillUnmapEveryContext() throws Exception {
        fx = new EngineFixture(64L << 20, EngineSettings.defaults().withCleanup(1, 1), RemoteBlockSource.NONE);
        ShmKvCache[] caches = {fx.cache(2, 16), fx.cache(2, 16), fx.cache(2, 16)};
        String[] ids = new String[3];
        for (int i = 0; i < 3; i++) {
            ids[i] = fx.register(caches[i].registration("i" + i, "ns", 0, 1, 2, 0));
        }
        CountDownLatch gate = new CountDownLatch(1);
        fx.files.closeGate = gate;
        List<CompletableFuture<Boolean>> gone = new java.util.ArrayList<>();
        gone.add(fx.engine.unregister(ids[0], "test").toCompletableFuture());
        assertTrue(fx.files.closeEntered.await(10, TimeUnit.SECONDS), "the first unmapping holds the cleanup thread");
        gone.add(fx.engine.unregister(ids[1], "test").toCompletableFuture());
        gone.add(fx.engine.unregister(ids[2], "test").toCompletableFuture());

        assertEquals(0, fx.engine.contextCount(), "the contexts are gone at once");
        assertEquals(List.of("unmap/deferred"), fx.listener.rejected, "the third waits on the retry list");
        assertFalse(gone.get(2).isDone());
        gate.countDown();
        for (CompletableFuture<Boolean> g : gone) {
            assertTrue(g.get(10, TimeUnit.SECONDS));
        }
        for (ShmKvCache cache : caches) {
            assertEquals(1, fx.files.unmapped(cache.path), "each context unmapped once");
        }
    }
}
