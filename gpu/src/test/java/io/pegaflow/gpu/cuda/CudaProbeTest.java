package io.pegaflow.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.gpu.cuda.ffi.CudaDriver;
import org.junit.jupiter.api.Test;

class CudaProbeTest {
    @Test
    void shouldEitherWorkOrSayWhyNot() {
        if (CudaProbe.isAvailable()) {
            assertTrue(CudaProbe.driverVersion() >= CudaProbe.MIN_DRIVER_VERSION);
            assertTrue(CudaProbe.deviceCount() > 0);
        } else {
            String cause = CudaProbe.unavailabilityCause().orElseThrow();
            assertFalse(cause.isBlank());
            CudaDriver.loadFailure()
                    .ifPresent(
                            f -> assertTrue(cause.contains("libcuda.so.1") || cause.contains("native access"), cause));
        }
    }

    @Test
    void shouldSayWhichLibraryIsMissing() {
        CudaDriver.loadFailure().ifPresent(f -> {
            assertTrue(f.contains("libcuda.so.1"), f);
            assertEquals(f, CudaProbe.unavailabilityCause().orElseThrow());
        });
    }

    @Test
    void shouldCallAnOldDriverTooOld() {
        String cause = CudaProbe.driverVersionCause(11080);
        assertTrue(cause.startsWith("driver too old: CUDA 11.8"), cause);
        assertTrue(cause.contains("12.0"), cause);
        assertNull(CudaProbe.driverVersionCause(12000));
        assertNull(CudaProbe.driverVersionCause(13000));
        assertEquals("13.0", CudaProbe.versionText(13000));
        assertEquals("12.8", CudaProbe.versionText(12080));
    }

    @Test
    void shouldNameTheFlagWhenNativeAccessIsOff() {
        assertTrue(CudaProbe.nativeAccessCause(false).contains("--enable-native-access=ALL-UNNAMED"));
        assertNull(CudaProbe.nativeAccessCause(true));
    }
}
