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
            long populateNs) {
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

    /** The default number of populate threads: the available processors, at most 16. */
    public static int defaultPopulateThreads() {
        return Math.clamp(Runtime.getRuntime().availableProcessors(), 1, 16);
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
        if (bytes < 1 || bytes > Long.MAX_VALUE - 2 * HUGE_PAGE_BYTES) {
            throw new IllegalArgumentException(
                    "bytes " + bytes + " must be in [1, " + (Long.MAX_VALUE - 2 * HUGE_PAGE_BYTES) + "]");
        }
        if (populateThreads < 1 || populateThreads > 256) {
            throw new IllegalArgumentException("populateThreads " + populateThreads + " must be in [1, 256]");
        }
        long size = (bytes + HUGE_PAGE_BYTES - 1) & -HUGE_PAGE_BYTES;
        long start = System.nanoTime();
        Pages pages = Pages.HUGETLB;
        long mappingBytes = size;
        Libc.Result mapped =
                hugePages && freeHugetlbBytes() >= size ? Libc.mmapAnonymous(size, Libc.MAP_HUGETLB) : null;
        if (mapped == null || mapped.failed()) {
            // One huge page more than needed, so that a 2 MiB-aligned start fits inside.
            mappingBytes = size + HUGE_PAGE_BYTES;
            mapped = Libc.mmapAnonymous(mappingBytes, 0);
            if (mapped.failed()) {
                throw new IllegalStateException("mmap of " + mappingBytes + " bytes (anonymous, private) failed: "
                        + Libc.errnoText(mapped.errno()));
            }
            pages = Pages.SMALL;
        }
        long mapping = mapped.value();
        long address = pages == Pages.HUGETLB ? mapping : (mapping + HUGE_PAGE_BYTES - 1) & -HUGE_PAGE_BYTES;
        if (!hugePages) {
            Libc.madvise(address, size, Libc.MADV_NOHUGEPAGE); // also where THP is "always"; a refusal changes nothing
        } else if (pages == Pages.SMALL
                && !Libc.madvise(address, size, Libc.MADV_HUGEPAGE).failed()) {
            pages = Pages.TRANSPARENT_HUGE;
        }
        long mappedAt = System.nanoTime();
        Populate how;
        try {
            how = populate(address, size, populateThreads);
        } catch (RuntimeException | Error e) {
            Libc.munmap(mapping, mappingBytes);
            throw e;
        }
        long populatedAt = System.nanoTime();
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
                populatedAt - mappedAt);
    }

    /** Populates [address, address + size) from {@code threads} threads, {@link #POPULATE_CHUNK_BYTES} at a time. */
    private static Populate populate(long address, long size, int threads) {
        AtomicLong next = new AtomicLong();
        AtomicBoolean touched = new AtomicBoolean();
        AtomicInteger names = new AtomicInteger();
        int workers = (int) Math.min(threads, (size + POPULATE_CHUNK_BYTES - 1) / POPULATE_CHUNK_BYTES);
        ExecutorService executor = Executors.newFixedThreadPool(workers, r -> {
            Thread t = new Thread(r, "pegaflow-host-populate-" + names.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (int i = 0; i < workers; i++) {
                futures.add(executor.submit(() -> populateChunks(address, size, next, touched)));
            }
            for (Future<?> f : futures) {
                f.get();
            }
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof RuntimeException r) {
                throw r;
            }
            throw new IllegalStateException("populating host memory failed: " + cause, cause);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while populating host memory", e);
        } finally {
            executor.shutdownNow();
        }
        return touched.get() ? Populate.TOUCH : Populate.MADVISE;
    }

    private static void populateChunks(long address, long size, AtomicLong next, AtomicBoolean touched) {
        MemorySegment all = MemorySegment.ofAddress(address).reinterpret(size);
        long offset;
        while ((offset = next.getAndAdd(POPULATE_CHUNK_BYTES)) < size) {
            long n = Math.min(POPULATE_CHUNK_BYTES, size - offset);
            Libc.Result r = touched.get() ? null : Libc.madvise(address + offset, n, Libc.MADV_POPULATE_WRITE);
            if (r != null && !r.failed()) {
                continue;
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
                populateThreads == 1 ? "" : "s");
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
