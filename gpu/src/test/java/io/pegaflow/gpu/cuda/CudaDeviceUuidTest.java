package io.pegaflow.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class CudaDeviceUuidTest {
    static final String CANONICAL = "GPU-3475cb91-ca10-592d-4a6f-1d59216aaf6c";

    @Test
    void shouldAcceptTheFormsNvidiaSmiAndTorchPrint() {
        assertEquals(CANONICAL, CudaDevice.normalizeUuid("GPU-3475cb91-ca10-592d-4a6f-1d59216aaf6c"));
        assertEquals(CANONICAL, CudaDevice.normalizeUuid("3475cb91-ca10-592d-4a6f-1d59216aaf6c"));
        assertEquals(CANONICAL, CudaDevice.normalizeUuid("3475CB91CA10592D4A6F1D59216AAF6C"));
        assertEquals(CANONICAL, CudaDevice.normalizeUuid(" gpu-3475cb91ca10592d4a6f1d59216aaf6c "));
    }

    @Test
    void shouldRejectWhatIsNoUuid() {
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> CudaDevice.normalizeUuid("host"));
        assertTrue(e.getMessage().contains("\"host\" is not a GPU UUID"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> CudaDevice.normalizeUuid("GPU-3475cb91"));
    }
}
