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
    /** {@link #planDma}: the bytes of all DMA ranges ({@link #coalesceRows}: of those left as 1D ranges). */
    long dmaBytes;
    /** {@link #coalesceRows}: 2D DMAs, {@link #ROW_OP} longs each: dst, dst pitch, src, src pitch, width, rows. */
    long[] rows = new long[ROW_OP * 64];

    int rowOpCount;
    /** {@link #coalesceRows}: the bytes of all 2D DMAs. */
    long rowBytes;

    static final int ROW_OP = 6;
    /** The largest pitch a 2D copy is given (the driver's limit, CU_DEVICE_ATTRIBUTE_MAX_PITCH, is 2^31 - 1). */
    static final long MAX_PITCH = (1L << 31) - 1;
    /** Chunk c owns descriptors [chunkDesc[c], chunkDesc[c+1]) and DMAs [chunkDma[c], chunkDma[c+1]). */
    int[] chunkDesc = new int[64];

    int[] chunkDma = new int[64];
    int chunkCount;

    void clear() {
        descCount = 0;
        dmaCount = 0;
        dmaBytes = 0;
        rowOpCount = 0;
        rowBytes = 0;
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
        planDma(batch, srcBases, srcHost, dstBases, dstHost, false);
    }

    /**
     * As above; with {@code byParts} the runs are taken grouped by (source part, destination part), each group in
     * batch order ({@link #partOrder}), so that a layer's blocks (one part: its worker allocation) follow each other
     * for {@link #coalesceRows} while the engine adds them block by block.
     */
    void planDma(CopyBatch batch, long[] srcBases, boolean srcHost, long[] dstBases, boolean dstHost, boolean byParts) {
        clear();
        int[] order = byParts ? partOrder(batch) : null;
        for (int k = 0; k < batch.runCount(); k++) {
            int i = order == null ? k : order[k];
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
     * Rewrites {@link #planDma}'s ranges: every stretch of at least {@code minRows} consecutive ranges of one length
     * whose addresses advance by one fixed pitch on each side (a layer's consecutive blocks: adjacent on the GPU, one
     * pool block apart in the pool) becomes one 2D DMA in {@link #rows}; the other ranges stay in {@link #dma}, in
     * their order. A 2D DMA's host side stays inside one pinned registration (as a range does), its pitches are at
     * least its width (rows never overlap) and at most {@link #MAX_PITCH}. {@code minRows == 0} changes nothing.
     *
     * @param srcHost the sources are pinned host memory
     * @param dstHost the destinations are pinned host memory
     */
    void coalesceRows(int minRows, boolean srcHost, boolean dstHost) {
        rowOpCount = 0;
        rowBytes = 0;
        if (minRows < 2 || dmaCount < minRows) {
            return;
        }
        int kept = 0;
        long keptBytes = 0;
        int i = 0;
        while (i < dmaCount) {
            int end = rowsFrom(i, srcHost, dstHost);
            if (end - i >= minRows) {
                int a = i * 3;
                int b = (i + 1) * 3;
                long width = dma[a + 2];
                addRowOp(dma[a], dma[b] - dma[a], dma[a + 1], dma[b + 1] - dma[a + 1], width, end - i);
                rowBytes += width * (end - i);
                i = end;
            } else {
                // keep range i alone: a stretch may still start at i + 1
                int from = i * 3;
                int to = kept * 3;
                if (to != from) {
                    dma[to] = dma[from];
                    dma[to + 1] = dma[from + 1];
                    dma[to + 2] = dma[from + 2];
                }
                keptBytes += dma[to + 2];
                kept++;
                i++;
            }
        }
        dmaCount = kept;
        dmaBytes = keptBytes;
    }

    /** The end (exclusive) of the stretch of ranges from {@code i} that one 2D DMA can carry; i + 1 if none. */
    private int rowsFrom(int i, boolean srcHost, boolean dstHost) {
        if (i + 1 >= dmaCount) {
            return i + 1;
        }
        int a = i * 3;
        long dst0 = dma[a];
        long src0 = dma[a + 1];
        long width = dma[a + 2];
        long dstPitch = dma[a + 3] - dst0;
        long srcPitch = dma[a + 4] - src0;
        if (dma[a + 5] != width
                || dstPitch < width
                || srcPitch < width
                || dstPitch > MAX_PITCH
                || srcPitch > MAX_PITCH) {
            return i + 1;
        }
        long srcChunk = src0 & -BOUNDARY;
        long dstChunk = dst0 & -BOUNDARY;
        int j = i + 1;
        while (j < dmaCount) {
            int at = j * 3;
            long dst = dma[at];
            long src = dma[at + 1];
            if (dma[at + 2] != width
                    || dst - dma[at - 3] != dstPitch
                    || src - dma[at - 2] != srcPitch
                    || (srcHost && ((src + width - 1) & -BOUNDARY) != srcChunk)
                    || (dstHost && ((dst + width - 1) & -BOUNDARY) != dstChunk)) {
                break;
            }
            j++;
        }
        return j;
    }

    /**
     * How many DMA operations (1D ranges plus 2D DMAs of at least {@code minRows} rows) a batch needs, its runs
     * grouped by parts as {@code planDma(..., true)} takes them, from its offsets alone (parts are separate address spaces; registration boundaries are not known here and may add a
     * few): what AUTO weighs before a lane plans the copy. Allocates nothing.
     */
    int dmaOperations(CopyBatch batch, int minRows) {
        return dmaOperations(batch, minRows, Integer.MAX_VALUE);
    }

    /** As above, but stops counting (returning a number above {@code limit}) once more than {@code limit} are found. */
    int dmaOperations(CopyBatch batch, int minRows, int limit) {
        int n = batch.runCount();
        if (minRows < 2) {
            return n;
        }
        int[] o = partOrder(batch);
        int ops = 0;
        int i = 0;
        while (i < n) {
            int end = i + 1;
            if (i + 1 < n && sameShape(batch, o[i], o[i + 1])) {
                long width = batch.length(o[i]);
                long srcPitch = batch.srcOffset(o[i + 1]) - batch.srcOffset(o[i]);
                long dstPitch = batch.dstOffset(o[i + 1]) - batch.dstOffset(o[i]);
                if (srcPitch >= width && dstPitch >= width && srcPitch <= MAX_PITCH && dstPitch <= MAX_PITCH) {
                    end = i + 2;
                    while (end < n
                            && sameShape(batch, o[end - 1], o[end])
                            && batch.srcOffset(o[end]) - batch.srcOffset(o[end - 1]) == srcPitch
                            && batch.dstOffset(o[end]) - batch.dstOffset(o[end - 1]) == dstPitch) {
                        end++;
                    }
                }
            }
            if (end - i >= minRows) {
                i = end;
            } else {
                i++;
            }
            if (++ops > limit) {
                return ops;
            }
        }
        return ops;
    }

    private static boolean sameShape(CopyBatch batch, int a, int b) {
        return batch.length(a) == batch.length(b)
                && batch.srcPart(a) == batch.srcPart(b)
                && batch.dstPart(a) == batch.dstPart(b);
    }

    private int[] order = new int[1024];
    private int[] partCounts = new int[64];

    /**
     * The batch's run indices grouped by (source part, destination part), each group in batch order: a stable
     * counting sort into a reused array (valid until the next call).
     */
    int[] partOrder(CopyBatch batch) {
        int n = batch.runCount();
        int dstParts = batch.maxDstPart() + 1;
        int keys = (batch.maxSrcPart() + 1) * dstParts;
        if (order.length < n) {
            order = new int[Math.max(n, order.length * 2)];
        }
        if (partCounts.length < keys + 1) {
            partCounts = new int[Math.max(keys + 1, partCounts.length * 2)];
        }
        int[] counts = partCounts;
        Arrays.fill(counts, 0, keys + 1, 0);
        for (int i = 0; i < n; i++) {
            counts[batch.srcPart(i) * dstParts + batch.dstPart(i) + 1]++;
        }
        for (int k = 1; k <= keys; k++) {
            counts[k] += counts[k - 1];
        }
        for (int i = 0; i < n; i++) {
            order[counts[batch.srcPart(i) * dstParts + batch.dstPart(i)]++] = i;
        }
        return order;
    }

    private void addRowOp(long dst, long dstPitch, long src, long srcPitch, long width, long height) {
        if ((rowOpCount + 1) * ROW_OP > rows.length) {
            rows = Arrays.copyOf(rows, rows.length * 2);
        }
        int at = rowOpCount * ROW_OP;
        rows[at] = dst;
        rows[at + 1] = dstPitch;
        rows[at + 2] = src;
        rows[at + 3] = srcPitch;
        rows[at + 4] = width;
        rows[at + 5] = height;
        rowOpCount++;
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
