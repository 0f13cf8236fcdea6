package io.pegaflow.store.memory;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A large zero-filled region of anonymous host memory for the block pool, mapped for a fast start: with huge pages
 * asked for, hugetlb pages when enough are free, else transparent huge pages ({@code madvise(MADV_HUGEPAGE)}, on a 2
 * MiB-aligned start); without, ordinary 4 KiB pages ({@code MADV_NOHUGEPAGE}). Then it is populated from several
 * threads at once ({@code MADV_POPULATE_WRITE}, or writing one byte per 4 KiB page on kernels
 * without it), so that no page fault is left for the data path. A GPU (gpu's {@code CudaDevice.registerHost}) or a NIC
 * can then register it.
 *
 * <p>Thread-safe. {@link #close()} unmaps it: call it only after every user (copies, registrations) is done with it;
 * the {@link #memory()} segment stops being accessible then.
 */
public final class HostMemory implements AutoCloseable {
    private static final System.Logger log = System.getLogger(HostMemory.class.getName());
    /** Sizes are rounded up to this (the huge page size); a transparent-huge-page mapping starts at a multiple of it. */
    public static final long HUGE_PAGE_BYTES = 2L << 20;

    /** Each populate thread takes this much at a time. */
    static final long POPULATE_CHUNK_BYTES = 64L << 20;

    private static final long SMALL_PAGE_BYTES = 4096;

    /** What backs the memory. */
    public enum Pages {
        /** Reserved huge pages ({@code MAP_HUGETLB}, from {@code /proc/sys/vm/nr_hugepages}). */
        HUGETLB,
        /** Ordinary memory with {@code MADV_HUGEPAGE} accepted: the kernel backs it with 2 MiB pages where it can. */
        TRANSPARENT_HUGE,
        /** Ordinary 4 KiB pages: huge pages not asked for, or {@code MADV_HUGEPAGE} refused (THP disabled). */
        SMALL
    }

    /** How the pages were populated. */
    public enum Populate {
        /** {@code madvise(MADV_POPULATE_WRITE)}, Linux 5.14 and later. */
        MADVISE,
        /** One write per 4 KiB page (the kernel lacks {@code MADV_POPULATE_WRITE}). */
        TOUCH
    }

    private final long mappingAddress;
    private final long mappingBytes;
    private final long sizeBytes;
    private final boolean hugePagesAsked;
    private final Pages pages;
    private final Populate populate;
    private final int populateThreads;
    private final long mapNs;
    private final long populateNs;
    private final long sinkTailNs;
    private final int sinkChunks;
    private final String bound;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment memory;
    private boolean closed;

    private HostMemory(
            long mappingAddress,
            long mappingBytes,
            long address,
            long sizeBytes,
            boolean hugePagesAsked,
            Pages pages,
            Populate populate,
            int populateThreads,
            long mapNs,
            long populateNs,
            long sinkTailNs,
            int sinkChunks,
            String bound) {
        this.bound = bound;
        this.sinkTailNs = sinkTailNs;
        this.sinkChunks = sinkChunks;
        this.mappingAddress = mappingAddress;
        this.mappingBytes = mappingBytes;
        this.sizeBytes = sizeBytes;
        this.hugePagesAsked = hugePagesAsked;
        this.pages = pages;
        this.populate = populate;
        this.populateThreads = populateThreads;
        this.mapNs = mapNs;
        this.populateNs = populateNs;
        this.memory = MemorySegment.ofAddress(address).reinterpret(sizeBytes, arena, null);
    }

    /**
     * The default number of populate threads: the available processors, at most 64 (a fresh VM's memory comes in
     * faster from more threads; 16 cores populate 30 GiB in about 1.6 s on the H200 machine).
     */
    public static int defaultPopulateThreads() {
        return Math.clamp(Runtime.getRuntime().availableProcessors(), 1, MAX_DEFAULT_POPULATE_THREADS);
    }

    static final int MAX_DEFAULT_POPULATE_THREADS = 64;

    /**
     * Told of each chunk of the region as soon as it is populated, so that pinning it for a GPU or a NIC overlaps
     * populating the rest. Chunks end at address multiples of {@link #chunkBytes()} (or at the region's ends) and are
     * handed over on {@link #threads()} threads of their own ({@code pegaflow-host-register-N}), roughly in address
     * order.
     */
    public interface ChunkSink {
        /** A positive multiple of {@link HostMemory#POPULATE_CHUNK_BYTES}. */
        long chunkBytes();

        /** How many chunks may be handed over at once, at least 1. */
        int threads();

        /**
         * [offset, offset + length) of the region is populated. A throw stops populating and fails the allocation,
         * which then calls {@link #abandon()} before unmapping.
         */
        void populated(MemorySegment region, long offset, long length);

        /** The allocation failed after some chunks were handed over: undo what {@link #populated} did. */
        void abandon();
    }

    /** {@link #allocate(long, int, boolean)} with {@link #defaultPopulateThreads()} and huge pages. */
    public static HostMemory allocate(long bytes) {
        return allocate(bytes, defaultPopulateThreads(), true);
    }

    /** {@link #allocate(long, int, boolean)} with huge pages. */
    public static HostMemory allocate(long bytes, int populateThreads) {
        return allocate(bytes, populateThreads, true);
    }

    /**
     * Maps and populates {@code bytes} rounded up to {@link #HUGE_PAGE_BYTES}, zero-filled.
     *
     * <p>Huge pages cut TLB misses and the work of pinning the memory for a GPU or a NIC. Their first population in a
     * process can cost more than 4 KiB pages where fresh memory is slow to come by (the 2-core dev VM: 2 GiB in
     * 2.9-4.1 s against 0.6-1.6 s, bench/results/block-pool-jmh.md), so a caller that registers nothing may prefer
     * {@code hugePages = false}.
     *
     * @param bytes at least 1
     * @param populateThreads in [1, 256]
     * @param hugePages try hugetlb, then transparent huge pages; false: 4 KiB pages
     * @throws IllegalArgumentException for a size or thread count out of range
     * @throws IllegalStateException naming the call and errno when the memory cannot be mapped or populated (nothing
     *     stays mapped then)
     */
    public static HostMemory allocate(long bytes, int populateThreads, boolean hugePages) {
        return allocate(bytes, populateThreads, hugePages, null);
    }

    /**
     * {@link #allocate(long, int, boolean)}, handing each populated chunk to {@code sink} (null: none) while the rest
     * is populated; returns once every chunk was handed over. {@link #report()} then also names the sink's time.
     */
    public static HostMemory allocate(long bytes, int populateThreads, boolean hugePages, ChunkSink sink) {
        return allocate(bytes, populateThreads, hugePages, sink, List.of());
    }

    /**
     * A part of the region to bind to one NUMA node before it is populated.
     *
     * @param offset where it starts in the region (rounded down to {@link #HUGE_PAGE_BYTES} when bound)
     * @param length how far it runs (its end is rounded down the same way, the region's end excepted)
     */
    public record NodeRange(long offset, long length, int node) {
        public NodeRange {
            if (offset < 0 || length < 1 || node < 0) {
                throw new IllegalArgumentException(
                        "NUMA range [" + offset + ", +" + length + ") on node " + node + ": out of range");
            }
        }
    }

    /**
     * {@link #allocate(long, int, boolean, ChunkSink)}, with each of {@code ranges} bound to its NUMA node ({@link
     * Numa#bind}, {@code MPOL_BIND}) after mapping and before populating, so that its pages come from that node. A
     * range whose node this host does not have is left unbound, with a warning in the log and in {@link #report()}.
     *
     * @throws IllegalStateException when the kernel refuses a binding (nothing stays mapped then)
     */
    public static HostMemory allocate(
            long bytes, int populateThreads, boolean hugePages, ChunkSink sink, List<NodeRange> ranges) {
        if (bytes < 1 || bytes > Long.MAX_VALUE - 2 * HUGE_PAGE_BYTES) {
            throw new IllegalArgumentException(
                    "bytes " + bytes + " must be in [1, " + (Long.MAX_VALUE - 2 * HUGE_PAGE_BYTES) + "]");
        }
        if (populateThreads < 1 || populateThreads > 256) {
            throw new IllegalArgumentException("populateThreads " + populateThreads + " must be in [1, 256]");
        }
        if (sink != null
                && (sink.chunkBytes() < POPULATE_CHUNK_BYTES
                        || sink.chunkBytes() % POPULATE_CHUNK_BYTES != 0
                        || sink.threads() < 1)) {
            throw new IllegalArgumentException("the sink's chunks (" + sink.chunkBytes() + " bytes, " + sink.threads()
                    + " threads) must be a positive multiple of " + POPULATE_CHUNK_BYTES + " bytes on 1+ threads");
        }
        long size = (bytes + HUGE_PAGE_BYTES - 1) & -HUGE_PAGE_BYTES;
        long align = sink == null ? HUGE_PAGE_BYTES : Math.max(HUGE_PAGE_BYTES, sink.chunkBytes());
        long start = System.nanoTime();
        Pages pages = Pages.HUGETLB;
        long mappingBytes = size;
        Libc.Result mapped =
                hugePages && freeHugetlbBytes() >= size ? Libc.mmapAnonymous(size, Libc.MAP_HUGETLB) : null;
        if (mapped == null || mapped.failed()) {
            // One alignment unit more than needed, so that an aligned start fits inside (address space only: the
            // slack is never touched). With a sink the start is aligned to its chunks, so pool slabs that divide a
            // chunk never straddle two of them.
            mappingBytes = size + align;
            mapped = Libc.mmapAnonymous(mappingBytes, 0);
            if (mapped.failed()) {
                throw new IllegalStateException("mmap of " + mappingBytes + " bytes (anonymous, private) failed: "
                        + Libc.errnoText(mapped.errno()));
            }
            pages = Pages.SMALL;
        }
        long mapping = mapped.value();
        long address = pages == Pages.HUGETLB ? mapping : (mapping + align - 1) / align * align;
        if (!hugePages) {
            Libc.madvise(address, size, Libc.MADV_NOHUGEPAGE); // also where THP is "always"; a refusal changes nothing
        } else if (pages == Pages.SMALL
                && !Libc.madvise(address, size, Libc.MADV_HUGEPAGE).failed()) {
            pages = Pages.TRANSPARENT_HUGE;
        }
        long mappedAt = System.nanoTime();
        Populate how;
        Populator populator = null;
        String bound;
        try {
            bound = bind(address, size, ranges);
        } catch (RuntimeException | Error e) {
            Libc.munmap(mapping, mappingBytes);
            throw e;
        }
        try {
            populator = new Populator(address, size, sink);
            how = populator.run(populateThreads);
        } catch (RuntimeException | Error e) {
            if (sink != null) {
                try {
                    sink.abandon();
                } catch (RuntimeException | Error suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            Libc.munmap(mapping, mappingBytes);
            throw e;
        }
        long populatedAt = populator.populatedAt;
        return new HostMemory(
                mapping,
                mappingBytes,
                address,
                size,
                hugePages,
                pages,
                how,
                populateThreads,
                mappedAt - start,
                populatedAt - mappedAt,
                sink == null ? 0 : populator.sinkDoneAt - populatedAt,
                sink == null ? 0 : populator.chunks,
                bound);
    }

    /** Binds each range (boundaries on huge pages, so hugetlb mappings take it too); returns what it did, for the report. */
    private static String bind(long address, long size, List<NodeRange> ranges) {
        List<String> done = new ArrayList<>();
        for (NodeRange r : ranges) {
            long from = Math.min(r.offset() & -HUGE_PAGE_BYTES, size);
            long end = r.offset() + r.length() >= size ? size : (r.offset() + r.length()) & -HUGE_PAGE_BYTES;
            if (end <= from) {
                continue;
            }
            String what = String.format("[%d MiB, %d MiB) on NUMA node %d", from >> 20, end >> 20, r.node());
            if (!Numa.nodeExists(r.node())) {
                log.log(
                        System.Logger.Level.WARNING,
                        "host memory " + what + ": this host has no NUMA node " + r.node()
                                + " (/sys/devices/system/node); left unbound");
                done.add(what + " left unbound (no such node)");
                continue;
            }
            Numa.bind(address + from, end - from, r.node());
            done.add(what + " bound");
        }
        return done.isEmpty() ? "" : ", " + String.join(", ", done);
    }

    /**
     * Populates [address, address + size) from several threads, {@link #POPULATE_CHUNK_BYTES} at a time on a grid of
     * address multiples (so that the sink's chunks, also on such a grid, are made of whole pieces), taken in address
     * order. The thread that finishes a sink chunk's last piece hands the chunk to the sink's executor.
     */
    private static final class Populator {
        private final long address;
        private final long size;
        private final ChunkSink sink;
        private final long firstPiece; // index of the grid piece holding the first byte
        private final long pieces;
        private final AtomicLong next = new AtomicLong();
        private final AtomicBoolean touched = new AtomicBoolean();
        private final AtomicBoolean failed = new AtomicBoolean();
        private final long firstChunk;
        private final int chunks;
        private final AtomicInteger[] piecesLeft;
        private final List<Future<?>> handed = java.util.Collections.synchronizedList(new ArrayList<>());
        private ExecutorService sinkExecutor;
        volatile long populatedAt;
        volatile long sinkDoneAt;

        Populator(long address, long size, ChunkSink sink) {
            this.address = address;
            this.size = size;
            this.sink = sink;
            this.firstPiece = address / POPULATE_CHUNK_BYTES;
            this.pieces = (address + size - 1) / POPULATE_CHUNK_BYTES - firstPiece + 1;
            if (sink != null) {
                long chunkBytes = sink.chunkBytes();
                firstChunk = address / chunkBytes;
                chunks = (int) ((address + size - 1) / chunkBytes - firstChunk + 1);
                piecesLeft = new AtomicInteger[chunks];
                long perChunk = chunkBytes / POPULATE_CHUNK_BYTES;
                for (int c = 0; c < chunks; c++) {
                    long lo = Math.max(firstPiece, (firstChunk + c) * perChunk);
                    long hi = Math.min(firstPiece + pieces, (firstChunk + c + 1) * perChunk);
                    piecesLeft[c] = new AtomicInteger((int) (hi - lo));
                }
            } else {
                firstChunk = 0;
                chunks = 0;
                piecesLeft = null;
            }
        }

        Populate run(int threads) {
            int workers = (int) Math.min(threads, pieces);
            ExecutorService executor = Executors.newFixedThreadPool(workers, named("pegaflow-host-populate-"));
            if (sink != null) {
                sinkExecutor = Executors.newFixedThreadPool(sink.threads(), named("pegaflow-host-register-"));
            }
            try {
                List<Future<?>> futures = new ArrayList<>();
                for (int i = 0; i < workers; i++) {
                    futures.add(executor.submit(this::populatePieces));
                }
                for (Future<?> f : futures) {
                    await(f, "populating host memory");
                }
                populatedAt = System.nanoTime();
                if (sink != null) {
                    // Every chunk was handed over by now (its last piece is done); wait for the sink to take them.
                    Future<?>[] all = handed.toArray(Future<?>[]::new);
                    for (Future<?> f : all) {
                        await(f, "handing a populated chunk over");
                    }
                    sinkDoneAt = System.nanoTime();
                }
            } finally {
                failed.set(true); // stops workers still running after a failure
                executor.shutdownNow();
                if (sinkExecutor != null) {
                    sinkExecutor.shutdown();
                    try {
                        // A sink call in flight must end before the caller abandons or unmaps.
                        while (!sinkExecutor.awaitTermination(10, java.util.concurrent.TimeUnit.SECONDS)) {
                            // keep waiting: unmapping under a registration in flight is worse than a slow failure
                        }
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            }
            return touched.get() ? Populate.TOUCH : Populate.MADVISE;
        }

        private static java.util.concurrent.ThreadFactory named(String prefix) {
            AtomicInteger names = new AtomicInteger();
            return r -> {
                Thread t = new Thread(r, prefix + names.incrementAndGet());
                t.setDaemon(true);
                return t;
            };
        }

        private static void await(Future<?> f, String what) {
            try {
                f.get();
            } catch (ExecutionException e) {
                Throwable cause = e.getCause();
                if (cause instanceof RuntimeException r) {
                    throw r;
                }
                if (cause instanceof Error err) {
                    throw err;
                }
                throw new IllegalStateException(what + " failed: " + cause, cause);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while " + what, e);
            }
        }

        private void populatePieces() {
            MemorySegment all = MemorySegment.ofAddress(address).reinterpret(size);
            long k;
            while (!failed.get() && (k = next.getAndIncrement()) < pieces) {
                long pieceStart = Math.max(address, (firstPiece + k) * POPULATE_CHUNK_BYTES);
                long pieceEnd = Math.min(address + size, (firstPiece + k + 1) * POPULATE_CHUNK_BYTES);
                long offset = pieceStart - address;
                long n = pieceEnd - pieceStart;
                populateOne(all, offset, n);
                if (sink != null) {
                    int c = (int) (pieceStart / sink.chunkBytes() - firstChunk);
                    if (piecesLeft[c].decrementAndGet() == 0) {
                        handOver(all, c);
                    }
                }
            }
        }

        private void handOver(MemorySegment all, int c) {
            long chunkBytes = sink.chunkBytes();
            long lo = Math.max(address, (firstChunk + c) * chunkBytes);
            long hi = Math.min(address + size, (firstChunk + c + 1) * chunkBytes);
            handed.add(sinkExecutor.submit(() -> {
                if (failed.get()) {
                    return;
                }
                try {
                    sink.populated(all, lo - address, hi - lo);
                } catch (RuntimeException | Error e) {
                    failed.set(true);
                    throw e;
                }
            }));
        }

        private void populateOne(MemorySegment all, long offset, long n) {
            Libc.Result r = touched.get() ? null : Libc.madvise(address + offset, n, Libc.MADV_POPULATE_WRITE);
            if (r != null && !r.failed()) {
                return;
            }
            if (r != null && r.errno() != EINVAL) {
                throw new IllegalStateException("madvise(MADV_POPULATE_WRITE) of " + n + " bytes at 0x"
                        + Long.toHexString(address + offset) + " failed: " + Libc.errnoText(r.errno()));
            }
            touched.set(true); // the kernel does not know the advice: write one byte per page instead
            for (long p = 0; p < n; p += SMALL_PAGE_BYTES) {
                all.set(ValueLayout.JAVA_BYTE, offset + p, (byte) 0);
            }
        }
    }

    private static final int EINVAL = 22;

    /** HugePages_Free times Hugepagesize from /proc/meminfo when the huge page size is 2 MiB; else 0. */
    static long freeHugetlbBytes() {
        try {
            long free = 0;
            long pageKb = 0;
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                String[] f = line.split("\\s+");
                if (line.startsWith("HugePages_Free:")) {
                    free = Long.parseLong(f[1]);
                } else if (line.startsWith("Hugepagesize:")) {
                    pageKb = Long.parseLong(f[1]);
                }
            }
            return pageKb * 1024 == HUGE_PAGE_BYTES ? free * HUGE_PAGE_BYTES : 0;
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }

    /** The whole region, {@link #sizeBytes()} long, starting at a multiple of {@link #HUGE_PAGE_BYTES}. */
    public MemorySegment memory() {
        return memory;
    }

    public long sizeBytes() {
        return sizeBytes;
    }

    public Pages pages() {
        return pages;
    }

    public Populate populateMethod() {
        return populate;
    }

    public int populateThreads() {
        return populateThreads;
    }

    /** How long populating took. */
    public long populateNs() {
        return populateNs;
    }

    /** How long mapping took. */
    public long mapNs() {
        return mapNs;
    }

    /** How long after populating ended the sink took its last chunk (0 without a sink). */
    public long sinkTailNs() {
        return sinkTailNs;
    }

    /** Chunks handed to the sink (0 without a sink). */
    public int sinkChunks() {
        return sinkChunks;
    }

    /**
     * What was done, for the start-up log, e.g. {@code "transparent huge pages, mmap 0.00 s, populate 1.92 s
     * (MADV_POPULATE_WRITE, 16 threads)"}.
     */
    public String report() {
        String kind = switch (pages) {
            case HUGETLB -> "hugetlb pages";
            case TRANSPARENT_HUGE -> "transparent huge pages";
            case SMALL -> hugePagesAsked ? "4 KiB pages (MADV_HUGEPAGE refused)" : "4 KiB pages (asked for)";
        };
        return String.format(
                        "%s, mmap %.2f s, populate %.2f s (%s, %d thread%s)",
                        kind,
                        mapNs / 1e9,
                        populateNs / 1e9,
                        populate == Populate.MADVISE ? "MADV_POPULATE_WRITE" : "touching each page",
                        populateThreads,
                        populateThreads == 1 ? "" : "s")
                + (sinkChunks == 0
                        ? ""
                        : String.format(
                                ", %d chunks handed over while populating, the last done %.2f s after populate",
                                sinkChunks, sinkTailNs / 1e9))
                + bound;
    }

    /**
     * Unmaps the memory; {@link #memory()} is inaccessible afterwards. Idempotent.
     *
     * @throws IllegalStateException if {@code munmap} fails (errno in the message) or the segment is in use by a
     *     native call at that moment
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        arena.close();
        closed = true;
        Libc.Result r = Libc.munmap(mappingAddress, mappingBytes);
        if (r.failed()) {
            throw new IllegalStateException("munmap of " + mappingBytes + " bytes at 0x"
                    + Long.toHexString(mappingAddress) + " failed: " + Libc.errnoText(r.errno()));
        }
    }

    @Override
    public String toString() {
        return "HostMemory[" + sizeBytes + " bytes, " + report() + "]";
    }
}
