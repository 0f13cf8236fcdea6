package io.pegaflow.gpu.cuda;

import io.pegaflow.gpu.cuda.ffi.CuResult;
import io.pegaflow.gpu.cuda.ffi.CudaDriver;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;

/**
 * Pins a large host region for the GPU chunk by chunk ({@code cuMemHostRegister(PORTABLE | DEVICEMAP)} per chunk),
 * so that registering overlaps populating: the pool's owner calls {@link #register} for each chunk as soon as it is
 * populated, from any thread, while other threads still populate later chunks. {@link #finish()} turns the chunks into
 * one {@link PinnedHostMemory} (closing it unregisters every chunk); {@link #abandon()} unregisters what was
 * registered when the start fails.
 *
 * <p>Why it is correct: chunks tile the region without overlap, each is pinned and mapped at its own host address,
 * so the GPU sees the whole region at its host addresses as one registration would show it. The staged copy never
 * merges a DMA across a chunk boundary ({@link #BOUNDARY_BYTES}), so each DMA stays inside one registration.
 *
 * <p>Thread-safe: {@link #register} may run on several threads at once; {@link #finish()} and {@link #abandon()}
 * after every {@link #register} has returned.
 */
public final class ChunkedHostRegistration {
    /**
     * Chunks start at multiples of this in the address space (the first chunk may be shorter); the staged copy splits
     * its DMAs here. 256 MiB: a multiple of the pool's huge pages and of its largest default slab.
     */
    public static final long BOUNDARY_BYTES = 256L << 20;

    private final CudaDevice device;
    private final long address;
    private final long sizeBytes;
    private final long[] starts;
    private final long[] lengths;
    private final AtomicInteger count = new AtomicInteger();
    private final LongAdder registerNs = new LongAdder();
    private volatile boolean done;

    private ChunkedHostRegistration(CudaDevice device, long address, long sizeBytes, int maxChunks) {
        this.device = device;
        this.address = address;
        this.sizeBytes = sizeBytes;
        this.starts = new long[maxChunks];
        this.lengths = new long[maxChunks];
    }

    /**
     * @param memory a native, page-aligned segment that outlives the registration
     * @param chunkBytes a positive multiple of {@link #BOUNDARY_BYTES}: the caller's chunks end at address multiples
     *     of it (or at the region's ends), so no chunk crosses a {@link #BOUNDARY_BYTES} multiple inside
     * @throws IllegalArgumentException for a heap or empty segment or a bad chunk size
     */
    public static ChunkedHostRegistration begin(CudaDevice device, MemorySegment memory, long chunkBytes) {
        Objects.requireNonNull(device, "device");
        if (!memory.isNative() || memory.byteSize() < 1) {
            throw new IllegalArgumentException("memory must be a native, non-empty segment");
        }
        if (chunkBytes < BOUNDARY_BYTES || chunkBytes % BOUNDARY_BYTES != 0) {
            throw new IllegalArgumentException(
                    "chunkBytes " + chunkBytes + " must be a positive multiple of " + BOUNDARY_BYTES);
        }
        long maxChunks = memory.byteSize() / chunkBytes + 2;
        return new ChunkedHostRegistration(
                device, memory.address(), memory.byteSize(), (int) Math.min(Integer.MAX_VALUE - 8, maxChunks));
    }

    /**
     * Pins and maps [offset, offset + length) of the region. Chunks must not overlap.
     *
     * @throws IllegalArgumentException for a range outside the region
     * @throws CudaException if the driver refuses
     * @throws IllegalStateException if the GPU would see the chunk at another address
     */
    public void register(long offset, long length) {
        if (done) {
            throw new IllegalStateException("the registration is finished or abandoned");
        }
        if (offset < 0 || length < 1 || offset > sizeBytes - length) {
            throw new IllegalArgumentException(
                    "chunk [" + offset + ", +" + length + ") is outside a region of " + sizeBytes + " bytes");
        }
        long start = address + offset;
        device.makeCurrent();
        long t0 = System.nanoTime();
        int rc = Cu.memHostRegister(
                start, length, CudaDriver.CU_MEMHOSTREGISTER_PORTABLE | CudaDriver.CU_MEMHOSTREGISTER_DEVICEMAP);
        if (rc != CuResult.CUDA_SUCCESS) {
            throw new CudaException(
                    "cuMemHostRegister_v2",
                    rc,
                    "p=0x" + Long.toHexString(start) + ", bytesize=" + length + ", flags=PORTABLE|DEVICEMAP");
        }
        PinnedHostMemory.checkSameAddress(start, () -> Cu.memHostUnregister(start));
        registerNs.add(System.nanoTime() - t0);
        int slot = count.getAndIncrement();
        starts[slot] = start;
        lengths[slot] = length;
    }

    /** Time spent inside {@code cuMemHostRegister}, summed over chunks and threads. */
    public long registerNs() {
        return registerNs.sum();
    }

    /**
     * The whole region, pinned.
     *
     * @throws IllegalStateException if the registered chunks do not cover the region exactly (then they are
     *     unregistered)
     */
    public PinnedHostMemory finish(String report) {
        done = true;
        int n = count.get();
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Long.compare(starts[a], starts[b]));
        long expected = address;
        long[] sorted = new long[n];
        for (int i = 0; i < n; i++) {
            int c = order[i];
            if (starts[c] != expected) {
                abandon();
                throw new IllegalStateException("registered chunks leave a gap or overlap at 0x"
                        + Long.toHexString(expected) + " (next chunk at 0x" + Long.toHexString(starts[c]) + ")");
            }
            expected += lengths[c];
            sorted[i] = starts[c];
        }
        if (expected != address + sizeBytes) {
            abandon();
            throw new IllegalStateException("registered chunks end at 0x" + Long.toHexString(expected)
                    + ", the region at 0x" + Long.toHexString(address + sizeBytes));
        }
        return new PinnedHostMemory(device, PinnedHostMemory.Strategy.REGISTER, address, sizeBytes, report, sorted);
    }

    /** Unregisters every chunk registered so far (a start that failed). Idempotent. */
    public synchronized void abandon() {
        done = true;
        int n = count.getAndSet(0);
        device.makeCurrent();
        for (int i = 0; i < n; i++) {
            Cu.memHostUnregister(starts[i]);
        }
    }
}
