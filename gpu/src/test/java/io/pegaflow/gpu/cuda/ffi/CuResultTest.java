package io.pegaflow.gpu.cuda.ffi;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class CuResultTest {
    @Test
    void shouldNameEveryCodeOfCuda13() {
        assertEquals(101, CuResult.knownCount(), "cuda.h 13.0 defines 101 CUresult codes");
        assertEquals("CUDA_SUCCESS", CuResult.name(0));
        assertEquals("CUDA_ERROR_INVALID_VALUE", CuResult.name(1));
        assertEquals("CUDA_ERROR_NO_DEVICE", CuResult.name(100));
        assertEquals("CUDA_ERROR_UNSUPPORTED_PTX_VERSION", CuResult.name(222));
        assertEquals("CUDA_ERROR_ILLEGAL_ADDRESS", CuResult.name(700));
        assertEquals("CUDA_ERROR_KEY_ROTATION", CuResult.name(916));
        assertEquals("CUDA_ERROR_UNKNOWN", CuResult.name(999));
    }

    @Test
    void shouldNameAnUnknownCodeByItsNumber() {
        assertEquals("CUDA_ERROR_12345", CuResult.name(12345));
        assertEquals("CUDA_ERROR_-1", CuResult.name(-1));
    }

    @Test
    void shouldKeepConstantsConsistentWithTheTable() {
        assertEquals("CUDA_ERROR_ALREADY_MAPPED", CuResult.name(CuResult.CUDA_ERROR_ALREADY_MAPPED));
        assertEquals("CUDA_ERROR_NOT_READY", CuResult.name(CuResult.CUDA_ERROR_NOT_READY));
        assertEquals(
                "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED",
                CuResult.name(CuResult.CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED));
    }
}
