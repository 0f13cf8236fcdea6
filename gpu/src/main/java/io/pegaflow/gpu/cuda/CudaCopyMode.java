package io.pegaflow.gpu.cuda;

import java.util.Locale;

/** How the CUDA copy engine moves a batch between GPU memory and the pinned pool. */
public enum CudaCopyMode {
    /** One launch of the gather/scatter kernel: the SMs read or write the mapped pinned pool over PCIe (zero-copy). */
    KERNEL,
    /**
     * The DMA engines move contiguous pool ranges to or from a small device staging ring, and a device-local kernel
     * gathers or scatters between the ring and the GPU blocks; the two overlap on two streams.
     */
    STAGED,
    /** One {@code cuMemcpyAsync} per run (after merging adjacent runs). */
    MEMCPY,
    /** {@code cuMemcpyBatchAsync} over all runs (CUDA 12.8+ drivers). */
    BATCH,
    /**
     * Per copy: {@link #STAGED} when the host side's contiguous ranges are large enough for the DMA engines ({@link
     * CudaCopySettings#autoStagedMinBytes()} on average), else {@link #KERNEL}, which pays nothing per range.
     */
    AUTO;

    /** "staged" (any case) to STAGED; the message lists the choices. */
    public static CudaCopyMode parse(String text) {
        try {
            return valueOf(text.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(
                    "copy mode \"" + text + "\" is not one of kernel, staged, memcpy, batch, auto", e);
        }
    }

    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }
}
