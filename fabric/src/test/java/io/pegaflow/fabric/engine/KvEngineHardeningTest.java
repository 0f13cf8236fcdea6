package io.pegaflow.fabric.engine;

import static io.pegaflow.fabric.engine.EngineFixture.hashes;
import static io.pegaflow.fabric.engine.EngineFixture.ids;
import static io.pegaflow.fabric.engine.KvEngineTest.await;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.gpu.MappedRegion;
import io.pegaflow.gpu.SharedMemoryFile;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.QueryResult;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The engine against hostile workers (issue [6 of 12]): racing links, oversized strings and lists, second sessions,
 * foreign leases, stale context ids from before a restart, truncated files, contexts left without a session. Real
 * engine, pool and shared-memory files.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class KvEngineHardeningTest {
    private final List<EngineFixture> fixtures = new ArrayList<>();
    private final List<Path> trees = new ArrayList<>();

    private EngineFixture fixture(EngineSettings settings) throws IOException {
        EngineFixture fx = new EngineFixture(16L << 20, settings, RemoteBlockSource.NONE);
        fixtures.add(fx);
        return fx;
    }

    private EngineFixture fixture() throws IOException {
        return fixture(EngineSettings.defaults());
    }

    @AfterEach
    void cleanUp() throws Exception {
        for (EngineFixture fx : fixtures) {
            fx.close();
        }
        for (Path tree : trees) {
            try (Stream<Path> files = Files.walk(tree)) {
                for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    private static EngineException refusal(Executable call) {
        Throwable t = assertThrows(Throwable.class, call::run);
        if (t instanceof java.util.concurrent.ExecutionException && t.getCause() != null) {
            t = t.getCause();
        }
        if (t instanceof EngineException e) {
            return e;
        }
        throw new AssertionError("expected an EngineException, got " + t, t);
    }

    @FunctionalInterface
    interface Executable {
        void run() throws Exception;
    }

    // ---- 1: the shared-memory rule cannot be raced ----

    @Test
    void shouldRefuseARegistrationThroughALinkedDirectory() throws Exception {
        EngineFixture fx = fixture();
        ShmKvCache cache = fx.cache(1, 8);
        Path dir = Files.createDirectory(Path.of("/dev/shm", "pegaflow-test-links-" + UUID.randomUUID()));
        trees.add(dir);
        Files.createSymbolicLink(dir.resolve("d"), cache.path.getParent());
        String linked = dir.resolve("d").resolve(cache.path.getFileName()).toString();
        ContextRegistration r = Registrations.withLayer(
                cache.registration("w", "ns", 0, 1, 1, 0),
                0,
                Registrations.withRegion(
                        cache.registration("w", "ns", 0, 1, 1, 0).layers().get(0),
                        new RegionSpec.SharedMemory(linked, 0)));
        EngineException e = refusal(() -> fx.register(r));
        assertEquals(EngineException.Code.INVALID_ARGUMENT, e.code());
        assertTrue(e.getMessage().contains("layers[0].region.shm.path: cannot map"), e.getMessage());
        assertTrue(e.getMessage().contains("\"d\" is a symbolic link"), e.getMessage());
        assertEquals(0, fx.engine.contextCount());
    }

    private static void spin(long nanos) {
        long end = System.nanoTime() + nanos;
        while (System.nanoTime() < end) {
            Thread.onSpinWait();
        }
    }

    /**
     * Registrations run while a thread swaps a directory under /dev/shm for a link to a directory outside: each one
     * either is refused or maps the file inside (the first byte of what it mapped says which).
     */
    @Test
    void shouldNeverMapAFileOutsideTheShmDirWhileRegistrationsRace() throws Exception {
        Path root = Files.createDirectory(Path.of("/dev/shm", "pegaflow-test-race-" + UUID.randomUUID()));
        Path outside = Files.createTempDirectory("pegaflow-test-outside-");
        trees.add(root);
        trees.add(outside);
        Path d = root.resolve("d");
        Path parked = root.resolve("d.dir");
        Path link = root.resolve("d.lnk");
        Files.createDirectory(d);
        byte[] inside = new byte[4 * EngineFixture.BLOCK];
        java.util.Arrays.fill(inside, (byte) 'I');
        Files.write(d.resolve("kv"), inside);
        byte[] decoy = new byte[4 * EngineFixture.BLOCK];
        java.util.Arrays.fill(decoy, (byte) 'O');
        Files.write(outside.resolve("kv"), decoy);
        Files.createSymbolicLink(link, outside);

        AtomicInteger outsideMapped = new AtomicInteger();
        SharedMemoryMapper watching = (dir, path) -> {
            MappedRegion region = SharedMemoryFile.mapWithin(dir, path);
            if (region.memory().get(ValueLayout.JAVA_BYTE, 0) != 'I') {
                outsideMapped.incrementAndGet();
            }
            return region;
        };
        BlockStore store = new BlockStore(
                io.pegaflow.store.pool.BlockPool.allocateOffHeap(8L << 20), 30_000_000_000L, System::nanoTime);
        KvEngine engine = KvEngine.builder(store, new io.pegaflow.gpu.HostCopyEngine())
                .sharedMemoryMapper(watching)
                .build();
        ContextRegistration r = new ContextRegistration(
                "racer",
                "race",
                0,
                1,
                0,
                1,
                "host",
                List.of(new LayerSpec(
                        "l0",
                        0,
                        new RegionSpec.SharedMemory(d.resolve("kv").toString(), 0),
                        4,
                        EngineFixture.BLOCK,
                        List.of(new LayerSpec.Segment(0, EngineFixture.BLOCK)))));
        AtomicBoolean stop = new AtomicBoolean();
        Thread swapper = new Thread(() -> {
            while (!stop.get()) {
                try {
                    Files.move(d, parked, StandardCopyOption.ATOMIC_MOVE);
                    Files.move(link, d, StandardCopyOption.ATOMIC_MOVE);
                    spin(20_000);
                    Files.move(d, link, StandardCopyOption.ATOMIC_MOVE);
                    Files.move(parked, d, StandardCopyOption.ATOMIC_MOVE);
                    spin(20_000);
                } catch (IOException e) {
                    throw new IllegalStateException(e);
                }
            }
        });
        swapper.start();
        int registered = 0;
        try {
            for (int i = 0; i < 500; i++) {
                try {
                    String id = await(engine.register(r)).contextId();
                    registered++;
                    await(engine.unregister(id, "test"));
                } catch (EngineException refused) {
                    assertEquals(EngineException.Code.INVALID_ARGUMENT, refused.code(), refused.getMessage());
                }
            }
        } finally {
            stop.set(true);
            swapper.join(10_000);
            engine.close();
            store.pool().close();
        }
        assertEquals(0, outsideMapped.get(), "registrations that mapped the file outside (" + registered + " ok)");
        assertTrue(registered > 0, "no registration found the directory in place: the race was not exercised");
    }

    // ---- 3: sizes are bounded, echoes are short ----

    @Test
    void shouldRefuseOversizedStringsAndListsNamingTheLimit() throws Exception {
        EngineFixture fx = fixture();
        ShmKvCache cache = fx.cache(2, 8);
        String mib = "n".repeat(1 << 20);
        ContextRegistration good = cache.registration("w", "ns", 0, 1, 2, 0);
        EngineException ns = refusal(() -> fx.register(Registrations.withNamespace(good, mib)));
        assertEquals(EngineException.Code.INVALID_ARGUMENT, ns.code());
        assertEquals("namespace: more than 256 bytes; at most 256 are allowed", ns.getMessage());
        EngineException instance = refusal(() -> fx.register(Registrations.withInstance(good, mib)));
        assertEquals("instance_id: more than 256 bytes; at most 256 are allowed", instance.getMessage());
        // 200 characters of 2 bytes each: 400 bytes in UTF-8.
        EngineException wide = refusal(() -> fx.register(Registrations.withNamespace(good, "é".repeat(200))));
        assertEquals("namespace: 400 bytes; at most 256 are allowed", wide.getMessage());
        EngineException device = refusal(() -> fx.register(Registrations.withDevice(good, "d".repeat(129))));
        assertEquals("device: more than 128 bytes; at most 128 are allowed", device.getMessage());

        String ctx = fx.register(good);
        byte[][] many = hashes("h", Limits.BLOCKS_PER_REQUEST + 1);
        EngineException query = refusal(() -> fx.engine.query(new PrefixQuery("ns", many, 0)));
        assertEquals("hashes: 16385 entries; at most 16384 per request", query.getMessage());
        EngineException queryNs = refusal(() -> fx.engine.query(new PrefixQuery(mib, hashes("h", 1), 0)));
        assertTrue(queryNs.getMessage().startsWith("namespace: more than 256 bytes"), queryNs.getMessage());
        EngineException save = refusal(() -> fx.save(ctx, new int[many.length], many));
        assertEquals("blocks: 16385 entries; at most 16384 per request", save.getMessage());
        EngineException flag = refusal(() -> await(
                fx.engine.load(new LoadBlocks(ctx, ids(0, 1), hashes("h", 1), 0, "/dev/shm/" + "f".repeat(5000), 0))));
        assertTrue(flag.getMessage().startsWith("flag.path: more than 4096 bytes"), flag.getMessage());
        assertEquals(0, fx.store.sealedBlocks());
        assertEquals(1, fx.engine.contextCount());
    }

    @Test
    void shouldAnswerAHugeUnknownContextIdNotFoundWithAShortEcho() throws Exception {
        EngineFixture fx = fixture();
        String huge = "c".repeat(16_000);
        EngineException e = refusal(() -> fx.save(huge, ids(0, 1), hashes("h", 1)));
        assertEquals(EngineException.Code.NOT_FOUND, e.code());
        assertTrue(e.getMessage().startsWith("context_id: \"cccc"), e.getMessage());
        assertTrue(e.getMessage().contains("…\" (16000 chars) is not registered"), e.getMessage());
        assertTrue(e.getMessage().length() < 300, "message of " + e.getMessage().length() + " chars");
    }

    // ---- 4: a second session does not end the first ----

    @Test
    void shouldKeepAContextUntilItsLastSessionEnds() throws Exception {
        EngineFixture fx = fixture();
        ShmKvCache cache = fx.cache(1, 8);
        String ctx = fx.register(cache.registration("w", "ns", 0, 1, 1, 0));
        KvEngine.SessionHandle first = fx.engine.attachSession(ctx);
        KvEngine.SessionHandle second = fx.engine.attachSession(ctx);
        assertNotNull(first);
        assertNotNull(second);
        assertEquals(2, fx.engine.sessionCount(ctx));
        second.end();
        second.end(); // ending twice counts once
        assertTrue(fx.engine.hasContext(ctx), "closing the second session unregistered the context");
        assertEquals(1, fx.engine.sessionCount(ctx));
        cache.fillRandom(0, 1);
        assertEquals(1, fx.save(ctx, ids(0, 1), hashes("s", 1)).stored());
        first.end();
        assertFalse(fx.engine.hasContext(ctx), "the last session ended: the context must go");
        assertNull(fx.engine.attachSession(ctx), "no session attaches to a context that is gone");
    }

    // ---- 5: leases are consumed only by a load of their blocks in their namespace ----

    @Test
    void shouldConsumeALeaseOnlyByALoadOfItsBlocksInItsNamespace() throws Exception {
        EngineFixture fx = fixture();
        ShmKvCache a = fx.cache(1, 8);
        ShmKvCache b = fx.cache(1, 8);
        String ctxA = fx.register(a.registration("wa", "ns-a", 0, 1, 1, 0));
        String ctxB = fx.register(b.registration("wb", "ns-b", 0, 1, 1, 0));
        byte[][] leased = hashes("leased", 2);
        byte[][] other = hashes("other", 2);
        a.fillRandom(0, 1);
        a.fillRandom(1, 2);
        fx.save(ctxA, ids(0, 2), leased);
        fx.save(ctxA, ids(2, 2), other);
        b.fillRandom(0, 3);
        fx.save(ctxB, ids(0, 2), leased); // the same hashes in the other namespace
        QueryResult lease = fx.store.query("ns-a", leased, 60_000);
        long id = lease.leaseId();
        assertNotEquals(0, id);

        // A load in another namespace naming the lease, and a load of other blocks in its namespace: untouched.
        assertEquals(
                2,
                await(fx.engine.load(new LoadBlocks(ctxB, ids(4, 2), leased, id, fx.flagPath.toString(), 0)))
                        .scheduled());
        fx.awaitFlag(0);
        assertEquals(
                2,
                await(fx.engine.load(new LoadBlocks(ctxA, ids(4, 2), other, id, fx.flagPath.toString(), 32)))
                        .scheduled());
        fx.awaitFlag(1);
        assertEquals(1, fx.store.activeLeases(), "a load that is not of the lease's blocks consumed it");
        // Guessed ids consume nothing.
        for (long guess = 1; guess <= 64; guess++) {
            if (guess != id) {
                await(fx.engine.load(
                        new LoadBlocks(ctxA, ids(6, 1), new byte[][] {other[0]}, guess, fx.flagPath.toString(), 64)));
                fx.awaitFlag(2);
            }
        }
        assertEquals(1, fx.store.activeLeases(), "a guessed lease id consumed the lease");
        // The load of its blocks in its namespace consumes it.
        await(fx.engine.load(new LoadBlocks(ctxA, ids(4, 2), leased, id, fx.flagPath.toString(), 96)));
        assertEquals(LoadFlagWriter.DONE, fx.awaitFlag(3)[0]);
        assertEquals(0, fx.store.activeLeases());
        assertFalse(fx.engine.release(id), "consumed by the load: nothing left to release");
    }

    // ---- 6: context ids do not repeat across restarts ----

    @Test
    void shouldNotFindAContextIdFromBeforeARestart() throws Exception {
        try (ShmKvCache cache = new ShmKvCache(1, 8, EngineFixture.BLOCK, false)) {
            ContextRegistration r = cache.registration("worker-0", "ns", 0, 1, 1, 0);
            EngineFixture before = fixture();
            String stale = before.register(r);
            before.close();
            fixtures.remove(before);

            EngineFixture after = fixture(); // the restarted node: a fresh engine and store
            String fresh = after.register(r);
            assertStaleIdNotFound(after, stale, fresh);
        }
    }

    private static void assertStaleIdNotFound(EngineFixture after, String stale, String fresh) {
        assertNotEquals(stale, fresh, "the restarted engine handed out the same context id");
        assertTrue(stale.startsWith("worker-0/tp0/pp0#1-") && fresh.startsWith("worker-0/tp0/pp0#1-"), fresh);
        EngineException e = refusal(() -> after.save(stale, ids(0, 1), hashes("h", 1)));
        assertEquals(EngineException.Code.NOT_FOUND, e.code());
        assertTrue(e.getMessage().contains("the node restarted"), e.getMessage());
    }

    // ---- 8: a truncated region is refused by name, the registration dropped ----

    @Test
    void shouldRefuseASaveFromATruncatedFileNamingItAndDropTheContext() throws Exception {
        EngineFixture fx = fixture();
        ShmKvCache cache = fx.cache(2, 8);
        String ctx = fx.register(cache.registration("w", "ns", 0, 1, 2, 0));
        cache.fillRandom(0, 1);
        assertEquals(1, fx.save(ctx, ids(0, 1), hashes("a", 1)).stored());
        try (RandomAccessFile f = new RandomAccessFile(cache.path.toFile(), "rw")) {
            f.setLength(EngineFixture.BLOCK);
        }
        EngineException e = refusal(() -> fx.save(ctx, ids(1, 1), hashes("b", 1)));
        assertEquals(EngineException.Code.FAILED_PRECONDITION, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains("region \"" + cache.path + "\""), e.getMessage());
        assertTrue(e.getMessage().contains("the file shrank to 4096 bytes"), e.getMessage());
        assertFalse(fx.engine.hasContext(ctx), "the registration must be dropped");
        assertEquals(1, fx.store.sealedBlocks(), "nothing of the refused save is stored");
        assertEquals(0, fx.store.inFlightBlocks());
        EngineException after = refusal(() -> fx.save(ctx, ids(1, 1), hashes("b", 1)));
        assertEquals(EngineException.Code.NOT_FOUND, after.code());
    }

    @Test
    void shouldReportTheBlocksOfALoadIntoATruncatedFileFailed() throws Exception {
        EngineFixture fx = fixture();
        ShmKvCache cache = fx.cache(2, 8);
        String ctx = fx.register(cache.registration("w", "ns", 0, 1, 2, 0));
        byte[][] data = cache.fillRandom(0, 1);
        byte[][] h = hashes("a", 1);
        fx.save(ctx, ids(0, 1), h);
        try (RandomAccessFile f = new RandomAccessFile(cache.path.toFile(), "rw")) {
            f.setLength(EngineFixture.BLOCK);
        }
        LoadStarted started = await(fx.load(ctx, ids(5, 1), h, 0));
        assertEquals(1, started.scheduled());
        long[] flag = fx.awaitFlag(0);
        assertArrayEquals(new long[] {LoadFlagWriter.FAILED, 0, 1}, flag, "state, loaded, failed");
        assertFalse(fx.engine.hasContext(ctx), "the registration must be dropped");
        // The pool's copy is intact: a fresh registration loads it.
        ShmKvCache again = fx.cache(2, 8);
        String ctx2 = fx.register(again.registration("w2", "ns", 0, 1, 2, 0));
        await(fx.load(ctx2, ids(3, 1), h, 1));
        assertEquals(LoadFlagWriter.DONE, fx.awaitFlag(1)[0]);
        assertArrayEquals(data[1], again.read(1, 3));
    }

    // ---- 9: a context without a session does not live forever ----

    @Test
    void shouldDropAContextWithoutASessionOnceIdleButKeepOnesInUseOrWithASession() throws Exception {
        EngineFixture fx = fixture(EngineSettings.defaults().withSessionlessIdleMs(400));
        ShmKvCache idle = fx.cache(1, 8);
        ShmKvCache used = fx.cache(1, 8);
        ShmKvCache attached = fx.cache(1, 8);
        String idleCtx = fx.register(idle.registration("idle", "ns", 0, 1, 1, 0));
        String usedCtx = fx.register(used.registration("used", "ns", 0, 1, 1, 0));
        String attachedCtx = fx.register(attached.registration("attached", "ns", 0, 1, 1, 0));
        KvEngine.SessionHandle session = fx.engine.attachSession(attachedCtx);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (fx.engine.hasContext(idleCtx) && System.nanoTime() < deadline) {
            fx.save(usedCtx, new int[0], new byte[0][]);
            Thread.sleep(50);
        }
        assertFalse(fx.engine.hasContext(idleCtx), "an unused context without a session was kept");
        while (fx.files.unmapped(idle.path) == 0 && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(1, fx.files.unmapped(idle.path), "its mapping must go with it");
        Thread.sleep(600);
        assertFalse(fx.engine.hasContext(usedCtx), "idle for 600 ms now, it must have gone too");
        assertTrue(fx.engine.hasContext(attachedCtx), "a context with a session lives until the session ends");
        session.end();
        assertFalse(fx.engine.hasContext(attachedCtx));
    }
}
