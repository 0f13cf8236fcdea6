package io.pegaflow.fabric.engine;

import static io.pegaflow.fabric.engine.ShmKvCache.hash;

import io.pegaflow.gpu.CopyBatch;
import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.gpu.HostCopyEngine;
import io.pegaflow.gpu.MappedRegion;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.pool.BlockPool;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A real engine over a real pool, real shared-memory files and a flag file, with seams that record or hold work: a
 * copy engine that can be gated or made to fail, and a file mapper that counts mappings per path. Closed by the test.
 */
final class EngineFixture implements AutoCloseable {
    static final int BLOCK = 4096; // bytes per block per layer

    final BlockStore store;
    final KvEngine engine;
    final GatedCopyEngine copies = new GatedCopyEngine();
    final CountingMapper files = new CountingMapper();
    final RecordingListener listener = new RecordingListener();
    final Path flagPath;
    final MappedByteBuffer flags;
    private final List<AutoCloseable> closeables = new ArrayList<>();

    EngineFixture(long poolBytes, EngineSettings settings, RemoteBlockSource remote) throws IOException {
        store = new BlockStore(BlockPool.allocateOffHeap(poolBytes), 30_000_000_000L, System::nanoTime);
        engine = KvEngine.builder(store, copies)
                .settings(settings)
                .listener(listener)
                .remoteSource(remote)
                .sharedMemoryMapper(files)
                .build();
        flagPath = Path.of("/dev/shm", "pegaflow-test-flags-" + UUID.randomUUID());
        try (RandomAccessFile f = new RandomAccessFile(flagPath.toFile(), "rw")) {
            f.setLength(32 * 64);
        }
        try (FileChannel ch = FileChannel.open(flagPath, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            flags = ch.map(FileChannel.MapMode.READ_WRITE, 0, 32 * 64);
            flags.order(ByteOrder.LITTLE_ENDIAN);
        }
    }

    ShmKvCache cache(int layers, int blocks) throws IOException {
        ShmKvCache cache = new ShmKvCache(layers, blocks, BLOCK, false);
        closeables.add(cache);
        return cache;
    }

    String register(ContextRegistration r) throws Exception {
        return KvEngineTest.await(engine.register(r)).contextId();
    }

    SaveResult save(String ctx, int[] ids, byte[][] hashes) throws Exception {
        return KvEngineTest.await(engine.save(new SaveBlocks(ctx, ids, hashes, new int[0])));
    }

    java.util.concurrent.CompletableFuture<LoadStarted> load(String ctx, int[] ids, byte[][] hashes, int flagSlot) {
        return engine.load(new LoadBlocks(ctx, ids, hashes, 0, flagPath.toString(), flagSlot * 32L))
                .toCompletableFuture();
    }

    long flagState(int slot) {
        return flags.getLong(slot * 32);
    }

    /** Waits for a final state; returns {state, loaded, failed}. */
    long[] awaitFlag(int slot) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (flagState(slot) == LoadFlagWriter.PENDING && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        return new long[] {flagState(slot), flags.getLong(slot * 32 + 8), flags.getLong(slot * 32 + 16)};
    }

    static int[] ids(int from, int count) {
        int[] ids = new int[count];
        for (int i = 0; i < count; i++) {
            ids[i] = from + i;
        }
        return ids;
    }

    static byte[][] hashes(String prefix, int count) {
        byte[][] h = new byte[count][];
        for (int i = 0; i < count; i++) {
            h[i] = hash(prefix + i);
        }
        return h;
    }

    /** Pinned blocks of a namespace (clearNamespace keeps exactly those); the others are removed. */
    int pinnedAfterClearing(String namespace) {
        return store.clearNamespace(namespace).pinnedBlocksKept();
    }

    @Override
    public void close() throws Exception {
        copies.release.countDown();
        engine.close();
        store.pool().close();
        for (AutoCloseable c : closeables) {
            c.close();
        }
        Files.deleteIfExists(flagPath);
    }

    /** memcpy, optionally held at its first call until released, or failing; records the threads it ran on. */
    static final class GatedCopyEngine implements CopyEngine {
        final HostCopyEngine host = new HostCopyEngine();
        final CountDownLatch entered = new CountDownLatch(1);
        final CountDownLatch release = new CountDownLatch(1);
        final AtomicInteger calls = new AtomicInteger();
        final List<String> threads = new CopyOnWriteArrayList<>();
        volatile boolean gated;
        volatile RuntimeException failure;
        /** Per copy: {runs, source-side ranges, destination-side ranges, bytes} (CopyBatch#contiguousRanges). */
        final List<long[]> shapes = new CopyOnWriteArrayList<>();

        @Override
        public String name() {
            return "host";
        }

        @Override
        public void copy(MemorySegment[] srcs, MemorySegment[] dsts, CopyBatch batch) {
            threads.add(Thread.currentThread().getName());
            calls.incrementAndGet();
            shapes.add(new long[] {
                batch.runCount(), batch.contiguousRanges(true), batch.contiguousRanges(false), batch.totalBytes()
            });
            if (gated) {
                entered.countDown();
                try {
                    if (!release.await(20, TimeUnit.SECONDS)) {
                        throw new IllegalStateException("the test never released the copy");
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException(e);
                }
            }
            RuntimeException f = failure;
            if (f != null) {
                throw f;
            }
            host.copy(srcs, dsts, batch);
        }
    }

    /** Maps real files, counting mappings and unmappings per path and recording the mapping threads. */
    static final class CountingMapper implements SharedMemoryMapper {
        final Map<String, AtomicInteger> maps = new ConcurrentHashMap<>();
        final Map<String, AtomicInteger> unmaps = new ConcurrentHashMap<>();
        final List<String> threads = new CopyOnWriteArrayList<>();
        volatile CountDownLatch gate;
        final CountDownLatch entered = new CountDownLatch(1);
        /** When set, unmapping waits for it. */
        volatile CountDownLatch closeGate;

        final CountDownLatch closeEntered = new CountDownLatch(1);

        @Override
        public MappedRegion map(Path root, Path path) throws IOException {
            threads.add(Thread.currentThread().getName());
            CountDownLatch g = gate;
            if (g != null) {
                entered.countDown();
                try {
                    g.await(20, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            MappedRegion real = SharedMemoryMapper.FILES.map(root, path);
            maps.computeIfAbsent(path.toString(), p -> new AtomicInteger()).incrementAndGet();
            return new MappedRegion() {
                @Override
                public MemorySegment memory() {
                    return real.memory();
                }

                @Override
                public String description() {
                    return real.description();
                }

                @Override
                public String damage() {
                    return real.damage();
                }

                @Override
                public void close() {
                    CountDownLatch g = closeGate;
                    if (g != null) {
                        closeEntered.countDown();
                        try {
                            g.await(20, TimeUnit.SECONDS);
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        }
                    }
                    unmaps.computeIfAbsent(path.toString(), p -> new AtomicInteger())
                            .incrementAndGet();
                    real.close();
                }
            };
        }

        int mapped(Path path) {
            AtomicInteger n = maps.get(path.toString());
            return n == null ? 0 : n.get();
        }

        int unmapped(Path path) {
            AtomicInteger n = unmaps.get(path.toString());
            return n == null ? 0 : n.get();
        }
    }

    /** Records the refusals and the call phases the engine reports. */
    static final class RecordingListener implements EngineListener {
        final List<String> rejected = new CopyOnWriteArrayList<>();
        final List<CallPhase> phases = new CopyOnWriteArrayList<>();

        @Override
        public void phase(CallPhase phase, long durationNs) {
            if (durationNs >= 0) {
                phases.add(phase);
            }
        }

        @Override
        public void saved(long bytes, long durationNs, int blocksStored) {}

        @Override
        public void loaded(long bytes, long durationNs, int blocksLoaded, int blocksFailed) {}

        @Override
        public void contextsChanged(int registered) {}

        @Override
        public void rejected(String op, String reason) {
            rejected.add(op + "/" + reason);
        }
    }
}
