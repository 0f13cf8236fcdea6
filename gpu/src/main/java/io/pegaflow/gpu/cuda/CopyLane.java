package io.pegaflow.gpu.cuda;

import static io.pegaflow.gpu.cuda.ffi.CuResult.CUDA_SUCCESS;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.pegaflow.gpu.CopyBatch;
import io.pegaflow.gpu.cuda.ffi.CudaDriver;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;

/**
 * Everything one copy needs on the GPU, made once: a DMA stream and a kernel stream, events, the staging ring, a
 * pinned and a device descriptor buffer, kernel parameter memory and {@code cuMemcpyBatchAsync} arrays. Executes one
 * batch at a time and returns when its last byte has landed (an event recorded after the last operation).
 *
 * <p>Not thread-safe: owned by one {@link CudaCopyEngine} agent thread, which has the device's context current.
 */
final class CopyLane implements AutoCloseable {
    private volatile boolean broken;
    private volatile int largestGrid;
    /** 2D DMAs this lane has submitted; written by its agent thread only. */
    private volatile long rowDmas;
    /** GPU time of this lane's copies (first operation's start to last operation's end, CUDA events), summed. */
    private volatile long gpuNanos;
    /** Timing events around each copy's GPU work (null where the driver cannot time events). */
    private final MemorySegment gpuStart;

    private final MemorySegment gpuEnd;
    private final MemorySegment elapsedMillis;
    private boolean startRecorded;

    static final long DESC_BYTES = 24;
    /** cuMemcpyBatchAsync calls take at most this many copies. */
    static final int MAX_BATCH = 4096;
    /** A batched copy gives each further stream at least this many bytes: smaller shares gain less than they cost. */
    static final long MIN_STREAM_SHARE = 1 << 20;

    private static final long M2D_SRC_TYPE = m2d("srcMemoryType");
    private static final long M2D_SRC = m2d("srcDevice");
    private static final long M2D_SRC_PITCH = m2d("srcPitch");
    private static final long M2D_DST_TYPE = m2d("dstMemoryType");
    private static final long M2D_DST = m2d("dstDevice");
    private static final long M2D_DST_PITCH = m2d("dstPitch");
    private static final long M2D_WIDTH = m2d("WidthInBytes");
    private static final long M2D_HEIGHT = m2d("Height");

    private static long m2d(String field) {
        return CudaDriver.CUDA_MEMCPY2D.byteOffset(MemoryLayout.PathElement.groupElement(field));
    }

    private final CudaDevice device;
    private final CopyKernels kernels;
    private final CudaCopySettings settings;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment dmaStream;
    private final MemorySegment kernelStream;
    /** BATCH: stream k > 0 carries the k-th share of a copy's DMAs (stream 0 is the DMA stream). */
    private final MemorySegment[] batchStreams;
    /** BATCH: recorded on batch stream k after its share, waited for on the DMA stream before the copy finishes. */
    private final MemorySegment[] batchJoined;

    private final MemorySegment done;
    private final MemorySegment[] dmaDone;
    private final MemorySegment[] kernelDone;
    private final DeviceBuffer staging;
    private final long[] stagingBases;
    private final MemorySegment params;
    private final MemorySegment argRuns;
    private final MemorySegment argCount;
    private final MemorySegment batchDsts;
    private final MemorySegment batchSrcs;
    private final MemorySegment batchSizes;
    private final MemorySegment batchAttrs;
    private final MemorySegment batchAttrIdx;
    private final MemorySegment batchFailIdx;
    /** One CUDA_MEMCPY2D, filled per 2D DMA (the driver reads it during the call). */
    private final MemorySegment copy2d;
    /** The fewest rows of a 2D DMA; 0 where the settings or the driver rule 2D copies out. */
    private final int dmaRowsMin;

    private PinnedHostMemory descHost;
    private DeviceBuffer descDevice;
    private long descCapacity;
    final CopyPlan plan = new CopyPlan();

    CopyLane(CudaDevice device, CopyKernels kernels, CudaCopySettings settings) {
        this.device = device;
        this.kernels = kernels;
        this.settings = settings;
        device.makeCurrent();
        dmaStream = stream(settings);
        kernelStream = stream(settings);
        int streams = Cu.hasMemcpyBatch() ? settings.batchStreams() : 1;
        batchStreams = new MemorySegment[streams];
        batchJoined = new MemorySegment[streams];
        batchStreams[0] = dmaStream;
        for (int k = 1; k < streams; k++) {
            batchStreams[k] = stream(settings);
            batchJoined[k] = Cu.eventCreate(CudaDriver.CU_EVENT_DISABLE_TIMING);
        }
        done = Cu.eventCreate(CudaDriver.CU_EVENT_DISABLE_TIMING | CudaDriver.CU_EVENT_BLOCKING_SYNC);
        gpuStart = Cu.hasEventTiming() ? Cu.eventCreate(CudaDriver.CU_EVENT_DEFAULT) : null;
        gpuEnd = Cu.hasEventTiming() ? Cu.eventCreate(CudaDriver.CU_EVENT_DEFAULT) : null;
        int ring = settings.stagingChunks();
        dmaDone = new MemorySegment[ring];
        kernelDone = new MemorySegment[ring];
        for (int i = 0; i < ring; i++) {
            dmaDone[i] = Cu.eventCreate(CudaDriver.CU_EVENT_DISABLE_TIMING);
            kernelDone[i] = Cu.eventCreate(CudaDriver.CU_EVENT_DISABLE_TIMING);
        }
        boolean staged = kernels != null && settings.stages();
        staging = staged ? device.allocate(settings.stagingChunkBytes() * ring) : null;
        stagingBases = new long[ring];
        for (int i = 0; i < ring && staging != null; i++) {
            stagingBases[i] = staging.address() + i * settings.stagingChunkBytes();
        }
        argRuns = arena.allocate(JAVA_LONG);
        argCount = arena.allocate(JAVA_INT);
        params = arena.allocate(ADDRESS, 2);
        params.setAtIndex(ADDRESS, 0, argRuns);
        params.setAtIndex(ADDRESS, 1, argCount);
        batchDsts = arena.allocate(JAVA_LONG, MAX_BATCH);
        batchSrcs = arena.allocate(JAVA_LONG, MAX_BATCH);
        batchSizes = arena.allocate(JAVA_LONG, MAX_BATCH);
        batchAttrs = arena.allocate(CudaDriver.CU_MEMCPY_ATTRIBUTES);
        batchAttrIdx = arena.allocate(JAVA_LONG);
        batchFailIdx = arena.allocate(JAVA_LONG);
        elapsedMillis = arena.allocate(JAVA_FLOAT);
        copy2d = arena.allocate(CudaDriver.CUDA_MEMCPY2D);
        copy2d.set(JAVA_INT, M2D_SRC_TYPE, CudaDriver.CU_MEMORYTYPE_UNIFIED);
        copy2d.set(JAVA_INT, M2D_DST_TYPE, CudaDriver.CU_MEMORYTYPE_UNIFIED);
        dmaRowsMin = Cu.hasMemcpy2D() ? settings.dmaRowsMin() : 0;
        ensureDescriptors(64 * 1024);
    }

    private static MemorySegment stream(CudaCopySettings settings) {
        return settings.lowPriorityStreams()
                ? Cu.streamCreateWithPriority(CudaDriver.CU_STREAM_NON_BLOCKING, Cu.leastStreamPriority())
                : Cu.streamCreate(CudaDriver.CU_STREAM_NON_BLOCKING);
    }

    /** The priorities of the DMA and the kernel stream (for tests and the start-up log). */
    int[] streamPriorities() {
        return new int[] {Cu.streamPriority(dmaStream), Cu.streamPriority(kernelStream)};
    }

    /** The streams a batched copy is split over (1 without cuMemcpyBatchAsync). */
    int batchStreamCount() {
        return batchStreams.length;
    }

    /** 2D DMAs this lane has submitted. */
    long rowDmas() {
        return rowDmas;
    }

    /**
     * GPU time of this lane's copies so far, from CUDA events recorded before a copy's first operation and after its
     * last: set against the copy's wall time it tells the GPU's share from the host's (hand-off, planning,
     * submission, wake-up). 0 where the driver cannot time events.
     */
    long gpuNanos() {
        return gpuNanos;
    }

    /** The largest grid (CTAs) this lane has launched a kernel with; 0 before the first launch (for tests). */
    int largestGridLaunched() {
        return largestGrid;
    }

    /**
     * Copies the batch: run i from {@code srcBases[srcPart(i)] + srcOffset(i)} to {@code dstBases[dstPart(i)] +
     * dstOffset(i)}, absolute device-visible addresses; every source part is GPU memory or every one is pinned host
     * memory ({@code srcDevice}), likewise the destinations. Returns once every byte has landed.
     */
    void run(CudaCopyMode mode, long[] srcBase, boolean srcDevice, long[] dstBase, boolean dstDevice, CopyBatch batch) {
        boolean hostToDevice = !srcDevice && dstDevice;
        boolean deviceToHost = srcDevice && !dstDevice;
        if (kernels == null && (mode == CudaCopyMode.KERNEL || mode == CudaCopyMode.STAGED)) {
            mode = CudaCopyMode.MEMCPY;
        }
        if (mode == CudaCopyMode.STAGED && (staging == null || !(hostToDevice || deviceToHost))) {
            mode = CudaCopyMode.KERNEL;
        }
        try {
            // the stream that carries each mode's first operation
            startTiming(
                    mode == CudaCopyMode.KERNEL || (mode == CudaCopyMode.STAGED && !hostToDevice)
                            ? kernelStream
                            : dmaStream);
            switch (mode) {
                case KERNEL -> runKernel(srcBase, dstBase, hostToDevice, deviceToHost, batch);
                case STAGED -> {
                    if (hostToDevice) {
                        runStagedLoad(srcBase, dstBase, batch);
                    } else {
                        runStagedSave(srcBase, dstBase, batch);
                    }
                }
                case MEMCPY -> runMemcpy(srcBase, srcDevice, dstBase, dstDevice, batch);
                case BATCH -> runBatch(srcBase, srcDevice, dstBase, dstDevice, batch);
                case AUTO -> throw new IllegalStateException("AUTO must be resolved per copy before the lane runs it");
            }
        } catch (Throwable failure) {
            // Work queued before the failing step may still be running: let it finish before the caller frees the pool
            // blocks or unmaps the regions it touches. If even that fails the context is broken and says so.
            int dma = Cu.streamSynchronize(dmaStream);
            int kernel = Cu.streamSynchronize(kernelStream);
            if (dma != CUDA_SUCCESS || kernel != CUDA_SUCCESS) {
                broken = true;
            }
            for (int k = 1; k < batchStreams.length; k++) {
                if (Cu.streamSynchronize(batchStreams[k]) != CUDA_SUCCESS) {
                    broken = true;
                }
            }
            throw failure;
        }
    }

    /** True once a failed copy could not be drained: the GPU may still touch memory, refuse further copies. */
    boolean broken() {
        return broken;
    }

    private void runKernel(
            long[] srcBase, long[] dstBase, boolean hostToDevice, boolean deviceToHost, CopyBatch batch) {
        plan.planDirect(batch, srcBase, dstBase, settings.pieceBytes());
        upload(plan.descCount, kernelStream);
        MemorySegment function = hostToDevice ? kernels.scatter : deviceToHost ? kernels.gather : kernels.copyDevice;
        launch(function, descDevice.address(), plan.descCount, kernelStream);
        finish(kernelStream);
    }

    /**
     * Host ranges -> staging (DMA stream), staging -> GPU blocks (kernel stream), chunk by chunk around the ring. Each
     * chunk is planned while the GPU works on the ones before it.
     */
    private void runStagedLoad(long[] srcBase, long[] dstBase, CopyBatch batch) {
        long chunkBytes = settings.stagingChunkBytes();
        ensureDescriptors(CopyPlan.descriptorBound(batch, chunkBytes, settings.pieceBytes()));
        plan.startStaged(
                batch,
                srcBase,
                dstBase,
                true,
                stagingBases,
                settings.stagingFirstChunkBytes(),
                chunkBytes,
                settings.pieceBytes());
        int ring = stagingBases.length;
        for (int c = 0; plan.planNextChunk(); c++) {
            int s = c % ring;
            if (c >= ring) {
                waitEvent(dmaStream, kernelDone[s]);
            }
            int first = plan.chunkDesc[c];
            int count = plan.chunkDesc[c + 1] - first;
            uploadSlice(first, count, dmaStream);
            for (int d = plan.chunkDma[c]; d < plan.chunkDma[c + 1]; d++) {
                long dst = plan.dma[d * 3];
                long src = plan.dma[d * 3 + 1];
                long len = plan.dma[d * 3 + 2];
                int rc = Cu.memcpyHtoDAsync(dst, src, len, dmaStream);
                if (rc != CUDA_SUCCESS) {
                    throw new CudaException("cuMemcpyHtoDAsync_v2", rc, copyArgs(dst, src, len));
                }
            }
            record(dmaDone[s], dmaStream);
            waitEvent(kernelStream, dmaDone[s]);
            launch(kernels.copyDevice, descDevice.address() + first * DESC_BYTES, count, kernelStream);
            record(kernelDone[s], kernelStream);
        }
        finish(kernelStream);
    }

    /**
     * GPU blocks -> staging (kernel stream), staging -> host ranges (DMA stream), chunk by chunk around the ring. Each
     * chunk is planned while the GPU works on the ones before it.
     */
    private void runStagedSave(long[] srcBase, long[] dstBase, CopyBatch batch) {
        long chunkBytes = settings.stagingChunkBytes();
        ensureDescriptors(CopyPlan.descriptorBound(batch, chunkBytes, settings.pieceBytes()));
        plan.startStaged(
                batch,
                srcBase,
                dstBase,
                false,
                stagingBases,
                settings.stagingFirstChunkBytes(),
                chunkBytes,
                settings.pieceBytes());
        int ring = stagingBases.length;
        for (int c = 0; plan.planNextChunk(); c++) {
            int s = c % ring;
            if (c >= ring) {
                waitEvent(kernelStream, dmaDone[s]);
            }
            int first = plan.chunkDesc[c];
            int count = plan.chunkDesc[c + 1] - first;
            uploadSlice(first, count, kernelStream);
            launch(kernels.copyDevice, descDevice.address() + first * DESC_BYTES, count, kernelStream);
            record(kernelDone[s], kernelStream);
            waitEvent(dmaStream, kernelDone[s]);
            for (int d = plan.chunkDma[c]; d < plan.chunkDma[c + 1]; d++) {
                long dst = plan.dma[d * 3];
                long src = plan.dma[d * 3 + 1];
                long len = plan.dma[d * 3 + 2];
                int rc = Cu.memcpyDtoHAsync(dst, src, len, dmaStream);
                if (rc != CUDA_SUCCESS) {
                    throw new CudaException("cuMemcpyDtoHAsync_v2", rc, copyArgs(dst, src, len));
                }
            }
            record(dmaDone[s], dmaStream);
        }
        finish(dmaStream);
    }

    private void runMemcpy(long[] srcBase, boolean srcDevice, long[] dstBase, boolean dstDevice, CopyBatch batch) {
        plan.planDma(batch, srcBase, !srcDevice, dstBase, !dstDevice, dmaRowsMin > 0);
        plan.coalesceRows(dmaRowsMin, !srcDevice, !dstDevice);
        submitRows();
        long[] dma = plan.dma;
        for (int d = 0; d < plan.dmaCount; d++) {
            long dst = dma[d * 3];
            long src = dma[d * 3 + 1];
            long len = dma[d * 3 + 2];
            int rc = Cu.memcpyAsync(dst, src, len, dmaStream);
            if (rc != CUDA_SUCCESS) {
                throw new CudaException("cuMemcpyAsync", rc, copyArgs(dst, src, len));
            }
        }
        finish(dmaStream);
    }

    /**
     * The plan's DMAs as {@code cuMemcpyBatchAsync} submissions: the bytes split into equal shares (4 KiB multiples,
     * at least {@link #MIN_STREAM_SHARE}; a range that straddles a share's end is cut there), share k on batch stream k, so several copy
     * engines may work at once; the DMA stream waits for the others before the copy finishes.
     */
    private void runBatch(long[] srcBase, boolean srcDevice, long[] dstBase, boolean dstDevice, CopyBatch batch) {
        plan.planDma(batch, srcBase, !srcDevice, dstBase, !dstDevice, dmaRowsMin > 0);
        plan.coalesceRows(dmaRowsMin, !srcDevice, !dstDevice);
        submitRows();
        MemorySegment a = batchAttrs;
        a.set(JAVA_INT, 0, CudaDriver.CU_MEMCPY_SRC_ACCESS_ORDER_STREAM);
        a.set(JAVA_INT, 4, srcDevice ? CudaDriver.CU_MEM_LOCATION_TYPE_DEVICE : CudaDriver.CU_MEM_LOCATION_TYPE_HOST);
        a.set(JAVA_INT, 8, srcDevice ? device.ordinal() : 0);
        a.set(JAVA_INT, 12, dstDevice ? CudaDriver.CU_MEM_LOCATION_TYPE_DEVICE : CudaDriver.CU_MEM_LOCATION_TYPE_HOST);
        a.set(JAVA_INT, 16, dstDevice ? device.ordinal() : 0);
        a.set(JAVA_INT, 20, CudaDriver.CU_MEMCPY_FLAG_DEFAULT);
        batchAttrIdx.set(JAVA_LONG, 0, 0L);
        int streams = batchStreams.length;
        long share = Math.max(MIN_STREAM_SHARE, ((plan.dmaBytes + streams - 1) / streams + 4095) & ~4095L);
        long shareEnd = share;
        long issued = 0;
        int stream = 0;
        int n = 0;
        long[] dma = plan.dma;
        for (int d = 0; d < plan.dmaCount; d++) {
            long dst = dma[d * 3];
            long src = dma[d * 3 + 1];
            long len = dma[d * 3 + 2];
            while (len > 0) {
                long take = stream == streams - 1 ? len : Math.min(len, shareEnd - issued);
                batchDsts.setAtIndex(JAVA_LONG, n, dst);
                batchSrcs.setAtIndex(JAVA_LONG, n, src);
                batchSizes.setAtIndex(JAVA_LONG, n, take);
                n++;
                dst += take;
                src += take;
                len -= take;
                issued += take;
                boolean shareDone = stream < streams - 1 && issued == shareEnd;
                if (n == MAX_BATCH || shareDone) {
                    submitBatch(n, batchStreams[stream], d);
                    n = 0;
                }
                if (shareDone) {
                    stream++;
                    shareEnd += share;
                }
            }
        }
        submitBatch(n, batchStreams[stream], plan.dmaCount);
        for (int k = 1; k <= stream; k++) {
            record(batchJoined[k], batchStreams[k]);
            waitEvent(dmaStream, batchJoined[k]);
        }
        finish(dmaStream);
    }

    /**
     * The plan's 2D DMAs, one cuMemcpy2DAsync each on the DMA stream (addresses as unified virtual addresses: the
     * driver tells device memory from pinned host memory).
     */
    private void submitRows() {
        long[] r = plan.rows;
        MemorySegment c = copy2d;
        for (int k = 0; k < plan.rowOpCount; k++) {
            int at = k * CopyPlan.ROW_OP;
            c.set(JAVA_LONG, M2D_DST, r[at]);
            c.set(JAVA_LONG, M2D_DST_PITCH, r[at + 1]);
            c.set(JAVA_LONG, M2D_SRC, r[at + 2]);
            c.set(JAVA_LONG, M2D_SRC_PITCH, r[at + 3]);
            c.set(JAVA_LONG, M2D_WIDTH, r[at + 4]);
            c.set(JAVA_LONG, M2D_HEIGHT, r[at + 5]);
            int rc = Cu.memcpy2DAsync(c, dmaStream);
            if (rc != CUDA_SUCCESS) {
                throw new CudaException(
                        "cuMemcpy2DAsync_v2",
                        rc,
                        "2D DMA " + k + " of " + plan.rowOpCount + ": dst=0x" + Long.toHexString(r[at]) + " pitch "
                                + r[at + 1] + ", src=0x" + Long.toHexString(r[at + 2]) + " pitch " + r[at + 3]
                                + ", width " + r[at + 4] + ", rows " + r[at + 5]);
            }
        }
        if (plan.rowOpCount > 0) {
            rowDmas = rowDmas + plan.rowOpCount; // one writer: this lane's agent
        }
    }

    /** Submits the first {@code n} entries of the batch arrays on {@code stream}; the driver reads them in the call. */
    private void submitBatch(int n, MemorySegment stream, int lastRange) {
        if (n == 0) {
            return;
        }
        int rc = Cu.memcpyBatchAsync(
                batchDsts, batchSrcs, batchSizes, n, batchAttrs, batchAttrIdx, 1, batchFailIdx, stream);
        if (rc != CUDA_SUCCESS) {
            throw new CudaException(
                    "cuMemcpyBatchAsync",
                    rc,
                    "count=" + n + ", ending at DMA range " + lastRange + " of " + plan.dmaCount + ", first 0x"
                            + Long.toHexString(batchDsts.getAtIndex(JAVA_LONG, 0)) + " <- 0x"
                            + Long.toHexString(batchSrcs.getAtIndex(JAVA_LONG, 0)) + " ("
                            + batchSizes.getAtIndex(JAVA_LONG, 0) + " bytes)");
        }
    }

    // ---- helpers ----

    private void ensureDescriptors(long runs) {
        if (runs <= descCapacity) {
            return;
        }
        long capacity = Math.max(runs, descCapacity * 2);
        if (descHost != null) {
            descHost.close();
            descDevice.close();
        }
        descHost = device.allocatePinned(capacity * DESC_BYTES);
        descDevice = device.allocate(capacity * DESC_BYTES);
        descCapacity = capacity;
    }

    /** Copies the plan's descriptors to the device buffer on {@code stream}. */
    private void upload(int count, MemorySegment stream) {
        if (count == 0) {
            return;
        }
        ensureDescriptors(count);
        MemorySegment.copy(plan.desc, 0, descHost.memory(), JAVA_LONG, 0, count * 3);
        long bytes = count * DESC_BYTES;
        int rc = Cu.memcpyHtoDAsync(descDevice.address(), descHost.memory().address(), bytes, stream);
        if (rc != CUDA_SUCCESS) {
            throw new CudaException("cuMemcpyHtoDAsync_v2", rc, "descriptors, bytes=" + bytes);
        }
    }

    /**
     * Copies descriptors {@code [first, first+count)} of the plan to the same place in the device buffer on {@code
     * stream}. Each slice has its own place in the pinned buffer, so nothing the GPU has yet to read is overwritten.
     */
    private void uploadSlice(int first, int count, MemorySegment stream) {
        if (count == 0) {
            return;
        }
        long offset = first * DESC_BYTES;
        long bytes = count * DESC_BYTES;
        MemorySegment.copy(plan.desc, first * 3, descHost.memory(), JAVA_LONG, offset, count * 3);
        int rc = Cu.memcpyHtoDAsync(
                descDevice.address() + offset, descHost.memory().address() + offset, bytes, stream);
        if (rc != CUDA_SUCCESS) {
            throw new CudaException("cuMemcpyHtoDAsync_v2", rc, "descriptors, bytes=" + bytes);
        }
    }

    private void launch(MemorySegment function, long runsAddress, int count, MemorySegment stream) {
        if (count == 0) {
            return;
        }
        argRuns.set(JAVA_LONG, 0, runsAddress);
        argCount.set(JAVA_INT, 0, count);
        int grid = Math.min(count, settings.gridCtas());
        int rc = Cu.launchKernel(function, grid, settings.threadsPerCta(), stream, params);
        if (grid > largestGrid) {
            largestGrid = grid;
        }
        if (rc != CUDA_SUCCESS) {
            throw new CudaException(
                    "cuLaunchKernel", rc, "grid=" + grid + ", block=" + settings.threadsPerCta() + ", runs=" + count);
        }
    }

    private static void record(MemorySegment event, MemorySegment stream) {
        int rc = Cu.eventRecord(event, stream);
        if (rc != CUDA_SUCCESS) {
            throw new CudaException("cuEventRecord", rc, "");
        }
    }

    private static void waitEvent(MemorySegment stream, MemorySegment event) {
        int rc = Cu.streamWaitEvent(stream, event);
        if (rc != CUDA_SUCCESS) {
            throw new CudaException("cuStreamWaitEvent", rc, "");
        }
    }

    /** Records the completion event after everything on {@code last} and blocks until it has happened. */
    private void finish(MemorySegment last) {
        boolean timed = startRecorded && gpuEnd != null;
        if (timed) {
            record(gpuEnd, last);
        }
        record(done, last);
        int rc = Cu.eventSynchronize(done);
        if (rc != CUDA_SUCCESS) {
            throw new CudaException("cuEventSynchronize", rc, "the copy failed on the GPU");
        }
        startRecorded = false;
        if (timed && Cu.eventElapsedTime(elapsedMillis, gpuStart, gpuEnd) == CUDA_SUCCESS) {
            float ms = elapsedMillis.get(JAVA_FLOAT, 0);
            gpuNanos = gpuNanos + (long) (ms * 1e6); // one writer: this lane's agent
        }
    }

    private void startTiming(MemorySegment first) {
        startRecorded = false;
        if (gpuStart != null) {
            record(gpuStart, first);
            startRecorded = true;
        }
    }

    private static String copyArgs(long dst, long src, long len) {
        return "dst=0x" + Long.toHexString(dst) + ", src=0x" + Long.toHexString(src) + ", bytes=" + len;
    }

    @Override
    public void close() {
        device.makeCurrent();
        Cu.streamSynchronize(dmaStream);
        Cu.streamSynchronize(kernelStream);
        Cu.streamDestroy(dmaStream);
        Cu.streamDestroy(kernelStream);
        for (int k = 1; k < batchStreams.length; k++) {
            Cu.streamSynchronize(batchStreams[k]);
            Cu.streamDestroy(batchStreams[k]);
            Cu.eventDestroy(batchJoined[k]);
        }
        Cu.eventDestroy(done);
        if (gpuStart != null) {
            Cu.eventDestroy(gpuStart);
            Cu.eventDestroy(gpuEnd);
        }
        for (int i = 0; i < dmaDone.length; i++) {
            Cu.eventDestroy(dmaDone[i]);
            Cu.eventDestroy(kernelDone[i]);
        }
        if (staging != null) {
            staging.close();
        }
        descHost.close();
        descDevice.close();
        arena.close();
    }
}
