package io.pegaflow.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class CudaExceptionTest {
    @Test
    void shouldNameCallArgumentsAndResult() {
        CudaException e = new CudaException("cuIpcOpenMemHandle_v2", 1, "handle=0011..., flags=1");
        assertTrue(
                e.getMessage()
                        .startsWith(
                                "cuIpcOpenMemHandle_v2(handle=0011..., flags=1) failed: CUDA_ERROR_INVALID_VALUE (1)"),
                e.getMessage());
        assertEquals("cuIpcOpenMemHandle_v2", e.call());
        assertEquals(1, e.result());
        assertEquals("CUDA_ERROR_INVALID_VALUE", e.resultName());
    }

    @Test
    void shouldNameAnUnknownResult() {
        CudaException e = new CudaException("cuInit", 4242, "flags=0");
        assertTrue(e.getMessage().contains("CUDA_ERROR_4242 (4242)"), e.getMessage());
    }
}
