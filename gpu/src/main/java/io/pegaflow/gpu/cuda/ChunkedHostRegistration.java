package io.pegaflow.gpu.cuda;

import io.pegaflow.gpu.cuda.ffi.CuResult;
import io.pegaflow.gpu.cuda.ffi.CudaDriver;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.atomic.LongAdder;

/**
 * Pins a large host region for the GPU chunk by chunk ({@code cuMemHostRegister(PORTABLE | DEVICEMAP)} per chunk),
 * so that registering overlaps populating: the pool's owner calls {@link #register} for each chunk as soon as it is
 * populated, from any thread, while other threads still populate later chunks. {@link #finish} turns the chunks into
 * one {@link PinnedHostMemory} (closing it unregisters every chunk); {@link #abandon()} unregisters what was
 * registered when the start fails.
 *
 * <p>Why it is correct: chunks tile the region without overlap, each is pinned and mapped at its own host address,
 * so the GPU sees the whole region at its host addresses as one registration would show it. The staged copy never
 * merges a DMA across a chunk boundary ({@link #BOUNDARY_BYTES}), so each DMA stays inside one registration.
 *
 * <p>Thread-safe: {@link #register} may run on several threads at once; {@link #finish} and {@link #abandon()}
 * after every {@link #register} has returned.
 */
public final class ChunkedHostRegistration {
    /**
     * Chunks start at multiples of this in the address space (the first chunk may be shorter); the staged copy splits
     * its DMAs here. 256 MiB: a multiple of the pool's huge pages and of its largest default slab.
     */
    public static final long BOUNDARY_BYTES = 256L << 20;

    private final CudaDevice device;
    private final List<long[]> chunks = new ArrayList<>(); // {start address, length}; guarded by this
    private final LongAdder registerNs = new LongAdder();
    private volatile boolean done;

    /** A registration with no chunk yet, on {@code device}'s context. */
    public ChunkedHostRegistration(CudaDevice device) {
        this.device = Objects.requireNonNull(device, "device");
    }

    /**
     * Pins and maps [start, start + length) for the GPU. Chunks must not overlap; each should end at an address
     * multiple of {@link #BOUNDARY_BYTES} or at the region's end, so that no chunk boundary falls inside a staged DMA.
     *
     * @throws IllegalArgumentException for an empty range
     * @throws CudaException if the driver refuses
     * @throws IllegalStateException if the GPU would see the chunk at another address, or after finish/abandon
     */
    public void register(long start, long length) {
        if (done) {
            throw new IllegalStateException("the registration is finished or abandoned");
        }
        if (start == 0 || length < 1) {
            throw new IllegalArgumentException("chunk [0x" + Long.toHexString(start) + ", +" + length + ") is empty");
        }
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
        synchronized (this) {
            chunks.add(new long[] {start, length});
        }
    }

    /** Time spent inside {@code cuMemHostRegister}, summed over chunks and threads. */
    public long registerNs() {
        return registerNs.sum();
    }

    /** Chunks registered so far. */
    public synchronized int chunkCount() {
        return chunks.size();
    }

    /**
     * The whole of {@code memory}, pinned: the chunks must tile it exactly.
     *
     * @param report how pinning went, for the start-up log
     * @throws IllegalStateException if the chunks leave a gap, overlap or run past it (then they are unregistered)
     */
    public synchronized PinnedHostMemory finish(MemorySegment memory, String report) {
        done = true;
        List<long[]> sorted = new ArrayList<>(chunks);
        sorted.sort(Comparator.comparingLong(c -> c[0]));
        long expected = memory.address();
        long[] starts = new long[sorted.size()];
        for (int i = 0; i < starts.length; i++) {
            long[] c = sorted.get(i);
            if (c[0] != expected) {
                abandon();
                throw new IllegalStateException("registered chunks leave a gap or overlap at 0x"
                        + Long.toHexString(expected) + " (next chunk at 0x" + Long.toHexString(c[0]) + ")");
            }
            expected += c[1];
            starts[i] = c[0];
        }
        if (starts.length == 0 || expected != memory.address() + memory.byteSize()) {
            abandon();
            throw new IllegalStateException("registered chunks end at 0x" + Long.toHexString(expected)
                    + ", the region at 0x" + Long.toHexString(memory.address() + memory.byteSize()));
        }
        return new PinnedHostMemory(
                device, PinnedHostMemory.Strategy.REGISTER, memory.address(), memory.byteSize(), report, starts);
    }

    /** Unregisters every chunk registered so far (a start that failed). Idempotent. */
    public synchronized void abandon() {
        done = true;
        device.makeCurrent();
        for (long[] c : chunks) {
            Cu.memHostUnregister(c[0]);
        }
        chunks.clear();
    }
}
