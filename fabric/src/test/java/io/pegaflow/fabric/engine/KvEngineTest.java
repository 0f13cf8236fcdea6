package io.pegaflow.fabric.engine;

import static io.pegaflow.fabric.engine.Registrations.withLayer;
import static io.pegaflow.fabric.engine.Registrations.withNumBlocks;
import static io.pegaflow.fabric.engine.Registrations.withRegion;
import static io.pegaflow.fabric.engine.ShmKvCache.hash;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.gpu.HostCopyEngine;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.NamespaceLayout;
import io.pegaflow.store.pool.BlockPool;
import java.io.RandomAccessFile;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The engine against real shared-memory files and a real pool, in one process (no gRPC). */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class KvEngineTest {
    private static final int BLOCK = 4096; // bytes per block per layer
    private final AtomicLong clock = new AtomicLong(1_000_000_000L);
    private final List<AutoCloseable> closeables = new ArrayList<>();
    private KvEngine engine;
    private Path flagPath;
    private MappedByteBuffer flags;

    private KvEngine engine(long poolBytes, long partialTimeoutMs) throws Exception {
        BlockStore store =
                new BlockStore(BlockPool.allocateOffHeap(poolBytes), partialTimeoutMs * 1_000_000, clock::get);
        engine = KvEngine.builder(store, new HostCopyEngine())
                .settings(EngineSettings.defaults().withCopy(2, 1024))
                .build();
        flagPath = Path.of("/dev/shm", "pegaflow-test-flags-" + UUID.randomUUID());
        try (RandomAccessFile f = new RandomAccessFile(flagPath.toFile(), "rw")) {
            f.setLength(32 * 64);
        }
        try (FileChannel ch = FileChannel.open(
                flagPath, java.nio.file.StandardOpenOption.READ, java.nio.file.StandardOpenOption.WRITE)) {
            flags = ch.map(FileChannel.MapMode.READ_WRITE, 0, 32 * 64);
            flags.order(ByteOrder.LITTLE_ENDIAN);
        }
        return engine;
    }

    private ShmKvCache cache(int layers, int blocks, boolean kvPlanes) throws Exception {
        ShmKvCache cache = new ShmKvCache(layers, blocks, BLOCK, kvPlanes);
        closeables.add(cache);
        return cache;
    }

    @AfterEach
    void cleanUp() throws Exception {
        if (engine != null) {
            engine.close();
            engine.store().pool().close();
        }
        for (AutoCloseable c : closeables) {
            c.close();
        }
        if (flagPath != null) {
            Files.deleteIfExists(flagPath);
        }
    }

    private static int[] ids(int from, int count) {
        int[] ids = new int[count];
        for (int i = 0; i < count; i++) {
            ids[i] = from + i;
        }
        return ids;
    }

    private static byte[][] hashes(String prefix, int count) {
        byte[][] h = new byte[count][];
        for (int i = 0; i < count; i++) {
            h[i] = hash(prefix + i);
        }
        return h;
    }

    /** The stage's value; an engine refusal is rethrown as the EngineException itself. */
    static <T> T await(CompletionStage<T> stage) throws Exception {
        try {
            return stage.toCompletableFuture().get(10, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof EngineException refused) {
                throw refused;
            }
            throw e;
        }
    }

    private String register(ContextRegistration r) throws Exception {
        return await(engine.register(r)).contextId();
    }

    private SaveResult save(String ctx, int[] ids, byte[][] hashes) throws Exception {
        return await(engine.save(new SaveBlocks(ctx, ids, hashes, new int[0])));
    }

    private PrefixHits query(String namespace, byte[][] hashes, long leaseTtlMs) {
        return engine.query(new PrefixQuery(namespace, hashes, leaseTtlMs));
    }

    private LoadStarted load(String ctx, int[] ids, byte[][] hashes, long lease, String flag, long offset)
            throws Exception {
        return await(engine.load(new LoadBlocks(ctx, ids, hashes, lease, flag, offset)));
    }

    /** Loads and waits for the flag; returns {state, loaded, failed}. */
    private long[] loadAndWait(String ctx, int[] ids, byte[][] hashes, long lease, int flagSlot) throws Exception {
        load(ctx, ids, hashes, lease, flagPath.toString(), flagSlot * 32L);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (flags.getLong(flagSlot * 32) == LoadFlagWriter.PENDING && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        return new long[] {
            flags.getLong(flagSlot * 32), flags.getLong(flagSlot * 32 + 8), flags.getLong(flagSlot * 32 + 16)
        };
    }

    private void roundTrip(boolean kvPlanes) throws Exception {
        engine(64L << 20, 30_000);
        ShmKvCache cache = cache(4, 64, kvPlanes);
        String ctx = register(cache.registration("i1", "ns", 0, 1, 4, 0));
        byte[][][] data = new byte[10][][];
        for (int b = 0; b < 10; b++) {
            data[b] = cache.fillRandom(b, 100 + b);
        }
        SaveResult saved = save(ctx, ids(0, 10), hashes("h", 10));
        assertEquals(new SaveResult(10, 0, 10), saved);
        for (int b = 0; b < 10; b++) {
            cache.scribble(b);
        }
        assertEquals(10, query("ns", hashes("h", 12), 0).hitBlocks());
        long[] flag = loadAndWait(ctx, ids(20, 10), hashes("h", 10), 0, 0);
        assertArrayEquals(new long[] {LoadFlagWriter.DONE, 10, 0}, flag);
        for (int b = 0; b < 10; b++) {
            for (int l = 0; l < 4; l++) {
                assertArrayEquals(data[b][l], cache.read(l, 20 + b), "block " + b + " layer " + l);
            }
        }
    }

    @Test
    void shouldRoundTripBlocksByteExactInThePackedLayout() throws Exception {
        roundTrip(false);
    }

    @Test
    void shouldRoundTripBlocksByteExactInTheKvPlanesLayout() throws Exception {
        roundTrip(true);
    }

    @Test
    void shouldReplyToAReplyWhenDoneLoadOnlyOnceItsBlocksLandedWithoutAFlag() throws Exception {
        engine(64L << 20, 30_000);
        ShmKvCache cache = cache(2, 64, false);
        String ctx = register(cache.registration("i1", "ns", 0, 1, 2, 0));
        byte[][][] data = new byte[4][][];
        for (int b = 0; b < 4; b++) {
            data[b] = cache.fillRandom(b, 7 + b);
        }
        save(ctx, ids(0, 4), hashes("w", 4));
        byte[][] asked = {hash("w0"), hash("w1"), hash("w2"), hash("w3"), hash("missing")};
        LoadStarted r = await(
                engine.load(new LoadBlocks(ctx, ids(30, 5), io.pegaflow.store.HashList.of(asked), 0, "", 0, true)));
        assertArrayEquals(new int[] {34}, r.failedBlockIds());
        assertEquals(new LoadStarted.LoadDone(true, 4, 1, r.done().durationNs()), r.done());
        for (int b = 0; b < 4; b++) {
            for (int l = 0; l < 2; l++) {
                assertArrayEquals(data[b][l], cache.read(l, 30 + b), "landed before the reply: block " + b);
            }
        }
        EngineException noFlag =
                assertThrows(EngineException.class, () -> load(ctx, ids(30, 1), new byte[][] {hash("w0")}, 0, "", 0));
        assertEquals("flag.path: missing", noFlag.getMessage(), "a load that is not reply-when-done needs a flag");
    }

    @Test
    void shouldEvictLeastRecentlyUsedWhenPoolIsFull() throws Exception {
        engine(16 * 8192, 30_000); // 2 layers x 4 KiB = 8 KiB blocks: 16 fit
        ShmKvCache cache = cache(2, 64, false);
        String ctx = register(cache.registration("i1", "ns", 0, 1, 2, 0));
        save(ctx, ids(0, 16), hashes("a", 16));
        assertEquals(16, query("ns", hashes("a", 16), 0).hitBlocks());
        // Touch a0..a7 again so a8..a15 become the least recently used.
        assertEquals(8, query("ns", hashes("a", 8), 0).hitBlocks());
        save(ctx, ids(16, 8), hashes("b", 8));
        assertEquals(8, query("ns", hashes("a", 8), 0).hitBlocks());
        for (int i = 8; i < 16; i++) {
            assertFalse(engine.store().isSealed("ns", hash("a" + i)), "a" + i + " should be evicted");
        }
        assertEquals(8, query("ns", hashes("b", 8), 0).hitBlocks());
        assertEquals(8, engine.store().counters().evictions());
    }

    @Test
    void shouldKeepASealedBlockOfTheRequestWhileEvictingForItsNewBlocks() throws Exception {
        engine(16 * 8192, 30_000);
        ShmKvCache cache = cache(2, 64, false);
        String ctx = register(cache.registration("i1", "ns", 0, 1, 2, 0));
        save(ctx, ids(0, 16), hashes("a", 16)); // full; a0 is the least recently used
        SaveResult r = save(ctx, new int[] {0, 1}, new byte[][] {hash("a0"), hash("new")});
        assertEquals(new SaveResult(1, 1, 1), r);
        assertTrue(engine.store().isSealed("ns", hash("a0")), "a0 is part of the request: not the victim");
        assertFalse(engine.store().isSealed("ns", hash("a1")), "the next least recently used block makes room");
        assertTrue(engine.store().isSealed("ns", hash("new")));
    }

    @Test
    void shouldEvictBlocksOfAnotherSizeWhenTheirSlabsCanBeEmptied() throws Exception {
        engine(4 << 20, 30_000); // one 4 MiB slab
        ShmKvCache big = cache(2, 512, false); // 8 KiB blocks: 512 fill the slab
        String c1 = register(big.registration("i1", "big", 0, 1, 2, 0));
        save(c1, ids(0, 512), hashes("b", 512));
        assertEquals(0, engine.store().pool().freeSlotsFor(8192));
        ShmKvCache small = cache(1, 64, false); // 4 KiB blocks: another size class
        String c2 = register(small.registration("i2", "small", 0, 1, 1, 0));
        assertEquals(new SaveResult(3, 0, 3), save(c2, ids(0, 3), hashes("s", 3)));
        assertEquals(3, query("small", hashes("s", 3), 0).hitBlocks());
        assertEquals(512, engine.store().counters().evictions(), "the whole slab had to be emptied");

        // A leased block of the other class keeps its slab: then the save is refused and nothing changes.
        PrefixHits lease = query("small", hashes("s", 1), 60_000);
        long[] before = snapshot();
        EngineException e = assertThrows(EngineException.class, () -> save(c1, ids(0, 1), hashes("b", 1)));
        assertEquals(EngineException.Code.RESOURCE_EXHAUSTED, e.code());
        assertArrayEquals(before, snapshot());
        assertTrue(engine.release(lease.leaseId()));
    }

    @Test
    void shouldNotAcknowledgeASaveBeforeAConcurrentCopyOfTheSameBlockHasLanded() throws Exception {
        engine(64L << 20, 30_000);
        ShmKvCache a = cache(2, 64, false);
        ShmKvCache b = cache(2, 64, false);
        String ca = register(a.registration("ia", "ns", 0, 1, 2, 0));
        String cb = register(b.registration("ib", "ns", 0, 1, 2, 0));
        // Reserve A's copy by hand (as a save in progress would), then save the same hash from B.
        io.pegaflow.store.SaveReservation inProgress = engine.store()
                .reserveForSave(layoutOf(engine, "ns"), new int[] {0}, new byte[][] {hash("x")}, new int[] {0, 1});
        var fromB = engine.save(new SaveBlocks(cb, ids(0, 1), new byte[][] {hash("x")}, new int[0]))
                .toCompletableFuture();
        Thread.sleep(200);
        assertFalse(fromB.isDone(), "B must wait for A's copy of the same slots");
        engine.store().completeSave(inProgress, false); // A's copy failed
        Throwable t = assertThrows(java.util.concurrent.ExecutionException.class, () -> fromB.get(5, TimeUnit.SECONDS))
                .getCause();
        assertEquals(EngineException.Code.UNAVAILABLE, ((EngineException) t).code());
        // Saved again, B's own copy lands.
        assertEquals(1, save(cb, ids(0, 1), new byte[][] {hash("x")}).stored());
        assertTrue(engine.store().isSealed("ns", hash("x")));
        assertTrue(ca.length() > 0);
    }

    private static NamespaceLayout layoutOf(KvEngine engine, String namespace) {
        return new NamespaceLayout(namespace, 2, 1, engine.blockBytes(namespace) / 2);
    }

    @Test
    void shouldEmptyOnlyAsManySlabsOfAnotherSizeAsTheSaveNeeds() throws Exception {
        engine(16L << 20, 30_000); // four 4 MiB slabs
        ShmKvCache big = cache(2, 2048, false); // 8 KiB blocks, 512 per slab
        String c1 = register(big.registration("i1", "big", 0, 1, 2, 0));
        for (int round = 0; round < 4; round++) {
            save(c1, ids(round * 512, 512), hashes("b" + round + "-", 512));
        }
        assertEquals(0, engine.store().pool().freeSlabCount());
        ShmKvCache small = cache(1, 64, false); // 4 KiB blocks
        String c2 = register(small.registration("i2", "small", 0, 1, 1, 0));
        save(c2, ids(0, 3), hashes("s", 3));
        assertEquals(512, engine.store().counters().evictions(), "one slab emptied, the other three kept");
        assertEquals(3 * 512, engine.store().sealedBlocks() - 3);
    }

    @Test
    void shouldProtectLeasedBlocksFromEvictionUntilReleasedOrExpired() throws Exception {
        engine(16 * 8192, 30_000);
        ShmKvCache cache = cache(2, 64, false);
        String ctx = register(cache.registration("i1", "ns", 0, 1, 2, 0));
        save(ctx, ids(0, 16), hashes("a", 16));
        PrefixHits lease = query("ns", hashes("a", 16), 60_000);
        assertNotEquals(0, lease.leaseId(), "0 means no lease");
        EngineException full = assertThrows(EngineException.class, () -> save(ctx, ids(16, 1), hashes("b", 1)));
        assertEquals(EngineException.Code.RESOURCE_EXHAUSTED, full.code());
        assertEquals(16, query("ns", hashes("a", 16), 0).hitBlocks(), "a refused save changes nothing");
        assertTrue(engine.release(lease.leaseId()));
        assertFalse(engine.release(lease.leaseId()), "a lease ends once");
        save(ctx, ids(16, 1), hashes("b", 1));
        assertTrue(engine.store().isSealed("ns", hash("b0")));

        // A lease that expires lets eviction take its blocks again.
        // b0 took a0's place (LRU); lease the other 15 for 50 ms: only b0 is evictable now.
        byte[][] a1to15 = java.util.Arrays.copyOfRange(hashes("a", 16), 1, 16);
        PrefixHits shortLease = query("ns", a1to15, 50);
        assertEquals(15, shortLease.hitBlocks());
        assertThrows(EngineException.class, () -> save(ctx, ids(17, 2), hashes("c", 2)));
        clock.addAndGet(TimeUnit.MILLISECONDS.toNanos(51));
        engine.store().sweep();
        assertEquals(0, engine.store().activeLeases());
        save(ctx, ids(17, 2), hashes("c", 2));
        assertEquals(1, engine.store().counters().leasesExpired());
    }

    @Test
    void shouldSkipBlocksThatAreAlreadySealed() throws Exception {
        engine(64L << 20, 30_000);
        ShmKvCache cache = cache(2, 64, false);
        String ctx = register(cache.registration("i1", "ns", 0, 1, 2, 0));
        assertEquals(new SaveResult(5, 0, 5), save(ctx, ids(0, 5), hashes("h", 5)));
        assertEquals(new SaveResult(0, 5, 0), save(ctx, ids(10, 5), hashes("h", 5)));
        // The same hash twice in one request is copied once.
        assertEquals(new SaveResult(1, 1, 1), save(ctx, new int[] {6, 7}, new byte[][] {hash("x"), hash("x")}));
        assertEquals(6, engine.store().counters().insertions());
    }

    @Test
    void shouldNeverExposeABlockMissingATensorParallelRank() throws Exception {
        engine(64L << 20, 1_000);
        ShmKvCache rank0 = cache(2, 64, false);
        ShmKvCache rank1 = cache(2, 64, false);
        String c0 = register(rank0.registration("i1", "ns", 0, 2, 2, 0));
        String c1 = register(rank1.registration("i1", "ns", 1, 2, 2, 0));
        byte[][] r0 = rank0.fillRandom(3, 1);
        byte[][] r1 = rank1.fillRandom(3, 2);
        assertEquals(new SaveResult(1, 0, 0), save(c0, ids(3, 1), hashes("p", 1)));
        assertEquals(0, query("ns", hashes("p", 1), 0).hitBlocks(), "rank 1 missing: not visible");
        long[] flag = loadAndWait(c0, ids(9, 1), hashes("p", 1), 0, 1);
        assertArrayEquals(new long[] {LoadFlagWriter.FAILED, 0, 1}, flag, "a partial block cannot be loaded");
        assertEquals(new SaveResult(1, 0, 1), save(c1, ids(3, 1), hashes("p", 1)));
        assertEquals(1, query("ns", hashes("p", 1), 0).hitBlocks());
        // Each rank loads its own shard.
        assertArrayEquals(new long[] {LoadFlagWriter.DONE, 1, 0}, loadAndWait(c0, ids(9, 1), hashes("p", 1), 0, 2));
        assertArrayEquals(new long[] {LoadFlagWriter.DONE, 1, 0}, loadAndWait(c1, ids(9, 1), hashes("p", 1), 0, 3));
        assertArrayEquals(r0[1], rank0.read(1, 9));
        assertArrayEquals(r1[0], rank1.read(0, 9));

        // A block whose other rank never arrives is dropped after the partial timeout, freeing its space.
        save(c0, ids(4, 1), hashes("q", 1));
        assertEquals(1, engine.store().inFlightBlocks());
        clock.addAndGet(TimeUnit.MILLISECONDS.toNanos(1_001));
        engine.store().sweep();
        assertEquals(0, engine.store().inFlightBlocks());
        assertEquals(1, engine.store().counters().partialDropped());
    }

    @Test
    void shouldReportMissingBlocksOfALoadByBlockId() throws Exception {
        engine(64L << 20, 30_000);
        ShmKvCache cache = cache(2, 64, false);
        String ctx = register(cache.registration("i1", "ns", 0, 1, 2, 0));
        save(ctx, ids(0, 2), hashes("h", 2));
        LoadStarted started = load(ctx, ids(30, 3), hashes("h", 3), 0, flagPath.toString(), 4 * 32);
        assertArrayEquals(new int[] {32}, started.failedBlockIds());
        assertEquals(2, started.scheduled());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (flags.getLong(4 * 32) == 0 && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        assertEquals(LoadFlagWriter.FAILED, flags.getLong(4 * 32));
        assertEquals(2, flags.getLong(4 * 32 + 8));
        assertEquals(1, flags.getLong(4 * 32 + 16));
    }

    @Test
    void shouldRefuseBadInputAndChangeNothing() throws Exception {
        engine(16 * 8192, 30_000);
        ShmKvCache cache = cache(2, 64, false);
        String ctx = register(cache.registration("i1", "ns", 0, 1, 2, 0));
        save(ctx, ids(0, 4), hashes("h", 4));
        long[] before = snapshot();

        expect(EngineException.Code.NOT_FOUND, "context_id", () -> save("nope", ids(0, 1), hashes("z", 1)));
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "blocks[1].block_id: 64 is out of range 0..63",
                () -> save(ctx, new int[] {0, 64}, hashes("z", 2)));
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "blocks[0].block_id",
                () -> save(ctx, new int[] {-1}, hashes("z", 1)));
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "blocks[0].hash",
                () -> save(ctx, ids(0, 1), new byte[][] {new byte[0]}));
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "blocks[0].hash",
                () -> save(ctx, ids(0, 1), new byte[][] {new byte[65]}));
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "appears twice",
                () -> save(ctx, new int[] {5, 5}, hashes("z", 2)));
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "layer_indices[0]",
                () -> await(engine.save(new SaveBlocks(ctx, ids(0, 1), hashes("z", 1), new int[] {7}))));
        expect(
                EngineException.Code.RESOURCE_EXHAUSTED,
                "pool cannot hold",
                () -> save(ctx, ids(10, 20), hashes("big", 20)));
        expect(EngineException.Code.INVALID_ARGUMENT, "lease_ttl_ms", () -> query("ns", hashes("h", 1), 10_000_000));
        expect(EngineException.Code.INVALID_ARGUMENT, "namespace", () -> query("", hashes("h", 1), 0));
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "flag.offset_bytes",
                () -> load(ctx, ids(0, 1), hashes("h", 1), 0, flagPath.toString(), 32 * 64));
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "flag.path",
                () -> load(ctx, ids(0, 1), hashes("h", 1), 0, "/dev/shm/does-not-exist", 0));
        Path outside = Files.createTempFile("pegaflow-not-shm", ".bin");
        Files.write(outside, new byte[64]);
        try {
            expect(
                    EngineException.Code.INVALID_ARGUMENT,
                    "is outside /dev/shm",
                    () -> load(ctx, ids(0, 1), hashes("h", 1), 0, outside.toString(), 0));
            assertArrayEquals(
                    new byte[64], Files.readAllBytes(outside), "a file outside the shm directory is never written");
        } finally {
            Files.delete(outside);
        }
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "blocks[0].block_id",
                () -> load(ctx, new int[] {99}, hashes("h", 1), 0, flagPath.toString(), 0));

        ContextRegistration good = cache.registration("i2", "ns", 0, 1, 2, 0);
        LayerSpec layer0 = good.layers().get(0);
        long layer0Offset = ((RegionSpec.SharedMemory) layer0.region()).offsetBytes();
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "namespace: missing",
                () -> register(Registrations.withNamespace(good, "")));
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "tp_rank: 2 is out of range 0..1",
                () -> register(Registrations.withTp(good, 2, 2)));
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "layers[1].layer_index: 2 is out of range 0..1",
                () -> register(cache.registration("i2", "ns", 0, 1, 2, 1)));
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "past the end of",
                () -> register(withLayer(good, 1, withNumBlocks(good.layers().get(1), 65))));
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "cannot map",
                () -> register(withLayer(
                        good, 0, withRegion(layer0, new RegionSpec.SharedMemory("/dev/shm/none", layer0Offset)))));
        expect(
                EngineException.Code.FAILED_PRECONDITION,
                "CUDA IPC",
                () -> register(withLayer(good, 0, withRegion(layer0, new RegionSpec.CudaIpc(new byte[64], 0, 0)))));
        expect(
                EngineException.Code.FAILED_PRECONDITION,
                "tp_size 2 differs",
                () -> register(Registrations.withTp(good, 0, 2)));
        expect(
                EngineException.Code.FAILED_PRECONDITION,
                "total_layers 3 differs",
                () -> register(Registrations.withTotalLayers(good, 3)));

        assertArrayEquals(before, snapshot(), "rejected requests changed the store");
        assertEquals(1, engine.contextCount());
    }

    @Test
    void shouldReportALayerPastTheEndOfItsFileBeforeComparingLayerSizes() throws Exception {
        engine(16 * 8192, 30_000);
        ShmKvCache cache = cache(2, 64, false);
        ContextRegistration good = cache.registration("i1", "ns", 0, 1, 2, 0);
        LayerSpec layer1 = good.layers().get(1);
        LayerSpec longer = new LayerSpec(
                layer1.name(),
                layer1.layerIndex(),
                layer1.region(),
                layer1.numBlocks(),
                layer1.blockStrideBytes(),
                List.of(new LayerSpec.Segment(0, BLOCK + 1)));
        expect(
                EngineException.Code.INVALID_ARGUMENT,
                "layers[1].segments[0]: block 63 ends at byte",
                () -> register(withLayer(good, 1, longer)));
        assertEquals(0, engine.contextCount());
    }

    private long[] snapshot() {
        BlockStore s = engine.store();
        return new long[] {
            s.sealedBlocks(),
            s.inFlightBlocks(),
            s.activeLeases(),
            s.pool().usedBytes(),
            s.counters().insertions(),
            s.counters().evictions()
        };
    }

    private static void expect(EngineException.Code code, String messagePart, Executable call) {
        Throwable t = assertThrows(Throwable.class, call::execute);
        if (t instanceof java.util.concurrent.ExecutionException && t.getCause() != null) {
            t = t.getCause();
        }
        EngineException e = assertInstanceOfEngine(t);
        assertEquals(code, e.code(), e.getMessage());
        assertTrue(
                e.getMessage().contains(messagePart),
                "message \"" + e.getMessage() + "\" lacks \"" + messagePart + "\"");
    }

    private static EngineException assertInstanceOfEngine(Throwable t) {
        if (t instanceof EngineException e) {
            return e;
        }
        throw new AssertionError("expected an EngineException, got " + t, t);
    }

    @FunctionalInterface
    interface Executable {
        void execute() throws Throwable;
    }

    @Test
    void shouldServeEightConcurrentWorkersWithExactBytes() throws Exception {
        engine(64L << 20, 30_000);
        int workers = 8;
        ExecutorService pool = Executors.newFixedThreadPool(workers);
        List<Future<?>> done = new ArrayList<>();
        for (int w = 0; w < workers; w++) {
            ShmKvCache cache = cache(4, 32, w % 2 == 1);
            String ctx = register(cache.registration("worker" + w, "ns" + w, 0, 1, 4, 0));
            int worker = w;
            done.add(pool.submit(() -> {
                for (int round = 0; round < 5; round++) {
                    String prefix = "w" + worker + "r" + round + "-";
                    byte[][][] data = new byte[8][][];
                    for (int b = 0; b < 8; b++) {
                        data[b] = cache.fillRandom(b, worker * 1000L + round * 10 + b);
                    }
                    save(ctx, ids(0, 8), hashes(prefix, 8));
                    for (int b = 0; b < 8; b++) {
                        cache.scribble(b);
                    }
                    assertEquals(8, query("ns" + worker, hashes(prefix, 8), 0).hitBlocks());
                    long[] flag = loadAndWait(ctx, ids(16, 8), hashes(prefix, 8), 0, 8 + worker);
                    assertArrayEquals(new long[] {LoadFlagWriter.DONE, 8, 0}, flag);
                    for (int b = 0; b < 8; b++) {
                        for (int l = 0; l < 4; l++) {
                            assertArrayEquals(data[b][l], cache.read(l, 16 + b));
                        }
                    }
                }
                return null;
            }));
        }
        for (Future<?> f : done) {
            f.get(50, TimeUnit.SECONDS);
        }
        pool.shutdown();
        assertEquals(8 * 5 * 8, engine.store().counters().insertions());
    }

    @Test
    void shouldKeepCachedBlocksAfterUnregisterAndServeANewContext() throws Exception {
        engine(64L << 20, 30_000);
        ShmKvCache first = cache(2, 16, false);
        String c1 = register(first.registration("i1", "ns", 0, 1, 2, 0));
        byte[][] data = first.fillRandom(0, 7);
        save(c1, ids(0, 1), hashes("k", 1));
        assertTrue(await(engine.unregister(c1, "test")));
        expect(EngineException.Code.NOT_FOUND, "context_id", () -> save(c1, ids(0, 1), hashes("k", 1)));
        ShmKvCache second = cache(2, 16, true);
        String c2 = register(second.registration("i2", "ns", 0, 1, 2, 0));
        assertArrayEquals(new long[] {LoadFlagWriter.DONE, 1, 0}, loadAndWait(c2, ids(5, 1), hashes("k", 1), 0, 5));
        assertArrayEquals(data[0], second.read(0, 5));
        assertArrayEquals(data[1], second.read(1, 5));
    }
}
