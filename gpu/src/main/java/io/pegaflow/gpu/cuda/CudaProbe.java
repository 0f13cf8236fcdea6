package io.pegaflow.gpu.cuda;

import io.pegaflow.gpu.cuda.ffi.CuResult;
import io.pegaflow.gpu.cuda.ffi.CudaDriver;
import java.util.Optional;

/**
 * Whether this JVM can use CUDA, probed once: native access enabled, {@code libcuda.so.1} loadable with every
 * entry point the binding needs, {@code cuInit} succeeding, a driver of CUDA {@value #MIN_DRIVER_VERSION_TEXT} or
 * newer, and at least one device. {@link #unavailabilityCause()} says exactly which of these failed. Thread-safe.
 */
public final class CudaProbe {
    /** {@code cuDriverGetVersion} of CUDA 12.0: the {@code _v2} entry points and lazy IPC peer access. */
    public static final int MIN_DRIVER_VERSION = 12000;

    static final String MIN_DRIVER_VERSION_TEXT = "12.0";

    private static final class Result {
        static final String CAUSE;
        static final int DRIVER_VERSION;
        static final int DEVICE_COUNT;

        static {
            String cause = null;
            int version = 0;
            int count = 0;
            try {
                cause = nativeAccessCause(CudaProbe.class.getModule().isNativeAccessEnabled());
                if (cause == null) {
                    cause = CudaDriver.loadFailure().orElse(null);
                }
                if (cause == null) {
                    int rc = Cu.init();
                    if (rc == CuResult.CUDA_ERROR_NO_DEVICE) {
                        cause =
                                "no CUDA device: cuInit returned CUDA_ERROR_NO_DEVICE (none present, or hidden by CUDA_VISIBLE_DEVICES)";
                    } else if (rc != CuResult.CUDA_SUCCESS) {
                        cause = new CudaException("cuInit", rc, "flags=0").getMessage();
                    }
                }
                if (cause == null) {
                    version = Cu.driverVersion();
                    cause = driverVersionCause(version);
                }
                if (cause == null) {
                    count = Cu.deviceCount();
                    if (count == 0) {
                        cause = "no CUDA device: cuDeviceGetCount returned 0";
                    } else if (count < 0) {
                        cause = new CudaException("cuDeviceGetCount", -count, "").getMessage();
                        count = 0;
                    }
                }
            } catch (RuntimeException | Error e) {
                cause = "probing CUDA failed: " + e;
            }
            CAUSE = cause;
            DRIVER_VERSION = version;
            DEVICE_COUNT = count;
        }
    }

    private CudaProbe() {}

    /** True when CUDA can be used: the driver loads, initialises, is new enough and sees a device. */
    public static boolean isAvailable() {
        return Result.CAUSE == null;
    }

    /** Why CUDA cannot be used (a sentence naming what is missing), or empty when it can. */
    public static Optional<String> unavailabilityCause() {
        return Optional.ofNullable(Result.CAUSE);
    }

    /** {@code cuDriverGetVersion}, e.g. 13000 for CUDA 13.0; 0 when the driver did not load. */
    public static int driverVersion() {
        return Result.DRIVER_VERSION;
    }

    /** Devices the driver sees; 0 when unavailable. */
    public static int deviceCount() {
        return Result.DEVICE_COUNT;
    }

    /** "13.0" for 13000. */
    public static String versionText(int version) {
        return version / 1000 + "." + (version % 1000) / 10;
    }

    static String nativeAccessCause(boolean enabled) {
        return enabled
                ? null
                : "native access is not enabled for this code: start the JVM with --enable-native-access=ALL-UNNAMED";
    }

    static String driverVersionCause(int version) {
        return version >= MIN_DRIVER_VERSION
                ? null
                : "driver too old: CUDA "
                        + versionText(version)
                        + " (cuDriverGetVersion "
                        + version
                        + "), PegaFlow needs CUDA "
                        + MIN_DRIVER_VERSION_TEXT
                        + " or newer";
    }
}
