package io.pegaflow.gpu.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The copy kernels, loaded from the PTX resource {@code copy_kernels.ptx} (source {@code copy_kernels.cu} beside
 * it) with {@code cuModuleLoadData}, which JIT-compiles it for the device. One module per engine; functions are
 * thread-safe handles.
 */
final class CopyKernels implements AutoCloseable {
    static final String RESOURCE = "copy_kernels.ptx";

    final MemorySegment module;
    final MemorySegment gather;
    final MemorySegment scatter;
    final MemorySegment copyDevice;

    private CopyKernels(MemorySegment module) {
        this.module = module;
        this.gather = Cu.moduleGetFunction(module, "pegaflow_gather");
        this.scatter = Cu.moduleGetFunction(module, "pegaflow_scatter");
        this.copyDevice = Cu.moduleGetFunction(module, "pegaflow_copy_device");
    }

    /** Loads the kernels into the current context. */
    static CopyKernels load() {
        byte[] ptx = ptxText();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment image = arena.allocate(ptx.length + 1L);
            MemorySegment.copy(ptx, 0, image, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, ptx.length);
            MemorySegment module = Cu.moduleLoadData(image);
            try {
                return new CopyKernels(module);
            } catch (RuntimeException e) {
                Cu.moduleUnload(module);
                throw e;
            }
        }
    }

    /** The PTX text (NUL not included). */
    static byte[] ptxText() {
        try (InputStream in = CopyKernels.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new IllegalStateException("resource " + RESOURCE + " is missing from the gpu module's jar");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + RESOURCE + ": " + e, e);
        }
    }

    @Override
    public void close() {
        Cu.moduleUnload(module);
    }
}
