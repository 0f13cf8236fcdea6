package io.pegaflow.gpu.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Device memory from {@code cuMemAlloc}, registered with its {@link CudaDevice} so the copy engine accepts it.
 * {@link #memory()} spans device addresses: never dereference it on the CPU. Close after every copy that uses it.
 */
public final class DeviceBuffer implements AutoCloseable {
    private final CudaDevice device;
    private final long address;
    private final long sizeBytes;
    private final CudaDevice.Region region;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment memory;
    private boolean closed;

    DeviceBuffer(CudaDevice device, long address, long sizeBytes) {
        this.device = device;
        this.address = address;
        this.sizeBytes = sizeBytes;
        this.region = new CudaDevice.Region(address, sizeBytes, true, "cuMemAlloc");
        this.memory = MemorySegment.ofAddress(address).reinterpret(sizeBytes, arena, null);
        device.addRegion(region);
    }

    public long address() {
        return address;
    }

    public long sizeBytes() {
        return sizeBytes;
    }

    /** A segment over the device addresses, for {@link io.pegaflow.gpu.CopyEngine#copy}; not CPU-accessible. */
    public MemorySegment memory() {
        return memory;
    }

    /** Fills the buffer with {@code value} (synchronously). */
    public void fill(byte value) {
        device.makeCurrent();
        Cu.check(Cu.memsetD8(address, value, sizeBytes), "cuMemsetD8_v2", "bytes=" + sizeBytes);
    }

    /** Copies {@code host} (any host memory) to {@code offset} in this buffer, synchronously. */
    public void write(long offset, MemorySegment host) {
        check(offset, host.byteSize());
        device.copySync(address + offset, host.address(), host.byteSize());
    }

    /** Copies bytes at {@code offset} into {@code host}, synchronously. */
    public void read(long offset, MemorySegment host) {
        check(offset, host.byteSize());
        device.copySync(host.address(), address + offset, host.byteSize());
    }

    private void check(long offset, long bytes) {
        if (offset < 0 || bytes < 0 || offset > sizeBytes - bytes) {
            throw new IndexOutOfBoundsException(
                    "[" + offset + ", +" + bytes + ") outside a buffer of " + sizeBytes + " bytes");
        }
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
        Cu.check(Cu.memFree(address), "cuMemFree_v2", "dptr=0x" + Long.toHexString(address));
    }
}
