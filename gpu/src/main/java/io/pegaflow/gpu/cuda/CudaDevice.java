package io.pegaflow.gpu.cuda;

import io.pegaflow.gpu.MappedRegion;
import io.pegaflow.gpu.cuda.ffi.CuResult;
import io.pegaflow.gpu.cuda.ffi.CudaDriver;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * One GPU, opened by index or UUID, with its primary context retained for the life of this object. Keeps the
 * registry of memory the copy engine may hand to the GPU: pinned host allocations, device buffers and CUDA IPC
 * mappings (each IPC allocation opened once per process and shared by reference count).
 *
 * <p>Thread-safe. A thread that calls the driver directly must first call {@link #makeCurrent()}.
 */
public final class CudaDevice implements AutoCloseable {
    private final int ordinal;
    private final int handle;
    private final String uuid;
    private final String name;
    private final int multiprocessorCount;
    private final MemorySegment context;
    private final CopyOnWriteArrayList<Region> regions = new CopyOnWriteArrayList<>();
    private final Map<String, IpcAllocation> ipcByHandle = new HashMap<>();
    private boolean closed;

    /** Memory the GPU can reach: device memory, or pinned host memory (device-visible at the same address). */
    record Region(long address, long sizeBytes, boolean device, String what) {
        boolean contains(long start, long bytes) {
            return start >= address && bytes >= 0 && start - address <= sizeBytes - bytes;
        }
    }

    private CudaDevice(int ordinal, int handle, String uuid, String name, int sms, MemorySegment context) {
        this.ordinal = ordinal;
        this.handle = handle;
        this.uuid = uuid;
        this.name = name;
        this.multiprocessorCount = sms;
        this.context = context;
    }

    /**
     * Opens a device by ordinal ("0") or UUID ("GPU-3475cb91-ca10-...", with or without the prefix and dashes).
     *
     * @throws IllegalStateException if CUDA is unavailable (the probe's cause)
     * @throws IllegalArgumentException if no device matches (the message lists the devices present)
     */
    public static CudaDevice open(String selector) {
        CudaProbe.unavailabilityCause().ifPresent(cause -> {
            throw new IllegalStateException("CUDA is not usable: " + cause);
        });
        int count = CudaProbe.deviceCount();
        int ordinal = -1;
        if (selector.matches("\\d{1,4}")) {
            ordinal = Integer.parseInt(selector);
            if (ordinal >= count) {
                throw new IllegalArgumentException("device " + ordinal + " does not exist: the driver sees " + count
                        + " device(s) " + describeAll(count));
            }
        } else {
            String wanted = normalizeUuid(selector);
            for (int i = 0; i < count && ordinal < 0; i++) {
                if (formatUuid(Cu.deviceUuid(Cu.device(i))).equals(wanted)) {
                    ordinal = i;
                }
            }
            if (ordinal < 0) {
                throw new IllegalArgumentException("no device has UUID " + wanted + "; present: " + describeAll(count));
            }
        }
        int dev = Cu.device(ordinal);
        String uuid = formatUuid(Cu.deviceUuid(dev));
        String name = Cu.deviceName(dev);
        if (Cu.deviceAttribute(dev, CudaDriver.CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING) != 1) {
            throw new IllegalStateException("device " + ordinal + " (" + name + ") has no unified addressing");
        }
        int sms = Cu.deviceAttribute(dev, CudaDriver.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        MemorySegment ctx = Cu.primaryContextRetain(dev);
        CudaDevice device = new CudaDevice(ordinal, dev, uuid, name, sms, ctx);
        device.makeCurrent();
        return device;
    }

    private static String describeAll(int count) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < count; i++) {
            b.append(i == 0 ? "" : ", ").append(i).append(": ").append(formatUuid(Cu.deviceUuid(Cu.device(i))));
        }
        return b.append(']').toString();
    }

    /**
     * The canonical form {@code GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx} (lower case) of a UUID written with or
     * without the {@code GPU-} prefix and dashes, as nvidia-smi and torch print it.
     *
     * @throws IllegalArgumentException if it is not 32 hex digits after removing those
     */
    public static String normalizeUuid(String text) {
        String t = text.trim();
        if (t.regionMatches(true, 0, "GPU-", 0, 4)) {
            t = t.substring(4);
        }
        t = t.replace("-", "").toLowerCase(Locale.ROOT);
        if (!t.matches("[0-9a-f]{32}")) {
            throw new IllegalArgumentException(
                    "\"" + text + "\" is not a GPU UUID (32 hex digits, optionally GPU- and dashes)");
        }
        return formatUuid(HexFormat.of().parseHex(t));
    }

    static String formatUuid(byte[] bytes) {
        String h = HexFormat.of().formatHex(bytes);
        return "GPU-"
                + h.substring(0, 8)
                + "-"
                + h.substring(8, 12)
                + "-"
                + h.substring(12, 16)
                + "-"
                + h.substring(16, 20)
                + "-"
                + h.substring(20, 32);
    }

    public int ordinal() {
        return ordinal;
    }

    /** Canonical UUID, {@code GPU-...}. */
    public String uuid() {
        return uuid;
    }

    public String name() {
        return name;
    }

    public int multiprocessorCount() {
        return multiprocessorCount;
    }

    /**
     * The GPU's PCI address as sysfs names it under {@code /sys/bus/pci/devices}, e.g. {@code 0000:3b:00.0} (lower
     * case hex; function 0).
     */
    public String pciBusId() {
        int domain = Cu.deviceAttribute(handle, CudaDriver.CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID);
        int bus = Cu.deviceAttribute(handle, CudaDriver.CU_DEVICE_ATTRIBUTE_PCI_BUS_ID);
        int dev = Cu.deviceAttribute(handle, CudaDriver.CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID);
        return String.format(Locale.ROOT, "%04x:%02x:%02x.0", domain, bus, dev);
    }

    /** Makes this device's primary context current on the calling thread. */
    public void makeCurrent() {
        Cu.check(Cu.setCurrent(context), "cuCtxSetCurrent", "device=" + ordinal);
    }

    // ---- the region registry ----

    void addRegion(Region region) {
        regions.add(region);
    }

    void removeRegion(Region region) {
        regions.remove(region);
    }

    /** The registered region holding all of {@code segment}, or null (then it is ordinary host memory). */
    Region regionOf(MemorySegment segment) {
        long start = segment.address();
        long bytes = segment.byteSize();
        for (Region r : regions) {
            if (r.contains(start, bytes)) {
                return r;
            }
        }
        return null;
    }

    // ---- device memory ----

    /** Allocates device memory ({@code cuMemAlloc}); close the buffer to free it. */
    public DeviceBuffer allocate(long bytes) {
        makeCurrent();
        long address = Cu.memAlloc(bytes);
        return new DeviceBuffer(this, address, bytes);
    }

    /**
     * Allocates pinned, device-mapped host memory with {@code cuMemHostAlloc} (single-threaded in the driver: for small
     * buffers; a large pool is mapped elsewhere and {@linkplain #registerHost registered}).
     *
     * @throws CudaException if the driver refuses
     */
    public PinnedHostMemory allocatePinned(long bytes) {
        return PinnedHostMemory.allocate(this, bytes);
    }

    /**
     * Pins existing host memory and maps it for this GPU at the same address ({@code cuMemHostRegister}), e.g. the
     * node's pool mapped and populated by store's {@code HostMemory}. Close the registration before freeing the
     * memory.
     *
     * @throws IllegalArgumentException for a heap or empty segment
     * @throws CudaException if the driver refuses to pin it
     */
    public PinnedHostMemory registerHost(MemorySegment memory) {
        return PinnedHostMemory.register(this, memory);
    }

    /** Synchronous copy between any two addresses the driver knows (UVA), for tests, tools and the control path. */
    public void copySync(long dst, long src, long bytes) {
        makeCurrent();
        MemorySegment stream = Cu.streamCreate(CudaDriver.CU_STREAM_NON_BLOCKING);
        try {
            Cu.check(
                    Cu.memcpyAsync(dst, src, bytes, stream),
                    "cuMemcpyAsync",
                    "dst=0x" + Long.toHexString(dst) + ", src=0x" + Long.toHexString(src) + ", bytes=" + bytes);
            Cu.check(Cu.streamSynchronize(stream), "cuStreamSynchronize", "");
        } finally {
            Cu.streamDestroy(stream);
        }
    }

    // ---- CUDA IPC ----

    private final class IpcAllocation {
        final String key;
        final long devicePointer;
        final long sizeBytes;
        final Region region;
        int refs;

        IpcAllocation(String key, long devicePointer, long sizeBytes) {
            this.key = key;
            this.devicePointer = devicePointer;
            this.sizeBytes = sizeBytes;
            this.region = new Region(devicePointer, sizeBytes, true, "cuda-ipc");
        }
    }

    /**
     * Opens the allocation named by a 64-byte {@code cudaIpcMemHandle_t} ({@code CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS}),
     * or takes another reference to it when this process has it open already.
     *
     * @param allocationSizeBytes what the worker says the allocation holds: at least 1, at most what the driver reports
     * @throws IllegalArgumentException for a handle that is not 64 bytes, or a size larger than the allocation
     * @throws CudaException if the driver refuses the handle
     */
    public synchronized MappedRegion openIpc(byte[] ipcHandle, long allocationSizeBytes) {
        if (closed) {
            throw new IllegalStateException("device " + ordinal + " is closed");
        }
        if (ipcHandle.length != CudaDriver.CU_IPC_HANDLE_SIZE) {
            throw new IllegalArgumentException("ipc_handle: " + ipcHandle.length + " bytes; a cudaIpcMemHandle_t has "
                    + CudaDriver.CU_IPC_HANDLE_SIZE);
        }
        if (allocationSizeBytes < 1) {
            throw new IllegalArgumentException("allocation_size_bytes: must be positive, got " + allocationSizeBytes);
        }
        String key = HexFormat.of().formatHex(ipcHandle);
        IpcAllocation allocation = ipcByHandle.get(key);
        if (allocation == null) {
            makeCurrent();
            long pointer = Cu.ipcOpen(ipcHandle, CudaDriver.CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS);
            long size;
            try {
                long[] range = Cu.addressRange(pointer);
                size = range[1] - (pointer - range[0]);
            } catch (CudaException e) {
                Cu.ipcClose(pointer);
                throw e;
            }
            allocation = new IpcAllocation(key, pointer, size);
            ipcByHandle.put(key, allocation);
            addRegion(allocation.region);
        }
        if (allocationSizeBytes > allocation.sizeBytes) {
            if (allocation.refs == 0) {
                release(allocation);
            }
            throw new IllegalArgumentException("allocation_size_bytes: "
                    + allocationSizeBytes
                    + " is larger than the allocation the handle names ("
                    + allocation.sizeBytes
                    + " bytes)");
        }
        allocation.refs++;
        return new IpcReference(allocation);
    }

    private synchronized void unref(IpcAllocation allocation) {
        if (--allocation.refs == 0) {
            release(allocation);
        }
    }

    private void release(IpcAllocation allocation) {
        ipcByHandle.remove(allocation.key);
        removeRegion(allocation.region);
        makeCurrent();
        int rc = Cu.ipcClose(allocation.devicePointer);
        if (rc != CuResult.CUDA_SUCCESS) {
            throw new CudaException("cuIpcCloseMemHandle", rc, "dptr=0x" + Long.toHexString(allocation.devicePointer));
        }
    }

    /** Allocations this process has open through IPC (for tests and status). */
    public synchronized int openIpcAllocations() {
        return ipcByHandle.size();
    }

    private final class IpcReference implements MappedRegion {
        private final IpcAllocation allocation;
        private final Arena arena = Arena.ofShared();
        private final MemorySegment memory;
        private boolean closed;

        IpcReference(IpcAllocation allocation) {
            this.allocation = allocation;
            this.memory =
                    MemorySegment.ofAddress(allocation.devicePointer).reinterpret(allocation.sizeBytes, arena, null);
        }

        @Override
        public MemorySegment memory() {
            return memory;
        }

        @Override
        public String description() {
            return "cuda-ipc 0x" + Long.toHexString(allocation.devicePointer) + " (" + allocation.sizeBytes + " bytes)";
        }

        @Override
        public void close() {
            synchronized (this) {
                if (closed) {
                    return;
                }
                closed = true;
            }
            arena.close();
            unref(allocation);
        }
    }

    /** Releases the primary context; close engines, buffers, pinned memory and IPC references first. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (IpcAllocation allocation : ipcByHandle.values().toArray(IpcAllocation[]::new)) {
            release(allocation);
        }
        Cu.primaryContextRelease(handle);
    }

    @Override
    public String toString() {
        return "cuda:" + ordinal + " " + name + " " + uuid;
    }
}
