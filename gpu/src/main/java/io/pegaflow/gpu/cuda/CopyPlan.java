package io.pegaflow.gpu.cuda;

import io.pegaflow.gpu.CopyBatch;
import java.util.Arrays;

/**
 * Turns a {@link CopyBatch} into what the GPU executes: kernel descriptors (src, dst, length triples, in the layout
 * of the kernels' {@code struct Run}) and, for {@link CudaCopyMode#STAGED}, per-chunk DMA ranges between the host
 * side and a staging ring. Pure arithmetic over absolute addresses; reused per lane, so planning a batch allocates
 * nothing once the arrays have grown to the batch size.
 *
 * <p>Staged, host to device (load): for chunk {@code c} the DMAs copy host ranges into staging buffer {@code c %
 * ring}, then the kernel descriptors of {@code c} copy from that buffer to the GPU blocks. Device to host (save):
 * the kernel gathers into the buffer, the DMAs copy the buffer out to the host. Adjacent host ranges within a
 * chunk merge into one DMA. {@link #planDma} makes the DMA list of the modes without a kernel. Each piece lands in the buffer at the same address mod 16 as its GPU side, so the
 * kernel can use 16-byte vectors.
 *
 * <p>Not thread-safe: owned by one lane.
 */
final class CopyPlan {
    private static final CopyBatch EMPTY = new CopyBatch(1);
    private static final long BOUNDARY = ChunkedHostRegistration.BOUNDARY_BYTES;

    /** Kernel descriptors: src, dst, length. */
    long[] desc = new long[3 * 1024];

    int descCount;
    /** DMA ranges: dst, src, length. */
    long[] dma = new long[3 * 256];

    int dmaCount;
    /** {@link #planDma}: the bytes of all DMA ranges. */
    long dmaBytes;
    /** Chunk c owns descriptors [chunkDesc[c], chunkDesc[c+1]) and DMAs [chunkDma[c], chunkDma[c+1]). */
    int[] chunkDesc = new int[64];

    int[] chunkDma = new int[64];
    int chunkCount;

    void clear() {
        descCount = 0;
        dmaCount = 0;
        dmaBytes = 0;
        chunkCount = 0;
    }

    /**
     * DMA ranges (dst, src, length) for the modes that hand host ranges to the driver ({@link CudaCopyMode#BATCH},
     * {@link CudaCopyMode#MEMCPY}): one per run, cut where a host side crosses a multiple of {@link
     * ChunkedHostRegistration#BOUNDARY_BYTES} (the driver refuses a range spanning two registrations) and merged where
     * a run continues the previous one on both sides (fewer descriptors), never across such a boundary.
     *
     * @param srcHost the sources are pinned host memory
     * @param dstHost the destinations are pinned host memory
     */
    void planDma(CopyBatch batch, long[] srcBases, boolean srcHost, long[] dstBases, boolean dstHost) {
        clear();
        for (int i = 0; i < batch.runCount(); i++) {
            long src = srcBases[batch.srcPart(i)] + batch.srcOffset(i);
            long dst = dstBases[batch.dstPart(i)] + batch.dstOffset(i);
            long len = batch.length(i);
            while (len > 0) {
                long take = len;
                if (srcHost) {
                    take = Math.min(take, BOUNDARY - (src & (BOUNDARY - 1)));
                }
                if (dstHost) {
                    take = Math.min(take, BOUNDARY - (dst & (BOUNDARY - 1)));
                }
                boolean atBoundary =
                        (srcHost && (src & (BOUNDARY - 1)) == 0) || (dstHost && (dst & (BOUNDARY - 1)) == 0);
                int last = (dmaCount - 1) * 3;
                if (dmaCount > 0
                        && !atBoundary
                        && dma[last] + dma[last + 2] == dst
                        && dma[last + 1] + dma[last + 2] == src) {
                    dma[last + 2] += take;
                } else {
                    appendDma(dst, src, take);
                }
                dmaBytes += take;
                src += take;
                dst += take;
                len -= take;
            }
        }
    }

    /**
     * One descriptor per piece of at most {@code pieceBytes} of every run; a run's addresses are the base of its part
     * plus its offsets.
     */
    void planDirect(CopyBatch batch, long[] srcBases, long[] dstBases, long pieceBytes) {
        clear();
        for (int i = 0; i < batch.runCount(); i++) {
            long src = srcBases[batch.srcPart(i)] + batch.srcOffset(i);
            long dst = dstBases[batch.dstPart(i)] + batch.dstOffset(i);
            long len = batch.length(i);
            for (long off = 0; off < len; off += pieceBytes) {
                addDesc(src + off, dst + off, Math.min(pieceBytes, len - off));
            }
        }
    }

    /**
     * Plans a whole staged copy at once ({@link #startStaged} and {@link #planNextChunk} until it returns false).
     *
     * @param hostToDevice true: src is host memory and dst GPU memory (load); false: the reverse (save)
     * @param staging device addresses of the ring's buffers, each {@code chunkBytes} long
     */
    void planStaged(
            CopyBatch batch,
            long[] srcBases,
            long[] dstBases,
            boolean hostToDevice,
            long[] staging,
            long chunkBytes,
            long pieceBytes) {
        startStaged(batch, srcBases, dstBases, hostToDevice, staging, chunkBytes, pieceBytes);
        while (planNextChunk()) {
            // plan everything
        }
    }

    private CopyBatch stagedBatch = EMPTY;
    private long[] stagedSrc;
    private long[] stagedDst;
    private long[] stagedRing;
    private boolean stagedToDevice;
    private long stagedChunkBytes;
    private long stagedPieceBytes;
    private int stagedRun;
    private long stagedOffset;

    private long stagedFirstChunkBytes;

    /** Starts planning a staged copy chunk by chunk, so the GPU can run chunk c while chunk c+1 is planned. */
    void startStaged(
            CopyBatch batch,
            long[] srcBases,
            long[] dstBases,
            boolean hostToDevice,
            long[] staging,
            long chunkBytes,
            long pieceBytes) {
        startStaged(batch, srcBases, dstBases, hostToDevice, staging, chunkBytes, chunkBytes, pieceBytes);
    }

    /**
     * As above, with chunks that ramp up: chunk c holds at most {@code min(chunkBytes, firstChunkBytes << c)} bytes, so
     * the pipeline fills after a small first step while the later, large chunks keep the number of kernel launches
     * (and so of GPU context switches against the model's work) small.
     */
    void startStaged(
            CopyBatch batch,
            long[] srcBases,
            long[] dstBases,
            boolean hostToDevice,
            long[] staging,
            long firstChunkBytes,
            long chunkBytes,
            long pieceBytes) {
        clear();
        stagedFirstChunkBytes = Math.min(firstChunkBytes, chunkBytes);
        stagedBatch = batch;
        stagedSrc = srcBases;
        stagedDst = dstBases;
        stagedToDevice = hostToDevice;
        stagedRing = staging;
        stagedChunkBytes = chunkBytes;
        stagedPieceBytes = pieceBytes;
        stagedRun = 0;
        stagedOffset = 0;
        ensureChunks(1);
        chunkDesc[0] = 0;
        chunkDma[0] = 0;
    }

    /**
     * Plans the next chunk: afterwards chunk {@code chunkCount - 1} owns descriptors {@code [chunkDesc[c],
     * chunkDesc[c+1])} and DMAs {@code [chunkDma[c], chunkDma[c+1])}.
     *
     * @return false (planning nothing) once every run is planned
     */
    boolean planNextChunk() {
        CopyBatch batch = stagedBatch;
        if (stagedRun >= batch.runCount()) {
            return false;
        }
        ensureChunks(chunkCount + 2);
        int c = chunkCount++;
        chunkDesc[c] = descCount;
        chunkDma[c] = dmaCount;
        long base = stagedRing[c % stagedRing.length];
        long limit = c >= 40 ? stagedChunkBytes : Math.min(stagedChunkBytes, stagedFirstChunkBytes << c);
        long pos = 0;
        while (stagedRun < batch.runCount()) {
            int i = stagedRun;
            long src = stagedSrc[batch.srcPart(i)] + batch.srcOffset(i);
            long dst = stagedDst[batch.dstPart(i)] + batch.dstOffset(i);
            long len = batch.length(i);
            long host = stagedToDevice ? src : dst;
            long gpu = stagedToDevice ? dst : src;
            long off = stagedOffset;
            long pad = ((gpu + off) - (base + pos)) & 15;
            if (pos + pad >= limit) {
                break; // the chunk is full
            }
            pos += pad;
            long take = Math.min(Math.min(len - off, limit - pos), stagedPieceBytes);
            // A DMA never crosses a pinned-registration boundary (ChunkedHostRegistration pins the pool per chunk).
            take = Math.min(take, BOUNDARY - ((host + off) & (BOUNDARY - 1)));
            long stage = base + pos;
            if (stagedToDevice) {
                addDesc(stage, gpu + off, take);
                addDma(stage, host + off, take);
            } else {
                addDesc(gpu + off, stage, take);
                addDma(host + off, stage, take);
            }
            pos += take;
            stagedOffset = off + take;
            if (stagedOffset == len) {
                stagedRun++;
                stagedOffset = 0;
            }
            if (pos == limit) {
                break;
            }
        }
        chunkDesc[c + 1] = descCount;
        chunkDma[c + 1] = dmaCount;
        if (stagedRun >= batch.runCount()) {
            stagedBatch = EMPTY; // drop the caller's batch; later calls find no runs left
            stagedRun = 0;
        }
        return true;
    }

    /** An upper bound of the descriptors a staged plan of {@code batch} makes. */
    static long descriptorBound(CopyBatch batch, long chunkBytes, long pieceBytes) {
        // + the ramp's small first chunks (at most 40, see planNextChunk), each of which may split a piece
        return batch.runCount() + batch.totalBytes() / pieceBytes + batch.totalBytes() / chunkBytes + 42;
    }

    private void ensureChunks(int n) {
        if (n > chunkDesc.length) {
            chunkDesc = Arrays.copyOf(chunkDesc, Math.max(n, chunkDesc.length * 2));
            chunkDma = Arrays.copyOf(chunkDma, Math.max(n, chunkDma.length * 2));
        }
    }

    private void addDesc(long src, long dst, long len) {
        if ((descCount + 1) * 3 > desc.length) {
            desc = Arrays.copyOf(desc, desc.length * 2);
        }
        int at = descCount * 3;
        desc[at] = src;
        desc[at + 1] = dst;
        desc[at + 2] = len;
        descCount++;
    }

    private void addDma(long dst, long src, long len) {
        int first = chunkDma[chunkCount - 1];
        long host = stagedToDevice ? src : dst;
        if (dmaCount > first && (host & (BOUNDARY - 1)) != 0) {
            int last = (dmaCount - 1) * 3;
            if (dma[last] + dma[last + 2] == dst && dma[last + 1] + dma[last + 2] == src) {
                dma[last + 2] += len;
                return;
            }
        }
        appendDma(dst, src, len);
    }

    private void appendDma(long dst, long src, long len) {
        if ((dmaCount + 1) * 3 > dma.length) {
            dma = Arrays.copyOf(dma, dma.length * 2);
        }
        int at = dmaCount * 3;
        dma[at] = dst;
        dma[at + 1] = src;
        dma[at + 2] = len;
        dmaCount++;
    }
}
