package io.pegaflow.gpu;

import java.util.Arrays;

/**
 * A list of copy runs (source offset, destination offset, length), kept in one primitive array so that building a
 * batch of thousands of runs allocates nothing per run. Adjacent runs are merged as they are added.
 *
 * <p>A run may name which of several source and destination segments it belongs to ({@link #add(int, int, long,
 * long, long)}; parts are indices into the segment arrays given to {@link CopyEngine#copy(java.lang.foreign
 * .MemorySegment[], java.lang.foreign.MemorySegment[], CopyBatch)}): one batch can then gather a block's layers from
 * several worker allocations into the pool in the pool's order, so an engine can move it as one operation.
 */
public final class CopyBatch {
    private static final int STRIDE = 4;
    private long[] runs;
    private int count;
    private long totalBytes;
    private int maxSrcPart;
    private int maxDstPart;

    public CopyBatch(int initialRuns) {
        runs = new long[Math.max(1, initialRuns) * STRIDE];
    }

    /** Adds a run in part 0 of both sides, merging it into the previous run when it continues it exactly. */
    public void add(long srcOffset, long dstOffset, long lengthBytes) {
        add(0, 0, srcOffset, dstOffset, lengthBytes);
    }

    /**
     * Adds a run from source segment {@code srcPart} to destination segment {@code dstPart}, merging it into the
     * previous run when both are in the same parts and it continues that run exactly.
     */
    public void add(int srcPart, int dstPart, long srcOffset, long dstOffset, long lengthBytes) {
        if (lengthBytes <= 0) {
            throw new IllegalArgumentException("run length must be positive, got " + lengthBytes);
        }
        if (srcPart < 0 || dstPart < 0) {
            throw new IllegalArgumentException("parts must be >= 0, got " + srcPart + " and " + dstPart);
        }
        long parts = ((long) srcPart << 32) | dstPart;
        totalBytes += lengthBytes;
        if (count > 0) {
            int last = (count - 1) * STRIDE;
            if (runs[last + 3] == parts
                    && runs[last] + runs[last + 2] == srcOffset
                    && runs[last + 1] + runs[last + 2] == dstOffset) {
                runs[last + 2] += lengthBytes;
                return;
            }
        }
        if ((count + 1) * STRIDE > runs.length) {
            runs = Arrays.copyOf(runs, runs.length * 2);
        }
        int at = count * STRIDE;
        runs[at] = srcOffset;
        runs[at + 1] = dstOffset;
        runs[at + 2] = lengthBytes;
        runs[at + 3] = parts;
        maxSrcPart = Math.max(maxSrcPart, srcPart);
        maxDstPart = Math.max(maxDstPart, dstPart);
        count++;
    }

    public int runCount() {
        return count;
    }

    public long totalBytes() {
        return totalBytes;
    }

    public long srcOffset(int run) {
        return runs[run * STRIDE];
    }

    public long dstOffset(int run) {
        return runs[run * STRIDE + 1];
    }

    public long length(int run) {
        return runs[run * STRIDE + 2];
    }

    public int srcPart(int run) {
        return (int) (runs[run * STRIDE + 3] >>> 32);
    }

    public int dstPart(int run) {
        return (int) runs[run * STRIDE + 3];
    }

    /** The largest source part of any run (0 for a batch of one part). */
    public int maxSrcPart() {
        return maxSrcPart;
    }

    public int maxDstPart() {
        return maxDstPart;
    }

    /**
     * How many contiguous ranges one side of the batch is made of: runs that continue each other on that side (same
     * part, next byte), whatever the other side does, count as one. A staged copy issues about one DMA per host-side
     * range, so {@code totalBytes() / contiguousRanges(hostSide)} is its typical DMA size.
     */
    public int contiguousRanges(boolean sourceSide) {
        int ranges = 0;
        long end = Long.MIN_VALUE;
        int part = -1;
        int offsetField = sourceSide ? 0 : 1;
        for (int i = 0; i < count; i++) {
            int at = i * STRIDE;
            int p = sourceSide ? (int) (runs[at + 3] >>> 32) : (int) runs[at + 3];
            long offset = runs[at + offsetField];
            if (p != part || offset != end) {
                ranges++;
            }
            part = p;
            end = offset + runs[at + 2];
        }
        return ranges;
    }

    public void clear() {
        count = 0;
        totalBytes = 0;
        maxSrcPart = 0;
        maxDstPart = 0;
    }
}
