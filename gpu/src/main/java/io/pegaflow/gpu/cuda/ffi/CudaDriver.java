package io.pegaflow.gpu.cuda.ffi;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * Raw downcall handles into the CUDA driver ({@code libcuda.so.1}), resolved once when this class initialises, and
 * the constants and struct layouts they need. Names are the C symbols (the {@code _v2} entry points that
 * {@code cuda.h} of CUDA 12/13 maps the plain names to). Call with {@code invokeExact}; every function returns a
 * {@code CUresult} (an int) that the caller checks. Handles ({@code CUcontext}, {@code CUstream}, ...) are
 * addresses; {@code CUdeviceptr} and {@code size_t} are longs.
 *
 * <p>If the library or a required symbol is missing, the handles stay null and {@link #loadFailure()} says why;
 * nothing here throws during class initialisation. {@code cuMemcpyBatchAsync} is optional (CUDA 12.8+).
 *
 * <p>Thread-safe: method handles are immutable; the driver is thread-safe.
 */
public final class CudaDriver {
    public static final String LIBRARY = "libcuda.so.1";

    // ---- constants (cuda.h) ----
    public static final int CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS = 0x1;
    public static final int CU_IPC_HANDLE_SIZE = 64;
    public static final int CU_MEMHOSTALLOC_PORTABLE = 0x01;
    public static final int CU_MEMHOSTALLOC_DEVICEMAP = 0x02;
    public static final int CU_MEMHOSTREGISTER_PORTABLE = 0x01;
    public static final int CU_MEMHOSTREGISTER_DEVICEMAP = 0x02;
    public static final int CU_STREAM_NON_BLOCKING = 0x1;
    public static final int CU_EVENT_DEFAULT = 0x0;
    public static final int CU_EVENT_BLOCKING_SYNC = 0x1;
    public static final int CU_EVENT_DISABLE_TIMING = 0x2;
    public static final int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
    public static final int CU_DEVICE_ATTRIBUTE_PCI_BUS_ID = 33;
    public static final int CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID = 34;
    public static final int CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID = 50;
    public static final int CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING = 41;
    public static final int CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM = 91;
    public static final int CU_MEM_LOCATION_TYPE_INVALID = 0x0;
    public static final int CU_MEM_LOCATION_TYPE_DEVICE = 0x1;
    public static final int CU_MEM_LOCATION_TYPE_HOST = 0x2;
    public static final int CU_MEMCPY_SRC_ACCESS_ORDER_STREAM = 0x1;
    public static final int CU_MEMCPY_FLAG_DEFAULT = 0x0;

    /** {@code CUipcMemHandle}: {@code char reserved[64]}, passed by value. */
    public static final StructLayout CU_IPC_MEM_HANDLE = MemoryLayout.structLayout(
                    MemoryLayout.sequenceLayout(CU_IPC_HANDLE_SIZE, JAVA_BYTE).withName("reserved"))
            .withName("CUipcMemHandle");

    /** {@code CUuuid}: {@code char bytes[16]}. */
    public static final StructLayout CU_UUID = MemoryLayout.structLayout(
                    MemoryLayout.sequenceLayout(16, JAVA_BYTE).withName("bytes"))
            .withName("CUuuid");

    /** {@code CUmemLocation}: {@code CUmemLocationType type; int id;}. */
    public static final StructLayout CU_MEM_LOCATION = MemoryLayout.structLayout(
                    JAVA_INT.withName("type"), JAVA_INT.withName("id"))
            .withName("CUmemLocation");

    /**
     * {@code CUmemcpyAttributes}: {@code CUmemcpySrcAccessOrder srcAccessOrder; CUmemLocation srcLocHint;
     * CUmemLocation dstLocHint; unsigned int flags;} (24 bytes; offsets 0, 4, 12, 20; checked against cuda.h by a
     * test where the header exists).
     */
    public static final StructLayout CU_MEMCPY_ATTRIBUTES = MemoryLayout.structLayout(
                    JAVA_INT.withName("srcAccessOrder"),
                    CU_MEM_LOCATION.withName("srcLocHint"),
                    CU_MEM_LOCATION.withName("dstLocHint"),
                    JAVA_INT.withName("flags"))
            .withName("CUmemcpyAttributes");

    /** {@code CUmemorytype}: a unified virtual address (device memory or pinned host memory, told apart by the driver). */
    public static final int CU_MEMORYTYPE_UNIFIED = 4;

    /**
     * {@code CUDA_MEMCPY2D} (128 bytes): the source and destination as {@code xInBytes, y, memoryType, host, device,
     * array, pitch}, then the width in bytes and the number of rows.
     */
    public static final StructLayout CUDA_MEMCPY2D = MemoryLayout.structLayout(
                    JAVA_LONG.withName("srcXInBytes"),
                    JAVA_LONG.withName("srcY"),
                    JAVA_INT.withName("srcMemoryType"),
                    MemoryLayout.paddingLayout(4),
                    JAVA_LONG.withName("srcHost"),
                    JAVA_LONG.withName("srcDevice"),
                    JAVA_LONG.withName("srcArray"),
                    JAVA_LONG.withName("srcPitch"),
                    JAVA_LONG.withName("dstXInBytes"),
                    JAVA_LONG.withName("dstY"),
                    JAVA_INT.withName("dstMemoryType"),
                    MemoryLayout.paddingLayout(4),
                    JAVA_LONG.withName("dstHost"),
                    JAVA_LONG.withName("dstDevice"),
                    JAVA_LONG.withName("dstArray"),
                    JAVA_LONG.withName("dstPitch"),
                    JAVA_LONG.withName("WidthInBytes"),
                    JAVA_LONG.withName("Height"))
            .withName("CUDA_MEMCPY2D");

    private static final String[] REQUIRED_SYMBOLS = {
        "cuInit",
        "cuDriverGetVersion",
        "cuGetErrorName",
        "cuGetErrorString",
        "cuDeviceGetCount",
        "cuDeviceGet",
        "cuDeviceGetUuid_v2",
        "cuDeviceGetName",
        "cuDeviceGetAttribute",
        "cuDevicePrimaryCtxRetain",
        "cuDevicePrimaryCtxRelease_v2",
        "cuCtxSetCurrent",
        "cuIpcOpenMemHandle_v2",
        "cuIpcCloseMemHandle",
        "cuMemGetAddressRange_v2",
        "cuMemHostAlloc",
        "cuMemFreeHost",
        "cuMemHostRegister_v2",
        "cuMemHostUnregister",
        "cuMemHostGetDevicePointer_v2",
        "cuMemAlloc_v2",
        "cuMemFree_v2",
        "cuMemsetD8_v2",
        "cuStreamCreate",
        "cuStreamCreateWithPriority",
        "cuStreamGetPriority",
        "cuCtxGetStreamPriorityRange",
        "cuStreamDestroy_v2",
        "cuStreamSynchronize",
        "cuStreamWaitEvent",
        "cuEventCreate",
        "cuEventDestroy_v2",
        "cuEventRecord",
        "cuEventSynchronize",
        "cuEventQuery",
        "cuMemcpyAsync",
        "cuMemcpyHtoDAsync_v2",
        "cuMemcpyDtoHAsync_v2",
        "cuModuleLoadData",
        "cuModuleUnload",
        "cuModuleGetFunction",
        "cuLaunchKernel"
    };

    private static final Linker LINKER = Linker.nativeLinker();
    private static final String LOAD_FAILURE;
    private static final SymbolLookup LOOKUP;

    static {
        SymbolLookup lookup = null;
        String failure = null;
        try {
            lookup = SymbolLookup.libraryLookup(LIBRARY, Arena.global());
        } catch (IllegalArgumentException e) {
            failure = LIBRARY + " not found (no NVIDIA driver on this machine, or it is not on the loader path): "
                    + e.getMessage();
        } catch (IllegalCallerException e) {
            failure = "native access is not enabled: start the JVM with --enable-native-access=ALL-UNNAMED ("
                    + e.getMessage() + ")";
        }
        LOOKUP = lookup;
        String missing = null;
        if (lookup != null) {
            for (String symbol : REQUIRED_SYMBOLS) {
                if (lookup.find(symbol).isEmpty()) {
                    missing = missing == null ? symbol : missing + ", " + symbol;
                }
            }
            if (missing != null) {
                failure = LIBRARY + " lacks " + missing + ": the driver is too old (CUDA 12.0 or newer is needed)";
            }
        }
        LOAD_FAILURE = failure;
    }

    // ---- handles (null when the library or a required symbol is missing) ----
    public static final MethodHandle cuInit = bind("cuInit", JAVA_INT);
    public static final MethodHandle cuDriverGetVersion = bind("cuDriverGetVersion", ADDRESS);
    public static final MethodHandle cuGetErrorName = bind("cuGetErrorName", JAVA_INT, ADDRESS);
    public static final MethodHandle cuGetErrorString = bind("cuGetErrorString", JAVA_INT, ADDRESS);
    public static final MethodHandle cuDeviceGetCount = bind("cuDeviceGetCount", ADDRESS);
    public static final MethodHandle cuDeviceGet = bind("cuDeviceGet", ADDRESS, JAVA_INT);
    public static final MethodHandle cuDeviceGetUuid_v2 = bind("cuDeviceGetUuid_v2", ADDRESS, JAVA_INT);
    public static final MethodHandle cuDeviceGetName = bind("cuDeviceGetName", ADDRESS, JAVA_INT, JAVA_INT);
    public static final MethodHandle cuDeviceGetAttribute = bind("cuDeviceGetAttribute", ADDRESS, JAVA_INT, JAVA_INT);
    public static final MethodHandle cuDevicePrimaryCtxRetain = bind("cuDevicePrimaryCtxRetain", ADDRESS, JAVA_INT);
    public static final MethodHandle cuDevicePrimaryCtxRelease_v2 = bind("cuDevicePrimaryCtxRelease_v2", JAVA_INT);
    public static final MethodHandle cuCtxSetCurrent = bind("cuCtxSetCurrent", ADDRESS);
    public static final MethodHandle cuIpcOpenMemHandle_v2 =
            bind("cuIpcOpenMemHandle_v2", ADDRESS, CU_IPC_MEM_HANDLE, JAVA_INT);
    public static final MethodHandle cuIpcCloseMemHandle = bind("cuIpcCloseMemHandle", JAVA_LONG);
    public static final MethodHandle cuMemGetAddressRange_v2 =
            bind("cuMemGetAddressRange_v2", ADDRESS, ADDRESS, JAVA_LONG);
    public static final MethodHandle cuMemHostAlloc = bind("cuMemHostAlloc", ADDRESS, JAVA_LONG, JAVA_INT);
    public static final MethodHandle cuMemFreeHost = bind("cuMemFreeHost", ADDRESS);
    public static final MethodHandle cuMemHostRegister_v2 = bind("cuMemHostRegister_v2", ADDRESS, JAVA_LONG, JAVA_INT);
    public static final MethodHandle cuMemHostUnregister = bind("cuMemHostUnregister", ADDRESS);
    public static final MethodHandle cuMemHostGetDevicePointer_v2 =
            bind("cuMemHostGetDevicePointer_v2", ADDRESS, ADDRESS, JAVA_INT);
    public static final MethodHandle cuMemAlloc_v2 = bind("cuMemAlloc_v2", ADDRESS, JAVA_LONG);
    public static final MethodHandle cuMemFree_v2 = bind("cuMemFree_v2", JAVA_LONG);
    public static final MethodHandle cuMemsetD8_v2 = bind("cuMemsetD8_v2", JAVA_LONG, JAVA_BYTE, JAVA_LONG);
    public static final MethodHandle cuStreamCreate = bind("cuStreamCreate", ADDRESS, JAVA_INT);
    public static final MethodHandle cuStreamCreateWithPriority =
            bind("cuStreamCreateWithPriority", ADDRESS, JAVA_INT, JAVA_INT);
    public static final MethodHandle cuStreamGetPriority = bind("cuStreamGetPriority", ADDRESS, ADDRESS);
    /** {@code cuCtxGetStreamPriorityRange(int *least, int *greatest)}: least is the lowest priority (numerically 0). */
    public static final MethodHandle cuCtxGetStreamPriorityRange =
            bind("cuCtxGetStreamPriorityRange", ADDRESS, ADDRESS);

    public static final MethodHandle cuStreamDestroy_v2 = bind("cuStreamDestroy_v2", ADDRESS);
    public static final MethodHandle cuStreamSynchronize = bind("cuStreamSynchronize", ADDRESS);
    public static final MethodHandle cuStreamWaitEvent = bind("cuStreamWaitEvent", ADDRESS, ADDRESS, JAVA_INT);
    public static final MethodHandle cuEventCreate = bind("cuEventCreate", ADDRESS, JAVA_INT);
    public static final MethodHandle cuEventDestroy_v2 = bind("cuEventDestroy_v2", ADDRESS);
    public static final MethodHandle cuEventRecord = bind("cuEventRecord", ADDRESS, ADDRESS);
    public static final MethodHandle cuEventSynchronize = bind("cuEventSynchronize", ADDRESS);
    public static final MethodHandle cuEventQuery = bind("cuEventQuery", ADDRESS);
    public static final MethodHandle cuMemcpyAsync = bind("cuMemcpyAsync", JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS);
    public static final MethodHandle cuMemcpyHtoDAsync_v2 =
            bind("cuMemcpyHtoDAsync_v2", JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS);
    public static final MethodHandle cuMemcpyDtoHAsync_v2 =
            bind("cuMemcpyDtoHAsync_v2", JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS);
    public static final MethodHandle cuModuleLoadData = bind("cuModuleLoadData", ADDRESS, ADDRESS);
    public static final MethodHandle cuModuleUnload = bind("cuModuleUnload", ADDRESS);
    public static final MethodHandle cuModuleGetFunction = bind("cuModuleGetFunction", ADDRESS, ADDRESS, ADDRESS);
    public static final MethodHandle cuLaunchKernel = bind(
            "cuLaunchKernel",
            ADDRESS,
            JAVA_INT,
            JAVA_INT,
            JAVA_INT,
            JAVA_INT,
            JAVA_INT,
            JAVA_INT,
            JAVA_INT,
            ADDRESS,
            ADDRESS,
            ADDRESS);

    /**
     * {@code cuEventElapsedTime(float* ms, start, end)} as {@code cuEventElapsedTime_v2} where the driver has it (CUDA
     * 12.8+), else the original; null where neither exists.
     */
    public static final MethodHandle cuEventElapsedTime = firstOf(
            bindOptional("cuEventElapsedTime_v2", ADDRESS, ADDRESS, ADDRESS),
            () -> bindOptional("cuEventElapsedTime", ADDRESS, ADDRESS, ADDRESS));

    /** {@code cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D*, stream)}; null where the driver lacks it. */
    public static final MethodHandle cuMemcpy2DAsync_v2 = bindOptional("cuMemcpy2DAsync_v2", ADDRESS, ADDRESS);

    /**
     * {@code cuMemcpyBatchAsync_v2(dsts, srcs, sizes, count, attrs, attrsIdxs, numAttrs, stream)} (CUDA 13), or null
     * where the driver lacks it; see {@link #cuMemcpyBatchAsync12}.
     */
    public static final MethodHandle cuMemcpyBatchAsync_v2 = bindOptional(
            "cuMemcpyBatchAsync_v2", ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS);

    /**
     * The CUDA 12.8 form, {@code cuMemcpyBatchAsync(dsts, srcs, sizes, count, attrs, attrsIdxs, numAttrs, failIdx,
     * stream)}, for drivers without the {@code _v2} symbol; null where absent.
     */
    public static final MethodHandle cuMemcpyBatchAsync12 = cuMemcpyBatchAsync_v2 != null
            ? null
            : bindOptional(
                    "cuMemcpyBatchAsync",
                    ADDRESS,
                    ADDRESS,
                    ADDRESS,
                    JAVA_LONG,
                    ADDRESS,
                    ADDRESS,
                    JAVA_LONG,
                    ADDRESS,
                    ADDRESS);

    private CudaDriver() {}

    /** Why the driver cannot be used at all (library or symbols missing), or empty when every handle is bound. */
    public static Optional<String> loadFailure() {
        return Optional.ofNullable(LOAD_FAILURE);
    }

    private static MethodHandle bind(String name, MemoryLayout... args) {
        if (LOAD_FAILURE != null || LOOKUP == null) {
            return null;
        }
        return bindOptional(name, args);
    }

    private static MethodHandle firstOf(MethodHandle handle, java.util.function.Supplier<MethodHandle> otherwise) {
        return handle != null ? handle : otherwise.get();
    }

    private static MethodHandle bindOptional(String name, MemoryLayout... args) {
        if (LOOKUP == null) {
            return null;
        }
        Optional<MemorySegment> symbol = LOOKUP.find(name);
        return symbol.map(s -> LINKER.downcallHandle(s, FunctionDescriptor.of(JAVA_INT, args)))
                .orElse(null);
    }
}
