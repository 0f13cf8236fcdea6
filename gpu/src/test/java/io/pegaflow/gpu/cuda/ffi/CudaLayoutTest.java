package io.pegaflow.gpu.cuda.ffi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.MemoryLayout.PathElement;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Compares the hand-written struct layouts with {@code cuda.h}: compiles a tiny {@code offsetof} program against the
 * header. Runs where the CUDA toolkit's header and a C compiler exist (the GPU machine); skips elsewhere.
 */
class CudaLayoutTest {
    static final Path HEADER_DIR = Path.of(System.getenv().getOrDefault("CUDA_HOME", "/usr/local/cuda"), "include");

    @Test
    void shouldMatchCudaHeader(@TempDir Path dir) throws Exception {
        assumeTrue(
                Files.exists(HEADER_DIR.resolve("cuda.h")), "no cuda.h under " + HEADER_DIR + ": layout check skipped");
        Path source = dir.resolve("layouts.c");
        Files.writeString(source, """
        #include <stdio.h>
        #include <stddef.h>
        #include <cuda.h>
        int main(void) {
          printf("CUipcMemHandle.size %zu\\n", sizeof(CUipcMemHandle));
          printf("CUuuid.size %zu\\n", sizeof(CUuuid));
          printf("CUmemLocation.size %zu\\n", sizeof(CUmemLocation));
          printf("CUmemLocation.id %zu\\n", offsetof(CUmemLocation, id));
          printf("CUmemcpyAttributes.size %zu\\n", sizeof(CUmemcpyAttributes));
          printf("CUmemcpyAttributes.srcAccessOrder %zu\\n", offsetof(CUmemcpyAttributes, srcAccessOrder));
          printf("CUmemcpyAttributes.srcLocHint %zu\\n", offsetof(CUmemcpyAttributes, srcLocHint));
          printf("CUmemcpyAttributes.dstLocHint %zu\\n", offsetof(CUmemcpyAttributes, dstLocHint));
          printf("CUmemcpyAttributes.flags %zu\\n", offsetof(CUmemcpyAttributes, flags));
          printf("CUDA_MEMCPY2D.size %zu\\n", sizeof(CUDA_MEMCPY2D));
          printf("CUDA_MEMCPY2D.srcMemoryType %zu\\n", offsetof(CUDA_MEMCPY2D, srcMemoryType));
          printf("CUDA_MEMCPY2D.srcDevice %zu\\n", offsetof(CUDA_MEMCPY2D, srcDevice));
          printf("CUDA_MEMCPY2D.srcPitch %zu\\n", offsetof(CUDA_MEMCPY2D, srcPitch));
          printf("CUDA_MEMCPY2D.dstMemoryType %zu\\n", offsetof(CUDA_MEMCPY2D, dstMemoryType));
          printf("CUDA_MEMCPY2D.dstDevice %zu\\n", offsetof(CUDA_MEMCPY2D, dstDevice));
          printf("CUDA_MEMCPY2D.dstPitch %zu\\n", offsetof(CUDA_MEMCPY2D, dstPitch));
          printf("CUDA_MEMCPY2D.WidthInBytes %zu\\n", offsetof(CUDA_MEMCPY2D, WidthInBytes));
          printf("CUDA_MEMCPY2D.Height %zu\\n", offsetof(CUDA_MEMCPY2D, Height));
          printf("CU_MEMORYTYPE_UNIFIED %d\\n", (int) CU_MEMORYTYPE_UNIFIED);
          printf("CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS %d\\n", (int) CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS);
          printf("CU_MEMHOSTREGISTER_DEVICEMAP %d\\n", (int) CU_MEMHOSTREGISTER_DEVICEMAP);
          printf("CU_MEM_LOCATION_TYPE_HOST %d\\n", (int) CU_MEM_LOCATION_TYPE_HOST);
          printf("CU_MEMCPY_SRC_ACCESS_ORDER_STREAM %d\\n", (int) CU_MEMCPY_SRC_ACCESS_ORDER_STREAM);
          printf("CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM %d\\n", (int) CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM);
          printf("CU_DEVICE_ATTRIBUTE_PCI_BUS_ID %d\\n", (int) CU_DEVICE_ATTRIBUTE_PCI_BUS_ID);
          printf("CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID %d\\n", (int) CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID);
          printf("CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID %d\\n", (int) CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID);
          return 0;
        }
        """);
        Path binary = dir.resolve("layouts");
        Process cc = new ProcessBuilder("cc", "-I" + HEADER_DIR, "-o", binary.toString(), source.toString())
                .redirectErrorStream(true)
                .start();
        String ccOut = new String(cc.getInputStream().readAllBytes());
        assumeTrue(cc.waitFor(60, TimeUnit.SECONDS) && cc.exitValue() == 0, "cc failed: " + ccOut);
        Process run = new ProcessBuilder(binary.toString()).start();
        Map<String, Long> c = new HashMap<>();
        for (String line : new String(run.getInputStream().readAllBytes()).split("\n")) {
            String[] f = line.split(" ");
            c.put(f[0], Long.parseLong(f[1]));
        }
        run.waitFor(10, TimeUnit.SECONDS);
        assertEquals(c.get("CUipcMemHandle.size"), CudaDriver.CU_IPC_MEM_HANDLE.byteSize());
        assertEquals(c.get("CUuuid.size"), CudaDriver.CU_UUID.byteSize());
        assertEquals(c.get("CUmemLocation.size"), CudaDriver.CU_MEM_LOCATION.byteSize());
        assertEquals(c.get("CUmemLocation.id"), CudaDriver.CU_MEM_LOCATION.byteOffset(PathElement.groupElement("id")));
        assertEquals(c.get("CUmemcpyAttributes.size"), CudaDriver.CU_MEMCPY_ATTRIBUTES.byteSize());
        for (String field : List.of("srcAccessOrder", "srcLocHint", "dstLocHint", "flags")) {
            assertEquals(
                    c.get("CUmemcpyAttributes." + field),
                    CudaDriver.CU_MEMCPY_ATTRIBUTES.byteOffset(PathElement.groupElement(field)),
                    field);
        }
        assertEquals(c.get("CUDA_MEMCPY2D.size"), CudaDriver.CUDA_MEMCPY2D.byteSize());
        for (String field : List.of(
                "srcMemoryType",
                "srcDevice",
                "srcPitch",
                "dstMemoryType",
                "dstDevice",
                "dstPitch",
                "WidthInBytes",
                "Height")) {
            assertEquals(
                    c.get("CUDA_MEMCPY2D." + field),
                    CudaDriver.CUDA_MEMCPY2D.byteOffset(PathElement.groupElement(field)),
                    field);
        }
        assertEquals(c.get("CU_MEMORYTYPE_UNIFIED"), (long) CudaDriver.CU_MEMORYTYPE_UNIFIED);
        assertEquals(c.get("CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS"), (long) CudaDriver.CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS);
        assertEquals(c.get("CU_MEMHOSTREGISTER_DEVICEMAP"), (long) CudaDriver.CU_MEMHOSTREGISTER_DEVICEMAP);
        assertEquals(c.get("CU_MEM_LOCATION_TYPE_HOST"), (long) CudaDriver.CU_MEM_LOCATION_TYPE_HOST);
        assertEquals(c.get("CU_MEMCPY_SRC_ACCESS_ORDER_STREAM"), (long) CudaDriver.CU_MEMCPY_SRC_ACCESS_ORDER_STREAM);
        assertEquals(c.get("CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM"), (long)
                CudaDriver.CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM);
        assertEquals(c.get("CU_DEVICE_ATTRIBUTE_PCI_BUS_ID"), (long) CudaDriver.CU_DEVICE_ATTRIBUTE_PCI_BUS_ID);
        assertEquals(c.get("CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID"), (long) CudaDriver.CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID);
        assertEquals(c.get("CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID"), (long) CudaDriver.CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID);
    }
}
