package io.pegaflow.gpu.cuda;

import io.pegaflow.gpu.cuda.ffi.CuResult;
import io.pegaflow.gpu.cuda.ffi.CudaDriver;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Page-locked host memory that the GPU reads and writes directly (mapped, portable). The CPU and the GPU see it at the
 * same address (unified addressing; checked when it is pinned).
 *
 * <p>{@link Strategy#REGISTER}: memory that someone else mapped (the node's block pool, mapped and populated in
 * parallel by store's {@code HostMemory}), pinned and mapped for the GPU with one {@code cuMemHostRegister} by
 * {@link CudaDevice#registerHost}; {@link #close()} unregisters it and leaves the memory to its owner, who frees it
 * only after this registration is closed. {@link Strategy#HOST_ALLOC}: plain {@code cuMemHostAlloc}, allocated and
 * freed here (single-threaded in the driver: about 9 s for 16 GiB on the project's H100 machine; fine for small
 * buffers). {@link ChunkedHostRegistration} registers a large region chunk by chunk (one registration per chunk,
 * closed together here) while the rest is still being populated.
 *
 * <p>Registrations are PORTABLE: every CUDA context treats the memory as pinned. {@link #shareWith} enters it in
 * another GPU's registry (after checking that GPU sees it at the same address), so one pool, pinned once, serves the
 * copy engines of every GPU of the host.
 *
 * <p>Thread-safe; {@link #close()} only after every copy into or out of it has finished.
 */
public final class PinnedHostMemory implements AutoCloseable {
    public enum Strategy {
        REGISTER,
        HOST_ALLOC
    }

    private static final long HOST_ALLOC_ROUNDING = 2L << 20;

    private final CudaDevice device;
    private final Strategy strategy;
    private final long address;
    private final long sizeBytes;
    private final CudaDevice.Region region;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment memory;
    private final String report;
    /** REGISTER: the start address of each registration (one, or one per chunk), unregistered by close. */
    private final long[] registrations;

    private final List<CudaDevice> sharedWith = new ArrayList<>();
    private final List<CudaDevice.Region> sharedRegions = new ArrayList<>();
    private boolean closed;

    private PinnedHostMemory(CudaDevice device, Strategy strategy, long address, long sizeBytes, String report) {
        this(device, strategy, address, sizeBytes, report, new long[] {address});
    }

    PinnedHostMemory(
            CudaDevice device, Strategy strategy, long address, long sizeBytes, String report, long[] registrations) {
        this.device = device;
        this.strategy = strategy;
        this.address = address;
        this.sizeBytes = sizeBytes;
        this.report = report;
        this.registrations = registrations.clone();
        this.region = new CudaDevice.Region(address, sizeBytes, false, "pinned host");
        this.memory = MemorySegment.ofAddress(address).reinterpret(sizeBytes, arena, null);
        device.addRegion(region);
    }

    /**
     * Allocates {@code bytes} (rounded up to 2 MiB) of pinned, device-mapped host memory with {@code cuMemHostAlloc}.
     *
     * @throws CudaException if the driver refuses
     * @throws IllegalStateException if the GPU would see it at another address
     */
    static PinnedHostMemory allocate(CudaDevice device, long bytes) {
        if (bytes < 1) {
            throw new IllegalArgumentException("bytes must be positive, got " + bytes);
        }
        long size = (bytes + HOST_ALLOC_ROUNDING - 1) & -HOST_ALLOC_ROUNDING;
        device.makeCurrent();
        long start = System.nanoTime();
        long address =
                Cu.memHostAlloc(size, CudaDriver.CU_MEMHOSTALLOC_PORTABLE | CudaDriver.CU_MEMHOSTALLOC_DEVICEMAP);
        checkSameAddress(address, () -> Cu.memFreeHost(address));
        String report = String.format("cuMemHostAlloc %.2f s", (System.nanoTime() - start) / 1e9);
        return new PinnedHostMemory(device, Strategy.HOST_ALLOC, address, size, report);
    }

    /**
     * Pins and maps existing host memory for the GPU ({@code cuMemHostRegister}, PORTABLE | DEVICEMAP). The memory is
     * not copied and stays the caller's: it must outlive this registration.
     *
     * @param memory a native segment, ideally page-aligned and already populated (registering faults in any page that
     *     is not, single-threaded)
     * @throws IllegalArgumentException for a heap or empty segment
     * @throws CudaException if the driver refuses to pin it (e.g. the memory is registered already)
     * @throws IllegalStateException if the GPU would see it at another address
     */
    static PinnedHostMemory register(CudaDevice device, MemorySegment memory) {
        Objects.requireNonNull(memory, "memory");
        if (!memory.isNative()) {
            throw new IllegalArgumentException("memory must be a native segment (off-heap), got a heap segment");
        }
        if (memory.byteSize() < 1) {
            throw new IllegalArgumentException("memory must not be empty");
        }
        long address = memory.address();
        long size = memory.byteSize();
        device.makeCurrent();
        long start = System.nanoTime();
        int rc = Cu.memHostRegister(
                address, size, CudaDriver.CU_MEMHOSTREGISTER_PORTABLE | CudaDriver.CU_MEMHOSTREGISTER_DEVICEMAP);
        if (rc != CuResult.CUDA_SUCCESS) {
            throw new CudaException(
                    "cuMemHostRegister_v2",
                    rc,
                    "p=0x" + Long.toHexString(address) + ", bytesize=" + size + ", flags=PORTABLE|DEVICEMAP");
        }
        checkSameAddress(address, () -> Cu.memHostUnregister(address));
        String report = String.format("cuMemHostRegister %.2f s", (System.nanoTime() - start) / 1e9);
        return new PinnedHostMemory(device, Strategy.REGISTER, address, size, report);
    }

    /**
     * Enters this memory in {@code other}'s registry, so that {@code other}'s copy engine treats it as pinned,
     * device-visible memory. The registration is PORTABLE, so no second pinning happens; this checks that
     * {@code other} maps every registration at its host address. Undone by {@link #close()}.
     *
     * @throws IllegalStateException if {@code other} would see it at another address, or this is closed
     */
    public synchronized void shareWith(CudaDevice other) {
        if (closed) {
            throw new IllegalStateException("pinned memory is closed");
        }
        if (other == device || sharedWith.contains(other)) {
            return;
        }
        other.makeCurrent();
        try {
            for (long start : registrations) {
                long devicePointer = Cu.memHostDevicePointer(start);
                if (devicePointer != start) {
                    throw new IllegalStateException(other + " maps the pinned pool at 0x"
                            + Long.toHexString(devicePointer) + ", not at its host address 0x"
                            + Long.toHexString(start) + ": one pool cannot serve it");
                }
            }
        } finally {
            device.makeCurrent();
        }
        CudaDevice.Region shared = new CudaDevice.Region(address, sizeBytes, false, "pinned host (portable)");
        other.addRegion(shared);
        sharedWith.add(other);
        sharedRegions.add(shared);
    }

    /** The GPUs besides the registering one that this memory was {@linkplain #shareWith shared with}. */
    public synchronized List<CudaDevice> sharedWith() {
        return List.copyOf(sharedWith);
    }

    /** How many driver registrations back this memory (1, or one per chunk). */
    public int registrationCount() {
        return registrations.length;
    }

    static void checkSameAddress(long address, Runnable undo) {
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

    /**
     * The memory, CPU-accessible, and at the same address device-visible. A view of its own: it becomes inaccessible
     * when this is closed (the owner's segment of registered memory stays valid).
     */
    public MemorySegment memory() {
        return memory;
    }

    public long sizeBytes() {
        return sizeBytes;
    }

    public Strategy strategy() {
        return strategy;
    }

    /** How pinning went, for the start-up log: the driver call and its time. */
    public String report() {
        return report;
    }

    /** Frees {@link Strategy#HOST_ALLOC} memory, or unregisters {@link Strategy#REGISTER} memory. Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        device.removeRegion(region);
        for (int i = 0; i < sharedWith.size(); i++) {
            sharedWith.get(i).removeRegion(sharedRegions.get(i));
        }
        arena.close();
        device.makeCurrent();
        if (strategy == Strategy.HOST_ALLOC) {
            Cu.check(Cu.memFreeHost(address), "cuMemFreeHost", "p=0x" + Long.toHexString(address));
        } else {
            CudaException first = null;
            for (long start : registrations) {
                int rc = Cu.memHostUnregister(start);
                if (rc != CuResult.CUDA_SUCCESS && first == null) {
                    first = new CudaException("cuMemHostUnregister", rc, "p=0x" + Long.toHexString(start));
                }
            }
            if (first != null) {
                throw first;
            }
        }
    }
}
