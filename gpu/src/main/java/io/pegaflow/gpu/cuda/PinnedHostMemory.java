package io.pegaflow.gpu.cuda;

import io.pegaflow.gpu.cuda.ffi.CuResult;
import io.pegaflow.gpu.cuda.ffi.CudaDriver;
import io.pegaflow.gpu.cuda.ffi.Libc;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Page-locked host memory that the GPU reads and writes directly (mapped, portable): the node's block pool. The CPU
 * and the GPU see it at the same address (unified addressing; checked at allocation).
 *
 * <p>{@link Strategy#REGISTER} (default) maps anonymous memory (hugetlb pages when enough are free, else
 * transparent huge pages by {@code madvise}), populates it from several threads in parallel
 * ({@code MADV_POPULATE_WRITE}, or touching each page on kernels without it), then pins and maps it for the GPU with
 * one {@code cuMemHostRegister}. {@link Strategy#HOST_ALLOC} is plain {@code cuMemHostAlloc} (single-threaded in
 * the driver: about 9 s for 16 GiB on the project's H100 machine).
 *
 * <p>Thread-safe; {@link #close()} only after every copy into or out of it has finished.
 */
public final class PinnedHostMemory implements AutoCloseable {
    public enum Strategy {
        REGISTER,
        HOST_ALLOC
    }

    private static final long HUGE_PAGE = 2L << 20;
    private static final long TOUCH_CHUNK = 64L << 20;

    private final CudaDevice device;
    private final Strategy strategy;
    private final long address;
    private final long sizeBytes;
    private final long mappedBytes;
    private final long mappingAddress;
    private final boolean hugetlb;
    private final CudaDevice.Region region;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment memory;
    private final String report;
    private boolean closed;

    private PinnedHostMemory(
            CudaDevice device,
            Strategy strategy,
            long address,
            long sizeBytes,
            long mappingAddress,
            long mappedBytes,
            boolean hugetlb,
            String report) {
        this.device = device;
        this.strategy = strategy;
        this.address = address;
        this.sizeBytes = sizeBytes;
        this.mappingAddress = mappingAddress;
        this.mappedBytes = mappedBytes;
        this.hugetlb = hugetlb;
        this.report = report;
        this.region = new CudaDevice.Region(address, sizeBytes, false, "pinned host");
        this.memory = MemorySegment.ofAddress(address).reinterpret(sizeBytes, arena, null);
        device.addRegion(region);
    }

    /**
     * Allocates {@code bytes} (rounded up to 2 MiB) of pinned, device-mapped host memory, zero-filled.
     *
     * @throws CudaException if the driver refuses to pin or map it
     * @throws IllegalStateException if the memory cannot be mapped, or the GPU would see it at another address
     */
    static PinnedHostMemory allocate(CudaDevice device, long bytes, Strategy strategy) {
        if (bytes < 1) {
            throw new IllegalArgumentException("bytes must be positive, got " + bytes);
        }
        long size = (bytes + HUGE_PAGE - 1) & -HUGE_PAGE;
        device.makeCurrent();
        long start = System.nanoTime();
        if (strategy == Strategy.HOST_ALLOC) {
            long address =
                    Cu.memHostAlloc(size, CudaDriver.CU_MEMHOSTALLOC_PORTABLE | CudaDriver.CU_MEMHOSTALLOC_DEVICEMAP);
            checkSameAddress(address, () -> Cu.memFreeHost(address));
            String report = String.format("cuMemHostAlloc %.2f s", (System.nanoTime() - start) / 1e9);
            return new PinnedHostMemory(device, strategy, address, size, 0, 0, false, report);
        }
        boolean hugetlb = freeHugetlbBytes() >= size;
        long mapped = size + (hugetlb ? 0 : HUGE_PAGE);
        long mapping = hugetlb ? mmap(mapped, Libc.MAP_HUGETLB) : 0;
        if (mapping == 0) {
            hugetlb = false;
            mapped = size + HUGE_PAGE;
            mapping = mmap(mapped, 0);
            if (mapping == 0) {
                throw new IllegalStateException("mmap of " + mapped + " bytes failed: " + lastMmapError.get());
            }
        }
        long address = hugetlb ? mapping : (mapping + HUGE_PAGE - 1) & -HUGE_PAGE;
        boolean thp = !hugetlb && madvise(address, size, Libc.MADV_HUGEPAGE) == 0;
        long mappedNs = System.nanoTime();
        int threads = Math.max(1, Math.min(16, Runtime.getRuntime().availableProcessors()));
        try {
            populate(address, size, threads);
        } catch (RuntimeException e) {
            munmap(mapping, mapped);
            throw e;
        }
        long populatedNs = System.nanoTime();
        int rc = Cu.memHostRegister(
                address, size, CudaDriver.CU_MEMHOSTREGISTER_PORTABLE | CudaDriver.CU_MEMHOSTREGISTER_DEVICEMAP);
        if (rc != CuResult.CUDA_SUCCESS) {
            munmap(mapping, mapped);
            throw new CudaException(
                    "cuMemHostRegister_v2",
                    rc,
                    "p=0x" + Long.toHexString(address) + ", bytesize=" + size + ", flags=PORTABLE|DEVICEMAP");
        }
        final long m = mapping;
        final long mb = mapped;
        checkSameAddress(address, () -> {
            Cu.memHostUnregister(address);
            munmap(m, mb);
        });
        long end = System.nanoTime();
        String report = String.format(
                "%s pages, mmap %.2f s, populate %.2f s (%d threads), cuMemHostRegister %.2f s",
                hugetlb ? "hugetlb" : thp ? "transparent huge" : "4 KiB",
                (mappedNs - start) / 1e9,
                (populatedNs - mappedNs) / 1e9,
                threads,
                (end - populatedNs) / 1e9);
        return new PinnedHostMemory(device, strategy, address, size, mapping, mapped, hugetlb, report);
    }

    private static void checkSameAddress(long address, Runnable undo) {
        long devicePointer = Cu.memHostDevicePointer(address);
        if (devicePointer != address) {
            undo.run();
            throw new IllegalStateException("the GPU maps pinned host memory at 0x"
                    + Long.toHexString(devicePointer)
                    + ", not at its host address 0x"
                    + Long.toHexString(address)
                    + " (CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM is 0): not supported");
        }
    }

    /** Populates [address, address+size) from {@code threads} threads, 64 MiB at a time. */
    private static void populate(long address, long size, int threads) {
        AtomicLong next = new AtomicLong();
        ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "pegaflow-pool-populate");
            t.setDaemon(true);
            return t;
        });
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (int i = 0; i < threads; i++) {
                futures.add(pool.submit(() -> {
                    MemorySegment all = MemorySegment.ofAddress(address).reinterpret(size);
                    long offset;
                    while ((offset = next.getAndAdd(TOUCH_CHUNK)) < size) {
                        long n = Math.min(TOUCH_CHUNK, size - offset);
                        if (madvise(address + offset, n, Libc.MADV_POPULATE_WRITE) != 0) {
                            for (long p = 0; p < n; p += 4096) {
                                all.set(ValueLayout.JAVA_BYTE, offset + p, (byte) 0);
                            }
                        }
                    }
                }));
            }
            for (Future<?> f : futures) {
                f.get();
            }
        } catch (Exception e) {
            throw new IllegalStateException("populating the pinned pool failed: " + e, e);
        } finally {
            pool.shutdownNow();
        }
    }

    private static final ThreadLocal<String> lastMmapError = ThreadLocal.withInitial(() -> "");

    private static long mmap(long bytes, int extraFlags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Libc.newCapture(arena);
            MemorySegment p = (MemorySegment) Libc.mmap.invokeExact(
                    capture,
                    MemorySegment.NULL,
                    bytes,
                    Libc.PROT_READ | Libc.PROT_WRITE,
                    Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | extraFlags,
                    -1,
                    0L);
            if (p.address() == Libc.MAP_FAILED) {
                lastMmapError.set(Libc.errnoText(Libc.errno(capture)));
                return 0;
            }
            return p.address();
        } catch (Throwable t) {
            throw Cu.bug("mmap", t);
        }
    }

    private static int madvise(long address, long bytes, int advice) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Libc.newCapture(arena);
            return (int) Libc.madvise.invokeExact(capture, MemorySegment.ofAddress(address), bytes, advice);
        } catch (Throwable t) {
            throw Cu.bug("madvise", t);
        }
    }

    private static void munmap(long address, long bytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Libc.newCapture(arena);
            int rc = (int) Libc.munmap.invokeExact(capture, MemorySegment.ofAddress(address), bytes);
            if (rc != 0) {
                throw new IllegalStateException("munmap failed: " + Libc.errnoText(Libc.errno(capture)));
            }
        } catch (IllegalStateException e) {
            throw e;
        } catch (Throwable t) {
            throw Cu.bug("munmap", t);
        }
    }

    /** HugePages_Free times Hugepagesize from /proc/meminfo; 0 when unreadable. */
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
            return pageKb == 2048 ? free * pageKb * 1024 : 0;
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }

    /** The memory, CPU-accessible, and at the same address device-visible. */
    public MemorySegment memory() {
        return memory;
    }

    public long sizeBytes() {
        return sizeBytes;
    }

    public Strategy strategy() {
        return strategy;
    }

    /** How the allocation went, for the start-up log: page kind and the time of each step. */
    public String report() {
        return report;
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        device.removeRegion(region);
        arena.close();
        device.makeCurrent();
        if (strategy == Strategy.HOST_ALLOC) {
            Cu.check(Cu.memFreeHost(address), "cuMemFreeHost", "p=0x" + Long.toHexString(address));
        } else {
            Cu.check(Cu.memHostUnregister(address), "cuMemHostUnregister", "p=0x" + Long.toHexString(address));
            munmap(mappingAddress, mappedBytes);
        }
    }
}
