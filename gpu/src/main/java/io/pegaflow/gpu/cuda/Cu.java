package io.pegaflow.gpu.cuda;

import static io.pegaflow.gpu.cuda.ffi.CuResult.CUDA_SUCCESS;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.pegaflow.gpu.cuda.ffi.CudaDriver;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * One static method per driver function: {@code invokeExact} on the {@link CudaDriver} handle, the raw
 * {@code CUresult} back. A {@link Throwable} from a handle means a wrong signature, a bug: it becomes an
 * {@link AssertionError}. Control-path helpers with out-parameters ({@code ...Out}) allocate in a confined arena and
 * throw {@link CudaException}; data-path methods allocate nothing and return the code for the caller to check.
 */
final class Cu {
    private Cu() {}

    static void check(int rc, String call, String arguments) {
        if (rc != CUDA_SUCCESS) {
            throw new CudaException(call, rc, arguments);
        }
    }

    /** The driver's description of {@code result}, or null where the driver is not loaded or does not know it. */
    static String errorString(int result) {
        if (CudaDriver.loadFailure().isPresent() || CudaDriver.cuGetErrorString == null) {
            return null;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int rc = (int) CudaDriver.cuGetErrorString.invokeExact(result, out);
            if (rc != CUDA_SUCCESS) {
                return null;
            }
            MemorySegment text = out.get(ADDRESS, 0);
            return text.equals(MemorySegment.NULL)
                    ? null
                    : text.reinterpret(1024).getString(0);
        } catch (Throwable t) {
            return null;
        }
    }

    static AssertionError bug(String call, Throwable t) {
        return new AssertionError("downcall " + call + " has a wrong signature", t);
    }

    // ---- init and devices ----

    static int init() {
        try {
            return (int) CudaDriver.cuInit.invokeExact(0);
        } catch (Throwable t) {
            throw bug("cuInit", t);
        }
    }

    static int driverVersion() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            int rc = (int) CudaDriver.cuDriverGetVersion.invokeExact(out);
            check(rc, "cuDriverGetVersion", "");
            return out.get(JAVA_INT, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuDriverGetVersion", t);
        }
    }

    /** Device count, or the negative {@code CUresult} when the call fails. */
    static int deviceCount() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            int rc = (int) CudaDriver.cuDeviceGetCount.invokeExact(out);
            return rc == CUDA_SUCCESS ? out.get(JAVA_INT, 0) : -rc;
        } catch (Throwable t) {
            throw bug("cuDeviceGetCount", t);
        }
    }

    static int device(int ordinal) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            int rc = (int) CudaDriver.cuDeviceGet.invokeExact(out, ordinal);
            check(rc, "cuDeviceGet", "ordinal=" + ordinal);
            return out.get(JAVA_INT, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuDeviceGet", t);
        }
    }

    static byte[] deviceUuid(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(CudaDriver.CU_UUID);
            int rc = (int) CudaDriver.cuDeviceGetUuid_v2.invokeExact(out, device);
            check(rc, "cuDeviceGetUuid_v2", "device=" + device);
            return out.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuDeviceGetUuid_v2", t);
        }
    }

    static String deviceName(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(256);
            int rc = (int) CudaDriver.cuDeviceGetName.invokeExact(out, 256, device);
            check(rc, "cuDeviceGetName", "device=" + device);
            return out.getString(0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuDeviceGetName", t);
        }
    }

    static int deviceAttribute(int device, int attribute) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            int rc = (int) CudaDriver.cuDeviceGetAttribute.invokeExact(out, attribute, device);
            check(rc, "cuDeviceGetAttribute", "attribute=" + attribute + ", device=" + device);
            return out.get(JAVA_INT, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuDeviceGetAttribute", t);
        }
    }

    static MemorySegment primaryContextRetain(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int rc = (int) CudaDriver.cuDevicePrimaryCtxRetain.invokeExact(out, device);
            check(rc, "cuDevicePrimaryCtxRetain", "device=" + device);
            return out.get(ADDRESS, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuDevicePrimaryCtxRetain", t);
        }
    }

    static int primaryContextRelease(int device) {
        try {
            return (int) CudaDriver.cuDevicePrimaryCtxRelease_v2.invokeExact(device);
        } catch (Throwable t) {
            throw bug("cuDevicePrimaryCtxRelease_v2", t);
        }
    }

    static int setCurrent(MemorySegment context) {
        try {
            return (int) CudaDriver.cuCtxSetCurrent.invokeExact(context);
        } catch (Throwable t) {
            throw bug("cuCtxSetCurrent", t);
        }
    }

    // ---- memory ----

    /** Opens a 64-byte IPC handle; returns the device pointer. */
    static long ipcOpen(byte[] handle, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(CudaDriver.CU_IPC_MEM_HANDLE);
            MemorySegment.copy(
                    handle, 0, value, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, CudaDriver.CU_IPC_HANDLE_SIZE);
            MemorySegment out = arena.allocate(JAVA_LONG);
            int rc = (int) CudaDriver.cuIpcOpenMemHandle_v2.invokeExact(out, value, flags);
            check(rc, "cuIpcOpenMemHandle_v2", "handle=" + hexPrefix(handle) + "..., flags=" + flags);
            return out.get(JAVA_LONG, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuIpcOpenMemHandle_v2", t);
        }
    }

    static int ipcClose(long devicePointer) {
        try {
            return (int) CudaDriver.cuIpcCloseMemHandle.invokeExact(devicePointer);
        } catch (Throwable t) {
            throw bug("cuIpcCloseMemHandle", t);
        }
    }

    /** {base, size} of the allocation containing {@code devicePointer}. */
    static long[] addressRange(long devicePointer) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment base = arena.allocate(JAVA_LONG);
            MemorySegment size = arena.allocate(JAVA_LONG);
            int rc = (int) CudaDriver.cuMemGetAddressRange_v2.invokeExact(base, size, devicePointer);
            check(rc, "cuMemGetAddressRange_v2", "dptr=0x" + Long.toHexString(devicePointer));
            return new long[] {base.get(JAVA_LONG, 0), size.get(JAVA_LONG, 0)};
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuMemGetAddressRange_v2", t);
        }
    }

    static long memHostAlloc(long bytes, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int rc = (int) CudaDriver.cuMemHostAlloc.invokeExact(out, bytes, flags);
            check(rc, "cuMemHostAlloc", "bytesize=" + bytes + ", flags=" + flags);
            return out.get(ADDRESS, 0).address();
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuMemHostAlloc", t);
        }
    }

    static int memFreeHost(long address) {
        try {
            return (int) CudaDriver.cuMemFreeHost.invokeExact(MemorySegment.ofAddress(address));
        } catch (Throwable t) {
            throw bug("cuMemFreeHost", t);
        }
    }

    static int memHostRegister(long address, long bytes, int flags) {
        try {
            return (int) CudaDriver.cuMemHostRegister_v2.invokeExact(MemorySegment.ofAddress(address), bytes, flags);
        } catch (Throwable t) {
            throw bug("cuMemHostRegister_v2", t);
        }
    }

    static int memHostUnregister(long address) {
        try {
            return (int) CudaDriver.cuMemHostUnregister.invokeExact(MemorySegment.ofAddress(address));
        } catch (Throwable t) {
            throw bug("cuMemHostUnregister", t);
        }
    }

    static long memHostDevicePointer(long address) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            int rc =
                    (int) CudaDriver.cuMemHostGetDevicePointer_v2.invokeExact(out, MemorySegment.ofAddress(address), 0);
            check(rc, "cuMemHostGetDevicePointer_v2", "p=0x" + Long.toHexString(address));
            return out.get(JAVA_LONG, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuMemHostGetDevicePointer_v2", t);
        }
    }

    static long memAlloc(long bytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            int rc = (int) CudaDriver.cuMemAlloc_v2.invokeExact(out, bytes);
            check(rc, "cuMemAlloc_v2", "bytesize=" + bytes);
            return out.get(JAVA_LONG, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuMemAlloc_v2", t);
        }
    }

    static int memFree(long devicePointer) {
        try {
            return (int) CudaDriver.cuMemFree_v2.invokeExact(devicePointer);
        } catch (Throwable t) {
            throw bug("cuMemFree_v2", t);
        }
    }

    static int memsetD8(long devicePointer, byte value, long bytes) {
        try {
            return (int) CudaDriver.cuMemsetD8_v2.invokeExact(devicePointer, value, bytes);
        } catch (Throwable t) {
            throw bug("cuMemsetD8_v2", t);
        }
    }

    // ---- streams and events ----

    static MemorySegment streamCreate(int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int rc = (int) CudaDriver.cuStreamCreate.invokeExact(out, flags);
            check(rc, "cuStreamCreate", "flags=" + flags);
            return out.get(ADDRESS, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuStreamCreate", t);
        }
    }

    /** A stream whose work the context schedules at {@code priority} (see {@link #leastStreamPriority()}). */
    static MemorySegment streamCreateWithPriority(int flags, int priority) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int rc = (int) CudaDriver.cuStreamCreateWithPriority.invokeExact(out, flags, priority);
            check(rc, "cuStreamCreateWithPriority", "flags=" + flags + ", priority=" + priority);
            return out.get(ADDRESS, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuStreamCreateWithPriority", t);
        }
    }

    static int streamPriority(MemorySegment stream) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            int rc = (int) CudaDriver.cuStreamGetPriority.invokeExact(stream, out);
            check(rc, "cuStreamGetPriority", "");
            return out.get(JAVA_INT, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuStreamGetPriority", t);
        }
    }

    /** The current context's lowest stream priority (the driver's "least"; higher priorities are smaller numbers). */
    static int leastStreamPriority() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment least = arena.allocate(JAVA_INT);
            MemorySegment greatest = arena.allocate(JAVA_INT);
            int rc = (int) CudaDriver.cuCtxGetStreamPriorityRange.invokeExact(least, greatest);
            check(rc, "cuCtxGetStreamPriorityRange", "");
            return least.get(JAVA_INT, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuCtxGetStreamPriorityRange", t);
        }
    }

    static int streamDestroy(MemorySegment stream) {
        try {
            return (int) CudaDriver.cuStreamDestroy_v2.invokeExact(stream);
        } catch (Throwable t) {
            throw bug("cuStreamDestroy_v2", t);
        }
    }

    static int streamSynchronize(MemorySegment stream) {
        try {
            return (int) CudaDriver.cuStreamSynchronize.invokeExact(stream);
        } catch (Throwable t) {
            throw bug("cuStreamSynchronize", t);
        }
    }

    static int streamWaitEvent(MemorySegment stream, MemorySegment event) {
        try {
            return (int) CudaDriver.cuStreamWaitEvent.invokeExact(stream, event, 0);
        } catch (Throwable t) {
            throw bug("cuStreamWaitEvent", t);
        }
    }

    static MemorySegment eventCreate(int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int rc = (int) CudaDriver.cuEventCreate.invokeExact(out, flags);
            check(rc, "cuEventCreate", "flags=" + flags);
            return out.get(ADDRESS, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuEventCreate", t);
        }
    }

    static int eventDestroy(MemorySegment event) {
        try {
            return (int) CudaDriver.cuEventDestroy_v2.invokeExact(event);
        } catch (Throwable t) {
            throw bug("cuEventDestroy_v2", t);
        }
    }

    static int eventRecord(MemorySegment event, MemorySegment stream) {
        try {
            return (int) CudaDriver.cuEventRecord.invokeExact(event, stream);
        } catch (Throwable t) {
            throw bug("cuEventRecord", t);
        }
    }

    static int eventSynchronize(MemorySegment event) {
        try {
            return (int) CudaDriver.cuEventSynchronize.invokeExact(event);
        } catch (Throwable t) {
            throw bug("cuEventSynchronize", t);
        }
    }

    static boolean hasEventTiming() {
        return CudaDriver.cuEventElapsedTime != null;
    }

    /** cuEventElapsedTime into {@code millis} (one float); both events made without CU_EVENT_DISABLE_TIMING. */
    static int eventElapsedTime(MemorySegment millis, MemorySegment start, MemorySegment end) {
        try {
            return (int) CudaDriver.cuEventElapsedTime.invokeExact(millis, start, end);
        } catch (Throwable t) {
            throw bug("cuEventElapsedTime", t);
        }
    }

    static int eventQuery(MemorySegment event) {
        try {
            return (int) CudaDriver.cuEventQuery.invokeExact(event);
        } catch (Throwable t) {
            throw bug("cuEventQuery", t);
        }
    }

    // ---- copies and kernels ----

    static int memcpyAsync(long dst, long src, long bytes, MemorySegment stream) {
        try {
            return (int) CudaDriver.cuMemcpyAsync.invokeExact(dst, src, bytes, stream);
        } catch (Throwable t) {
            throw bug("cuMemcpyAsync", t);
        }
    }

    static int memcpyHtoDAsync(long dstDevice, long srcHost, long bytes, MemorySegment stream) {
        try {
            return (int) CudaDriver.cuMemcpyHtoDAsync_v2.invokeExact(dstDevice, srcHost, bytes, stream);
        } catch (Throwable t) {
            throw bug("cuMemcpyHtoDAsync_v2", t);
        }
    }

    static int memcpyDtoHAsync(long dstHost, long srcDevice, long bytes, MemorySegment stream) {
        try {
            return (int) CudaDriver.cuMemcpyDtoHAsync_v2.invokeExact(dstHost, srcDevice, bytes, stream);
        } catch (Throwable t) {
            throw bug("cuMemcpyDtoHAsync_v2", t);
        }
    }

    static boolean hasMemcpy2D() {
        return CudaDriver.cuMemcpy2DAsync_v2 != null;
    }

    /** cuMemcpy2DAsync_v2 with a filled {@link CudaDriver#CUDA_MEMCPY2D}; the driver reads it during the call. */
    static int memcpy2DAsync(MemorySegment copy2d, MemorySegment stream) {
        try {
            return (int) CudaDriver.cuMemcpy2DAsync_v2.invokeExact(copy2d, stream);
        } catch (Throwable t) {
            throw bug("cuMemcpy2DAsync_v2", t);
        }
    }

    static boolean hasMemcpyBatch() {
        return CudaDriver.cuMemcpyBatchAsync_v2 != null || CudaDriver.cuMemcpyBatchAsync12 != null;
    }

    /** cuMemcpyBatchAsync in whichever form the driver has ({@code failIdx} is scratch for the 12.8 form). */
    static int memcpyBatchAsync(
            MemorySegment dsts,
            MemorySegment srcs,
            MemorySegment sizes,
            long count,
            MemorySegment attrs,
            MemorySegment attrsIdxs,
            long numAttrs,
            MemorySegment failIdx,
            MemorySegment stream) {
        try {
            if (CudaDriver.cuMemcpyBatchAsync_v2 != null) {
                return (int) CudaDriver.cuMemcpyBatchAsync_v2.invokeExact(
                        dsts, srcs, sizes, count, attrs, attrsIdxs, numAttrs, stream);
            }
            return (int) CudaDriver.cuMemcpyBatchAsync12.invokeExact(
                    dsts, srcs, sizes, count, attrs, attrsIdxs, numAttrs, failIdx, stream);
        } catch (Throwable t) {
            throw bug("cuMemcpyBatchAsync", t);
        }
    }

    static MemorySegment moduleLoadData(MemorySegment image) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int rc = (int) CudaDriver.cuModuleLoadData.invokeExact(out, image);
            check(rc, "cuModuleLoadData", "image=" + image.byteSize() + " bytes of PTX");
            return out.get(ADDRESS, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuModuleLoadData", t);
        }
    }

    static int moduleUnload(MemorySegment module) {
        try {
            return (int) CudaDriver.cuModuleUnload.invokeExact(module);
        } catch (Throwable t) {
            throw bug("cuModuleUnload", t);
        }
    }

    static MemorySegment moduleGetFunction(MemorySegment module, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int rc = (int) CudaDriver.cuModuleGetFunction.invokeExact(out, module, arena.allocateFrom(name));
            check(rc, "cuModuleGetFunction", "name=" + name);
            return out.get(ADDRESS, 0);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw bug("cuModuleGetFunction", t);
        }
    }

    static int launchKernel(
            MemorySegment function, int gridX, int blockX, MemorySegment stream, MemorySegment kernelParams) {
        try {
            return (int) CudaDriver.cuLaunchKernel.invokeExact(
                    function, gridX, 1, 1, blockX, 1, 1, 0, stream, kernelParams, MemorySegment.NULL);
        } catch (Throwable t) {
            throw bug("cuLaunchKernel", t);
        }
    }

    static String hexPrefix(byte[] bytes) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < Math.min(8, bytes.length); i++) {
            b.append(String.format("%02x", bytes[i] & 0xff));
        }
        return b.toString();
    }
}
