package io.pegaflow.gpu.cuda;

import java.util.Map;

/**
 * Settings of the CUDA copy engine.
 *
 * @param gatherMode GPU -> pool (save)
 * @param scatterMode pool -> GPU (load)
 * @param lanes copy agents, each a thread owning its streams, events, descriptor and staging buffers
 * @param gridCtas CTAs per kernel launch at most (the kernels loop over the runs)
 * @param threadsPerCta threads per CTA (the kernels are built for at most 512)
 * @param pieceBytes runs are cut into kernel descriptors of at most this many bytes (load balance)
 * @param stagingChunkBytes STAGED: bytes per staging buffer (one DMA/kernel step)
 * @param stagingChunks STAGED: staging buffers per lane (the ring depth)
 * @param autoStagedMinBytes AUTO: a copy whose host-side contiguous ranges average at least this many bytes is
 *     staged (the DMA engines pay a fixed cost per range), one with smaller ranges runs the gather/scatter kernel
 * @param stagingFirstChunkBytes STAGED: the first chunk of a copy, doubled chunk by chunk up to {@code
 *     stagingChunkBytes}: the pipeline fills quickly, and large later chunks mean few kernel launches, each of which
 *     costs the model a GPU context switch when it runs in another process
 * @param autoBatchMinBytes AUTO: where cuMemcpyBatchAsync exists and a copy's runs (contiguous on both sides, one DMA
 *     each) average at least this many bytes, the copy is one batched DMA submission: no kernel at all, so a model
 *     on the same GPU is barely slowed (H200: +1.6% compute, +1.2% memory-bound, against +8% / +24% staged; copies
 *     36 GB/s while the model runs, 27 staged), at some cost on an idle GPU; 0 turns it off
 * @param lowPriorityStreams the lanes' streams at the context's lowest priority ({@code cuStreamCreateWithPriority}),
 *     so that the GPU dispatches other work of the same context, or of other MPS clients, ahead of the copies' CTAs;
 *     without MPS the node's context and the model's are time-sliced and priorities cannot reach across them
 * @param batchStreams BATCH: a copy's DMAs are split by bytes into this many {@code cuMemcpyBatchAsync} submissions,
 *     each on its own stream (so the driver may spread them over several copy engines), joined with events before
 *     the copy completes; 1 submits everything on one stream
 * @param dmaRowsMin BATCH and MEMCPY: at least this many DMA runs of one length whose addresses advance by a fixed
 *     pitch on each side (a layer's consecutive blocks: adjacent on the GPU, one pool block apart in the pool) go to
 *     the copy engine as one 2D copy ({@code cuMemcpy2DAsync}), which walks its rows in hardware; the engine pays ~3
 *     us per 2D copy but nearly nothing per row, against ~0.1-0.9 us per batched run (bench/gpu/dma_shapes.py on the
 *     H200); 0 turns 2D copies off
 */
public record CudaCopySettings(
        CudaCopyMode gatherMode,
        CudaCopyMode scatterMode,
        int lanes,
        int gridCtas,
        int threadsPerCta,
        long pieceBytes,
        long stagingChunkBytes,
        int stagingChunks,
        long autoStagedMinBytes,
        long stagingFirstChunkBytes,
        boolean lowPriorityStreams,
        long autoBatchMinBytes,
        int batchStreams,
        int dmaRowsMin) {

    public static final String PREFIX = "pegaflow.cuda.";

    public CudaCopySettings {
        if (lanes < 1 || lanes > 16) {
            throw new IllegalArgumentException("lanes: " + lanes + " is out of range 1..16");
        }
        if (gridCtas < 1 || gridCtas > 65535) {
            throw new IllegalArgumentException("grid-ctas: " + gridCtas + " is out of range 1..65535");
        }
        if (threadsPerCta < 32 || threadsPerCta > 512 || threadsPerCta % 32 != 0) {
            throw new IllegalArgumentException(
                    "threads-per-cta: " + threadsPerCta + " must be a multiple of 32 in 32..512");
        }
        if (pieceBytes < 16 || pieceBytes % 16 != 0) {
            throw new IllegalArgumentException("piece-bytes: " + pieceBytes + " must be a positive multiple of 16");
        }
        if (stagingChunkBytes < 64 * 1024 || stagingChunkBytes % 16 != 0) {
            throw new IllegalArgumentException(
                    "staging-chunk-bytes: " + stagingChunkBytes + " must be a multiple of 16, at least 64 KiB");
        }
        if (stagingFirstChunkBytes < 64 * 1024 || stagingFirstChunkBytes % 16 != 0) {
            throw new IllegalArgumentException("staging-first-chunk-bytes: " + stagingFirstChunkBytes
                    + " must be a multiple of 16, at least 64 KiB");
        }
        if (stagingChunks < 2 || stagingChunks > 64) {
            throw new IllegalArgumentException("staging-chunks: " + stagingChunks + " is out of range 2..64");
        }
        if (autoBatchMinBytes < 0) {
            throw new IllegalArgumentException("auto-batch-min-bytes: " + autoBatchMinBytes + " must be >= 0");
        }
        if (batchStreams < 1 || batchStreams > MAX_BATCH_STREAMS) {
            throw new IllegalArgumentException(
                    "batch-streams: " + batchStreams + " is out of range 1.." + MAX_BATCH_STREAMS);
        }
        if (dmaRowsMin != 0 && (dmaRowsMin < 2 || dmaRowsMin > 1 << 20)) {
            throw new IllegalArgumentException("dma-rows-min: " + dmaRowsMin + " must be 0 (off) or in 2..1048576");
        }
        if (autoStagedMinBytes < 0) {
            throw new IllegalArgumentException("auto-staged-min-bytes: " + autoStagedMinBytes + " must be >= 0");
        }
    }

    /**
     * The defaults, chosen by measurement on the H100 and H200 (bench/results/gpu-*.md): each copy picks staged or
     * kernel from its host-side range sizes (staged at 13.5% and kernel at 69% with 16 KiB ranges, staged at 96%
     * with 2 MiB ones).
     */
    public static CudaCopySettings defaults() {
        return new CudaCopySettings(
                CudaCopyMode.AUTO,
                CudaCopyMode.AUTO,
                2,
                32,
                256,
                64 * 1024,
                64L << 20,
                3,
                DEFAULT_AUTO_STAGED_MIN_BYTES,
                4L << 20,
                true,
                DEFAULT_AUTO_BATCH_MIN_BYTES,
                DEFAULT_BATCH_STREAMS,
                DEFAULT_DMA_ROWS_MIN);
    }

    /** True when a copy of either direction may be staged: the lanes then need a staging ring. */
    public boolean stages() {
        return gatherMode == CudaCopyMode.STAGED
                || scatterMode == CudaCopyMode.STAGED
                || gatherMode == CudaCopyMode.AUTO
                || scatterMode == CudaCopyMode.AUTO;
    }

    /** AUTO's default run size from which a copy is one batched DMA submission (bench/results/gpu-h200.md). */
    public static final long DEFAULT_AUTO_BATCH_MIN_BYTES = 64 * 1024;

    /**
     * BATCH's default number of streams per copy: 1. On the H200 (2026-12-01, 10K tokens, 64 KiB runs) 1, 2 and 4
     * streams moved the same 83% of a contiguous copy node-side: more streams did not engage more copy throughput.
     */
    public static final int DEFAULT_BATCH_STREAMS = 1;

    /**
     * The default fewest rows of a 2D DMA: 32. Raw on the H200 (bench/gpu/dma_shapes.py) a 2D copy costs ~3 us, a
     * batched 64 KiB run ~0.1 us beyond its bytes, so ~32 rows is the break-even; 625 rows of 64 KiB per layer moved
     * 98-99% of a contiguous copy against 87-91% batched. In this engine (H200, 2026-12-01 19:44 UTC, sorted ids):
     * the copy's GPU time 93.7% / 93.0% of a contiguous copy against 87.4% / 79.1% batched, client-visible save / load
     * 78.7% / 87.8% against 73.4% / 82.0%; GPU tests (Dma2dCudaTest) pass; random ids unchanged.
     */
    public static final int DEFAULT_DMA_ROWS_MIN = 32;

    /** The value the default was measured with. */
    public static final int SUGGESTED_DMA_ROWS_MIN = DEFAULT_DMA_ROWS_MIN;

    /** The most streams one batched copy may be split over. */
    public static final int MAX_BATCH_STREAMS = 8;

    /** AUTO's default boundary between kernel and staged copies. */
    public static final long DEFAULT_AUTO_STAGED_MIN_BYTES = 128 * 1024;

    public CudaCopySettings withModes(CudaCopyMode gather, CudaCopyMode scatter) {
        Fields f = new Fields(this);
        f.gatherMode = gather;
        f.scatterMode = scatter;
        return f.build();
    }

    public CudaCopySettings withStaging(long chunkBytes, int chunks) {
        Fields f = new Fields(this);
        f.stagingChunkBytes = chunkBytes;
        f.stagingChunks = chunks;
        return f.build();
    }

    public CudaCopySettings withGrid(int ctas, int threads) {
        Fields f = new Fields(this);
        f.gridCtas = ctas;
        f.threadsPerCta = threads;
        return f.build();
    }

    public CudaCopySettings withBatchStreams(int streams) {
        Fields f = new Fields(this);
        f.batchStreams = streams;
        return f.build();
    }

    public CudaCopySettings withLowPriorityStreams(boolean low) {
        Fields f = new Fields(this);
        f.lowPriorityStreams = low;
        return f.build();
    }

    public CudaCopySettings withDmaRowsMin(int rows) {
        Fields f = new Fields(this);
        f.dmaRowsMin = rows;
        return f.build();
    }

    /** A settings' fields, changed one at a time by the {@code with*} methods and checked again by {@link #build}. */
    private static final class Fields {
        CudaCopyMode gatherMode;
        CudaCopyMode scatterMode;
        int lanes;
        int gridCtas;
        int threadsPerCta;
        long pieceBytes;
        long stagingChunkBytes;
        int stagingChunks;
        long autoStagedMinBytes;
        long stagingFirstChunkBytes;
        boolean lowPriorityStreams;
        long autoBatchMinBytes;
        int batchStreams;
        int dmaRowsMin;

        Fields(CudaCopySettings s) {
            gatherMode = s.gatherMode;
            scatterMode = s.scatterMode;
            lanes = s.lanes;
            gridCtas = s.gridCtas;
            threadsPerCta = s.threadsPerCta;
            pieceBytes = s.pieceBytes;
            stagingChunkBytes = s.stagingChunkBytes;
            stagingChunks = s.stagingChunks;
            autoStagedMinBytes = s.autoStagedMinBytes;
            stagingFirstChunkBytes = s.stagingFirstChunkBytes;
            lowPriorityStreams = s.lowPriorityStreams;
            autoBatchMinBytes = s.autoBatchMinBytes;
            batchStreams = s.batchStreams;
            dmaRowsMin = s.dmaRowsMin;
        }

        CudaCopySettings build() {
            return new CudaCopySettings(
                    gatherMode,
                    scatterMode,
                    lanes,
                    gridCtas,
                    threadsPerCta,
                    pieceBytes,
                    stagingChunkBytes,
                    stagingChunks,
                    autoStagedMinBytes,
                    stagingFirstChunkBytes,
                    lowPriorityStreams,
                    autoBatchMinBytes,
                    batchStreams,
                    dmaRowsMin);
        }
    }

    /**
     * The defaults overridden by {@code pegaflow.cuda.*} keys (system properties, e.g. {@code
     * -Dpegaflow.cuda.scatter-mode=kernel}): {@code mode} (both directions), {@code gather-mode}, {@code scatter-mode},
     * {@code lanes}, {@code grid-ctas}, {@code threads-per-cta}, {@code piece-bytes}, {@code staging-chunk-bytes},
     * {@code staging-chunks}, {@code auto-staged-min-bytes}, {@code auto-batch-min-bytes}, {@code staging-first-chunk-bytes}, {@code
     * batch-streams}, {@code dma-rows-min}, {@code stream-priority} ({@code low} or {@code default}).
     *
     * @throws IllegalArgumentException naming the key for a bad value
     */
    public static CudaCopySettings from(Map<?, ?> properties) {
        CudaCopySettings d = defaults();
        CudaCopyMode both = mode(properties, "mode", null);
        CudaCopyMode gather = mode(properties, "gather-mode", both == null ? d.gatherMode : both);
        CudaCopyMode scatter = mode(properties, "scatter-mode", both == null ? d.scatterMode : both);
        return new CudaCopySettings(
                gather,
                scatter,
                (int) number(properties, "lanes", d.lanes),
                (int) number(properties, "grid-ctas", d.gridCtas),
                (int) number(properties, "threads-per-cta", d.threadsPerCta),
                number(properties, "piece-bytes", d.pieceBytes),
                number(properties, "staging-chunk-bytes", d.stagingChunkBytes),
                (int) number(properties, "staging-chunks", d.stagingChunks),
                number(properties, "auto-staged-min-bytes", d.autoStagedMinBytes),
                number(properties, "staging-first-chunk-bytes", d.stagingFirstChunkBytes),
                lowPriority(properties, d.lowPriorityStreams),
                number(properties, "auto-batch-min-bytes", d.autoBatchMinBytes),
                (int) number(properties, "batch-streams", d.batchStreams),
                (int) number(properties, "dma-rows-min", d.dmaRowsMin));
    }

    private static boolean lowPriority(Map<?, ?> p, boolean fallback) {
        Object v = p.get(PREFIX + "stream-priority");
        if (v == null) {
            return fallback;
        }
        return switch (v.toString().trim().toLowerCase(java.util.Locale.ROOT)) {
            case "low" -> true;
            case "default" -> false;
            default ->
                throw new IllegalArgumentException(
                        PREFIX + "stream-priority: \"" + v + "\" is neither low nor default");
        };
    }

    private static CudaCopyMode mode(Map<?, ?> p, String key, CudaCopyMode fallback) {
        Object v = p.get(PREFIX + key);
        if (v == null) {
            return fallback;
        }
        try {
            return CudaCopyMode.parse(v.toString());
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(PREFIX + key + ": " + e.getMessage(), e);
        }
    }

    private static long number(Map<?, ?> p, String key, long fallback) {
        Object v = p.get(PREFIX + key);
        if (v == null) {
            return fallback;
        }
        try {
            return Long.parseLong(v.toString().trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(PREFIX + key + ": \"" + v + "\" is not a whole number", e);
        }
    }
}
