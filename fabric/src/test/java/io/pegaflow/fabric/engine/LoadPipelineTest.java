package io.pegaflow.fabric.engine;

import static io.pegaflow.fabric.engine.EngineFixture.hashes;
import static io.pegaflow.fabric.engine.EngineFixture.ids;
import static io.pegaflow.fabric.engine.ShmKvCache.hash;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.store.BlockEntry;
import io.pegaflow.store.IncomingBlock;
import io.pegaflow.store.NamespaceLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The load pipeline stage by stage (flag, pin, remote, copy, flag) against a real pool and real shared-memory files;
 * the remote stage is a test {@link RemoteBlockSource} (the directory and transports come with [9 of 12]).
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class LoadPipelineTest {
    private EngineFixture fx;

    /** Holds the remote stage until the test completes it; records what it was asked and what it saw then. */
    static final class HeldRemote implements RemoteBlockSource {
        final List<byte[][]> asked = new CopyOnWriteArrayList<>();
        final CompletableFuture<BlockEntry[]> answer = new CompletableFuture<>();
        volatile Runnable onCall = () -> {};

        @Override
        public CompletionStage<BlockEntry[]> fetchMissing(NamespaceLayout layout, byte[][] hashes) {
            asked.add(hashes);
            onCall.run();
            return answer;
        }
    }

    private EngineFixture fixture(long poolBytes, EngineSettings settings, RemoteBlockSource remote) throws Exception {
        fx = new EngineFixture(poolBytes, settings, remote);
        return fx;
    }

    @AfterEach
    void cleanUp() throws Exception {
        if (fx != null) {
            fx.close();
        }
    }

    @Test
    void shouldPinThenAskTheRemoteStageThenCopyThenSetTheFlag() throws Exception {
        HeldRemote remote = new HeldRemote();
        fixture(64L << 20, EngineSettings.defaults(), remote);
        ShmKvCache cache = fx.cache(2, 64);
        String ctx = fx.register(cache.registration("i1", "ns", 0, 1, 2, 0));
        byte[][] data0 = cache.fillRandom(0, 1);
        byte[][] data1 = cache.fillRandom(1, 2);
        fx.save(ctx, ids(0, 2), hashes("h", 2));
        int copiesAfterSave = fx.copies.calls.get();
        long[] seenWhenAsked = new long[2];
        remote.onCall = () -> {
            seenWhenAsked[0] = fx.flagState(0);
            seenWhenAsked[1] = fx.copies.calls.get();
        };

        CompletableFuture<LoadStarted> reply = fx.load(ctx, ids(20, 3), hashes("h", 3), 0);

        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (remote.asked.isEmpty() && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        assertEquals(1, remote.asked.size(), "the remote stage is asked once");
        assertArrayEquals(hash("h2"), remote.asked.get(0)[0], "for the block the local store lacks");
        assertEquals(1, remote.asked.get(0).length);
        assertEquals(LoadFlagWriter.PENDING, seenWhenAsked[0], "the flag was set pending before");
        assertEquals(copiesAfterSave, seenWhenAsked[1], "no copy before the remote stage");
        Thread.sleep(100);
        assertFalse(reply.isDone(), "the reply waits for the remote stage");
        assertEquals(copiesAfterSave, fx.copies.calls.get(), "the remote stage holds the copy back");
        assertEquals(LoadFlagWriter.PENDING, fx.flagState(0));

        remote.answer.complete(new BlockEntry[1]); // fetched nothing
        LoadStarted started = reply.get(10, TimeUnit.SECONDS);
        assertArrayEquals(new int[] {22}, started.failedBlockIds());
        assertEquals(2, started.scheduled());
        assertArrayEquals(new long[] {LoadFlagWriter.FAILED, 2, 1}, fx.awaitFlag(0));
        assertArrayEquals(data0[1], cache.read(1, 20));
        assertArrayEquals(data1[0], cache.read(0, 21));
        assertEquals(0, fx.pinnedAfterClearing("ns"), "the load unpinned its blocks");
    }

    @Test
    void shouldHoldTheLocalBlocksPinnedWhileTheRemoteStageRuns() throws Exception {
        HeldRemote remote = new HeldRemote();
        fixture(64L << 20, EngineSettings.defaults(), remote);
        ShmKvCache cache = fx.cache(2, 64);
        String ctx = fx.register(cache.registration("i1", "ns", 0, 1, 2, 0));
        fx.save(ctx, ids(0, 2), hashes("h", 2));
        int[] pinnedWhenAsked = new int[1];
        remote.onCall = () -> pinnedWhenAsked[0] = fx.pinnedAfterClearing("ns");
        CompletableFuture<LoadStarted> reply = fx.load(ctx, ids(20, 3), hashes("h", 3), 0);
        remote.answer.complete(new BlockEntry[1]);
        reply.get(10, TimeUnit.SECONDS);
        fx.awaitFlag(0);
        assertEquals(2, pinnedWhenAsked[0], "both local blocks were pinned when the remote stage ran");
    }

    @Test
    void shouldLoadABlockTheRemoteStageFetched() throws Exception {
        // What [9 of 12]'s fetch will do: reserve an incoming block, write its bytes, commit, pin it for the load.
        byte[][] remoteBytes = new byte[2][EngineFixture.BLOCK];
        new Random(9).nextBytes(remoteBytes[0]);
        new Random(10).nextBytes(remoteBytes[1]);
        EngineFixture[] self = new EngineFixture[1];
        RemoteBlockSource fetchOne = (asked, hashes) -> {
            BlockEntry[] fetched = new BlockEntry[hashes.length];
            String namespace = asked.namespace();
            NamespaceLayout layout = new NamespaceLayout(namespace, 2, 1, EngineFixture.BLOCK);
            IncomingBlock incoming =
                    self[0].store.reserveIncoming(layout, hashes[0]).orElseThrow();
            MemorySegment pool = self[0].store.pool().memory();
            for (int l = 0; l < 2; l++) {
                MemorySegment.copy(
                        remoteBytes[l],
                        0,
                        pool,
                        ValueLayout.JAVA_BYTE,
                        incoming.descriptor().poolOffset() + layout.slotOffset(l, 0),
                        EngineFixture.BLOCK);
            }
            self[0].store.commitIncoming(incoming);
            fetched[0] = self[0].store.pinForLoad(namespace, new byte[][] {hashes[0]}, 0)[0];
            return CompletableFuture.supplyAsync(() -> fetched); // completes on another thread, as a transfer would
        };
        self[0] = fixture(64L << 20, EngineSettings.defaults(), fetchOne);
        ShmKvCache cache = fx.cache(2, 64);
        String ctx = fx.register(cache.registration("i1", "ns", 0, 1, 2, 0));
        byte[][] local = cache.fillRandom(0, 3);
        fx.save(ctx, ids(0, 1), hashes("h", 1));

        LoadStarted started = fx.load(ctx, ids(30, 2), hashes("h", 2), 1).get(10, TimeUnit.SECONDS);

        assertArrayEquals(new int[0], started.failedBlockIds(), "the fetched block is not reported missing");
        assertEquals(2, started.scheduled());
        assertArrayEquals(new long[] {LoadFlagWriter.DONE, 2, 0}, fx.awaitFlag(1));
        assertArrayEquals(local[0], cache.read(0, 30));
        assertArrayEquals(remoteBytes[0], cache.read(0, 31));
        assertArrayEquals(remoteBytes[1], cache.read(1, 31));
        assertEquals(0, fx.pinnedAfterClearing("ns"), "the fetched block is unpinned with the local one");
    }

    @Test
    void shouldSetTheFlagFailedAndUnpinWhenTheRemoteStageFails() throws Exception {
        HeldRemote remote = new HeldRemote();
        fixture(64L << 20, EngineSettings.defaults(), remote);
        ShmKvCache cache = fx.cache(2, 64);
        String ctx = fx.register(cache.registration("i1", "ns", 0, 1, 2, 0));
        fx.save(ctx, ids(0, 2), hashes("h", 2));
        CompletableFuture<LoadStarted> reply = fx.load(ctx, ids(20, 3), hashes("h", 3), 2);
        remote.answer.completeExceptionally(new IllegalStateException("holder n2 went away"));

        ExecutionException failed = org.junit.jupiter.api.Assertions.assertThrows(
                ExecutionException.class, () -> reply.get(10, TimeUnit.SECONDS));
        assertTrue(String.valueOf(failed.getCause()).contains("holder n2 went away"), String.valueOf(failed));
        assertArrayEquals(new long[] {LoadFlagWriter.FAILED, 0, 3}, fx.awaitFlag(2));
        assertEquals(0, fx.pinnedAfterClearing("ns"), "nothing stays pinned");
        assertEquals(1, fx.copies.calls.get(), "the save's one batch only: no load copy ran");
    }

    @Test
    void shouldSetTheFlagFailedAndUnpinWhenTheCopyFails() throws Exception {
        fixture(64L << 20, EngineSettings.defaults(), RemoteBlockSource.NONE);
        ShmKvCache cache = fx.cache(2, 64);
        String ctx = fx.register(cache.registration("i1", "ns", 0, 1, 2, 0));
        fx.save(ctx, ids(0, 2), hashes("h", 2));
        fx.copies.failure = new IllegalStateException("cuMemcpyAsync failed: CUDA_ERROR_ILLEGAL_ADDRESS");

        LoadStarted started = fx.load(ctx, ids(20, 2), hashes("h", 2), 3).get(10, TimeUnit.SECONDS);

        assertEquals(2, started.scheduled(), "the reply left before the copy ran");
        assertArrayEquals(new long[] {LoadFlagWriter.FAILED, 0, 2}, fx.awaitFlag(3));
        assertEquals(0, fx.pinnedAfterClearing("ns"));
    }

    @Test
    void shouldReportMissingBlocksWithoutCopyingWhenNoneIsPresent() throws Exception {
        fixture(64L << 20, EngineSettings.defaults(), RemoteBlockSource.NONE);
        ShmKvCache cache = fx.cache(2, 64);
        String ctx = fx.register(cache.registration("i1", "ns", 0, 1, 2, 0));
        LoadStarted started = fx.load(ctx, ids(40, 2), hashes("none", 2), 4).get(10, TimeUnit.SECONDS);
        assertArrayEquals(new int[] {40, 41}, started.failedBlockIds());
        assertEquals(0, started.scheduled());
        assertArrayEquals(new long[] {LoadFlagWriter.FAILED, 0, 2}, fx.awaitFlag(4));
        assertEquals(0, fx.copies.calls.get());
    }

    @Test
    void shouldMapAFlagFileOncePerContextAndUnmapItWhenTheContextGoes() throws Exception {
        fixture(64L << 20, EngineSettings.defaults(), RemoteBlockSource.NONE);
        ShmKvCache cache = fx.cache(2, 64);
        String ctx = fx.register(cache.registration("i1", "ns", 0, 1, 2, 0));
        fx.save(ctx, ids(0, 4), hashes("h", 4));
        for (int round = 0; round < 40; round++) {
            int slot = round % 64;
            LoadStarted started = fx.load(ctx, ids(10, 4), hashes("h", 4), slot).get(10, TimeUnit.SECONDS);
            assertEquals(4, started.scheduled());
            assertArrayEquals(new long[] {LoadFlagWriter.DONE, 4, 0}, fx.awaitFlag(slot));
        }
        assertEquals(1, fx.files.mapped(fx.flagPath), "40 Loads, one mapping of their flag file");
        assertEquals(1, fx.files.mapped(cache.path), "the KV cache file, once for both layers");
        assertEquals(0, fx.files.unmapped(fx.flagPath));

        // A second context of the same worker's file keeps its own mapping; the first one's goes with it.
        ShmKvCache other = fx.cache(2, 64);
        String ctx2 = fx.register(other.registration("i2", "ns", 0, 1, 2, 0));
        fx.load(ctx2, ids(0, 1), hashes("h", 1), 0).get(10, TimeUnit.SECONDS);
        fx.awaitFlag(0);
        assertEquals(2, fx.files.mapped(fx.flagPath), "one mapping per context");

        assertTrue(KvEngineTest.await(fx.engine.unregister(ctx, "test")));
        assertEquals(1, fx.files.unmapped(fx.flagPath), "unmapped with the first context");
        assertEquals(1, fx.files.unmapped(cache.path));
        assertTrue(KvEngineTest.await(fx.engine.unregister(ctx2, "test")));
        assertEquals(2, fx.files.unmapped(fx.flagPath));
    }

    @Test
    void shouldRefuseALoadWhenTheCopyQueueIsFullAndLeaveNothingPinned() throws Exception {
        fixture(64L << 20, EngineSettings.defaults().withCopy(1, 1), RemoteBlockSource.NONE);
        ShmKvCache a = fx.cache(2, 64);
        ShmKvCache b = fx.cache(2, 64);
        String ca = fx.register(a.registration("ia", "a", 0, 1, 2, 0));
        String cb = fx.register(b.registration("ib", "b", 0, 1, 2, 0));
        fx.save(ca, ids(0, 4), hashes("a", 4));
        fx.save(cb, ids(0, 4), hashes("b", 4));
        fx.copies.gated = true;

        CompletableFuture<LoadStarted> running = fx.load(ca, ids(10, 4), hashes("a", 4), 0);
        assertTrue(fx.copies.entered.await(10, TimeUnit.SECONDS), "the first load holds the only copy thread");
        CompletableFuture<LoadStarted> queued = fx.load(ca, ids(20, 4), hashes("a", 4), 1);
        assertEquals(4, queued.get(10, TimeUnit.SECONDS).scheduled(), "the second waits in the queue of 1");

        CompletableFuture<LoadStarted> refused = fx.load(cb, ids(10, 4), hashes("b", 4), 2);
        EngineException e = EngineException.unwrap(org.junit.jupiter.api.Assertions.assertThrows(
                ExecutionException.class, () -> refused.get(10, TimeUnit.SECONDS)));
        assertEquals(EngineException.Code.RESOURCE_EXHAUSTED, e.code());
        assertTrue(e.getMessage().contains("the copy queue is full (1 tasks waiting"), e.getMessage());
        assertTrue(e.getMessage().contains("load refused"), e.getMessage());
        assertEquals(LoadFlagWriter.FAILED, fx.flagState(2), "a refused load's flag does not stay pending");
        assertEquals(0, fx.pinnedAfterClearing("b"), "the refused load pinned nothing");
        assertEquals(4, fx.pinnedAfterClearing("a"), "the running and the queued load still hold theirs");
        assertEquals(List.of("load/queue_full"), fx.listener.rejected);

        fx.copies.release.countDown();
        assertArrayEquals(new long[] {LoadFlagWriter.DONE, 4, 0}, fx.awaitFlag(0));
        assertArrayEquals(new long[] {LoadFlagWriter.DONE, 4, 0}, fx.awaitFlag(1));
        assertEquals(4, running.get(10, TimeUnit.SECONDS).scheduled());
    }
}
