package io.pegaflow.gpu.cuda;

import io.pegaflow.gpu.CopyBatch;
import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.gpu.MappedRegion;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * The copy engine on a GPU. Segments are classified through the device's registry: CUDA memory (IPC mappings,
 * device buffers), pinned host memory (the pool), or anything else (ordinary host memory). Copies that touch the
 * GPU go to an agent thread that owns a {@link CopyLane} (streams, events, preallocated descriptor and staging
 * buffers) and run in the mode the settings give for their direction; host-to-host copies are a plain
 * {@code memcpy} on the calling thread. {@link #copy} returns after a CUDA event recorded behind the last
 * operation has completed, so a load flag written afterwards never runs ahead of the bytes.
 *
 * <p>Thread-safe: callers hand requests to the agents through a {@link LaneDispatcher} (a bounded queue; a refused
 * offer is counted and fails the copy, and a copy that meets {@link #close} fails with "closed" instead of waiting
 * for an agent that has stopped); each calling thread reuses one request object, so a copy allocates nothing per run.
 */
public final class CudaCopyEngine implements CopyEngine {
    private static final int QUEUE_CAPACITY = 64;
    /** How long close waits for the agents to finish the copies they are running before it frees their lanes. */
    private static final long CLOSE_TIMEOUT_MS = 10_000;

    private final CudaDevice device;
    private final CudaCopySettings settings;
    private final CopyKernels kernels;
    private final String kernelProblem;
    private final List<CopyLane> lanes;
    private final LaneDispatcher<Request> dispatcher;
    private final ThreadLocal<Request> requests = ThreadLocal.withInitial(Request::new);
    private final LongAdder refusals = new LongAdder();
    private volatile boolean closed;

    /** One copy handed to an agent; reused by its calling thread. */
    private static final class Request extends LaneDispatcher.Ticket {
        CudaCopyMode mode;
        long[] srcBases;
        boolean srcDevice;
        long[] dstBases;
        boolean dstDevice;
        CopyBatch batch;
        /** AUTO's scratch for counting a batch's DMA operations on the calling thread (2D rows included). */
        final CopyPlan sizer = new CopyPlan();
    }

    /** An agent's side of one lane: the device's context current on its thread, copies run on its streams. */
    private final class Agent implements LaneDispatcher.Lane<Request> {
        private final CopyLane lane;

        Agent(CopyLane lane) {
            this.lane = lane;
        }

        @Override
        public void onAgentStart() {
            device.makeCurrent();
        }

        @Override
        public void run(Request r) {
            try {
                lane.run(r.mode, r.srcBases, r.srcDevice, r.dstBases, r.dstDevice, r.batch);
            } catch (RuntimeException | Error e) {
                if (lane.broken()) {
                    brokenBy = e;
                }
                throw e;
            }
        }
    }

    private CudaCopyEngine(
            CudaDevice device,
            CudaCopySettings settings,
            CopyKernels kernels,
            String kernelProblem,
            List<CopyLane> lanes) {
        this.device = device;
        this.settings = settings;
        this.kernels = kernels;
        this.kernelProblem = kernelProblem;
        this.lanes = List.copyOf(lanes);
        this.dispatcher = new LaneDispatcher<>(
                "pegaflow-cuda-copy-" + device.ordinal() + "-",
                QUEUE_CAPACITY,
                this.lanes.stream().map(Agent::new).toList());
    }

    /**
     * Loads the kernels, makes the lanes and starts their agents. If the kernels cannot be loaded (a driver older than
     * the PTX), kernel and staged copies fall back to {@code cuMemcpyAsync}; {@link #kernelProblem()} says why.
     */
    public static CudaCopyEngine create(CudaDevice device, CudaCopySettings settings) {
        device.makeCurrent();
        CopyKernels kernels = null;
        String problem = null;
        try {
            kernels = CopyKernels.load();
        } catch (CudaException e) {
            problem = "the copy kernels did not load, kernel and staged copies fall back to memcpy: " + e.getMessage();
        }
        List<CopyLane> lanes = new ArrayList<>();
        try {
            for (int i = 0; i < settings.lanes(); i++) {
                lanes.add(new CopyLane(device, kernels, settings));
            }
        } catch (RuntimeException e) {
            lanes.forEach(CopyLane::close);
            if (kernels != null) {
                kernels.close();
            }
            throw e;
        }
        CudaCopyEngine engine = new CudaCopyEngine(device, settings, kernels, problem, lanes);
        engine.dispatcher.start();
        return engine;
    }

    /** Set when a failed copy's stream could not be synchronized: the GPU may still touch memory callers free. */
    private volatile Throwable brokenBy;

    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public Optional<String> deviceUuid() {
        return Optional.of(device.uuid());
    }

    @Override
    public boolean ownsDeviceMemory(MemorySegment segment) {
        CudaDevice.Region region = device.regionOf(segment);
        return region != null && region.device();
    }

    @Override
    public MappedRegion openCudaIpc(byte[] ipcHandle, long allocationSizeBytes) {
        return device.openIpc(ipcHandle, allocationSizeBytes);
    }

    public CudaDevice device() {
        return device;
    }

    public CudaCopySettings settings() {
        return settings;
    }

    /** Why the kernels are not in use, if they are not. */
    public Optional<String> kernelProblem() {
        return Optional.ofNullable(kernelProblem);
    }

    /** Copies refused because the agents' queue was full. */
    public long refusals() {
        return refusals.sum();
    }

    /** The largest grid any lane has launched a copy kernel with (0 before the first launch): tests check the knob. */
    int largestGridLaunched() {
        return lanes.stream().mapToInt(CopyLane::largestGridLaunched).max().orElse(0);
    }

    /** GPU time of all copies so far, over all lanes, from CUDA events (see {@link CopyLane#gpuNanos()}); 0 if untimed. */
    public long gpuNanos() {
        return lanes.stream().mapToLong(CopyLane::gpuNanos).sum();
    }

    /** 2D DMAs submitted so far, over all lanes (which DMA path ran; for tests and metrics). */
    public long rowDmas() {
        return lanes.stream().mapToLong(CopyLane::rowDmas).sum();
    }

    /** Every lane's DMA and kernel stream priority, in lane order; the caller has the device's context current. */
    int[] streamPriorities() {
        return lanes.stream()
                .flatMapToInt(l -> java.util.Arrays.stream(l.streamPriorities()))
                .toArray();
    }

    /** "gather staged, scatter staged, 2 lanes, ..." for the start-up log. */
    public String describe() {
        return "device "
                + device
                + ", save (gather) "
                + label(settings.gatherMode())
                + ", load (scatter) "
                + label(settings.scatterMode())
                + ", "
                + settings.lanes()
                + " lanes, kernel grid "
                + settings.gridCtas()
                + "x"
                + settings.threadsPerCta()
                + (settings.lowPriorityStreams() ? ", streams at the lowest priority" : ", streams at default priority")
                + (Cu.hasMemcpyBatch()
                        ? ", batched DMA split over " + settings.batchStreams() + " stream"
                                + (settings.batchStreams() == 1 ? "" : "s") + " (batch-streams)"
                        : "")
                + (Cu.hasMemcpy2D() && settings.dmaRowsMin() > 0
                        ? ", 2D DMAs for >= " + settings.dmaRowsMin() + " runs at fixed pitches (dma-rows-min)"
                        : ", no 2D DMAs")
                + (settings.stages()
                        ? ", staging " + settings.stagingChunks() + " x " + (settings.stagingChunkBytes() >> 20)
                                + " MiB per lane (a copy's chunks ramp up from "
                                + (Math.min(settings.stagingFirstChunkBytes(), settings.stagingChunkBytes()) >> 10)
                                + " KiB)"
                        : "")
                + (kernelProblem == null ? "" : " (" + kernelProblem + ")");
    }

    private String label(CudaCopyMode mode) {
        CudaCopyMode e = effective(mode);
        if (e == CudaCopyMode.AUTO) {
            return "auto (batched DMA where DMA operations average >= "
                    + (Cu.hasMemcpyBatch() && settings.autoBatchMinBytes() > 0
                            ? (settings.autoBatchMinBytes() >> 10) + " KiB"
                            : "- (off: " + (Cu.hasMemcpyBatch() ? "auto-batch-min-bytes=0" : "no cuMemcpyBatchAsync")
                                    + ")")
                    + ", else staged where host ranges average >= " + (settings.autoStagedMinBytes() >> 10)
                    + " KiB, else kernel)";
        }
        return e.label();
    }

    private CudaCopyMode effective(CudaCopyMode mode) {
        if (kernels == null
                && (mode == CudaCopyMode.KERNEL || mode == CudaCopyMode.STAGED || mode == CudaCopyMode.AUTO)) {
            return CudaCopyMode.MEMCPY;
        }
        if (mode == CudaCopyMode.BATCH && !Cu.hasMemcpyBatch()) {
            return CudaCopyMode.MEMCPY;
        }
        return mode;
    }

    @Override
    public void copy(MemorySegment[] srcs, MemorySegment[] dsts, CopyBatch batch) {
        copy(srcs, dsts, batch, null);
    }

    /** A copy between two segments in a given mode (null: the settings' mode), for benchmarks and tests. */
    public void copy(MemorySegment src, MemorySegment dst, CopyBatch batch, CudaCopyMode forcedMode) {
        copy(new MemorySegment[] {src}, new MemorySegment[] {dst}, batch, forcedMode);
    }

    /**
     * {@link #copy(MemorySegment[], MemorySegment[], CopyBatch)} in a given mode (null: the settings' mode for the
     * direction), for benchmarks and tests.
     */
    public void copy(MemorySegment[] srcs, MemorySegment[] dsts, CopyBatch batch, CudaCopyMode forcedMode) {
        // Early refusal, also for host-to-host copies; a close racing past this check is caught by the dispatcher.
        if (closed) {
            throw new IllegalStateException("the CUDA copy engine is closed");
        }
        Throwable broken = brokenBy;
        if (broken != null) {
            throw new IllegalStateException(
                    "the CUDA copy engine refuses copies: a failed copy could not be drained (" + broken + ")", broken);
        }
        CopyEngine.checkRuns(srcs, dsts, batch);
        if (batch.runCount() == 0) {
            return;
        }
        Request r = requests.get();
        int srcKind = classify(srcs, batch.maxSrcPart() + 1, r.srcBases = grow(r.srcBases, srcs.length));
        int dstKind = classify(dsts, batch.maxDstPart() + 1, r.dstBases = grow(r.dstBases, dsts.length));
        boolean anyDevice = (srcKind & DEVICE) != 0 || (dstKind & DEVICE) != 0;
        if (!anyDevice) {
            for (int i = 0; i < batch.runCount(); i++) {
                MemorySegment.copy(
                        srcs[batch.srcPart(i)],
                        batch.srcOffset(i),
                        dsts[batch.dstPart(i)],
                        batch.dstOffset(i),
                        batch.length(i));
            }
            return;
        }
        // Kernels and staging need each side to be all GPU memory or all pinned memory; anything else (ordinary host
        // memory, a mix) goes through cuMemcpyAsync, which takes any pair of addresses.
        boolean uniform = (srcKind == DEVICE || srcKind == PINNED) && (dstKind == DEVICE || dstKind == PINNED);
        boolean srcDevice = srcKind == DEVICE;
        boolean dstDevice = dstKind == DEVICE;
        CudaCopyMode mode = !uniform
                ? CudaCopyMode.MEMCPY
                : forcedMode != null
                        ? forcedMode
                        : srcDevice && !dstDevice
                                ? settings.gatherMode()
                                : !srcDevice ? settings.scatterMode() : CudaCopyMode.KERNEL;
        int direction = srcDevice && !dstDevice ? SAVE : !srcDevice && dstDevice ? LOAD : DEVICE_TO_DEVICE;
        if (mode == CudaCopyMode.AUTO) {
            mode = direction == DEVICE_TO_DEVICE
                    ? CudaCopyMode.KERNEL
                    : autoMode(
                            batch,
                            direction == LOAD,
                            settings.autoStagedMinBytes(),
                            Cu.hasMemcpyBatch() ? settings.autoBatchMinBytes() : 0,
                            Cu.hasMemcpy2D() ? settings.dmaRowsMin() : 0,
                            r.sizer);
        }
        r.mode = effective(mode);
        chosen[direction * MODES.length + r.mode.ordinal()].increment();
        r.srcDevice = srcDevice;
        r.dstDevice = dstDevice;
        r.batch = batch;
        LaneDispatcher.Outcome outcome = dispatcher.submitAndAwait(r);
        r.batch = null;
        switch (outcome) {
            case COMPLETED -> {}
            case FAILED -> {
                Throwable failure = r.failure();
                if (failure instanceof RuntimeException e) {
                    throw e;
                }
                if (failure instanceof Error e) {
                    throw e;
                }
                throw new IllegalStateException(failure);
            }
            case QUEUE_FULL -> {
                refusals.increment();
                throw new IllegalStateException("the CUDA copy queue is full (" + QUEUE_CAPACITY
                        + " copies waiting): more copy threads than it allows");
            }
            case CLOSED -> throw new IllegalStateException("the CUDA copy engine is closed: the copy did not run");
        }
    }

    /**
     * AUTO's choice for one copy: staged when the host side's contiguous ranges (about one DMA each) average at least
     * {@code minBytes}, else the kernel, which costs nothing per range.
     *
     * @param hostIsSource true for a load (pool to GPU)
     */
    public static CudaCopyMode autoMode(CopyBatch batch, boolean hostIsSource, long minBytes) {
        return autoMode(batch, hostIsSource, minBytes, 0);
    }

    /**
     * AUTO's choice: BATCH when {@code minBatchBytes > 0} and the runs (each contiguous on both sides: one DMA) average
     * at least that (no SMs used, so a model on the GPU is barely slowed), else the staged/kernel rule above.
     */
    public static CudaCopyMode autoMode(CopyBatch batch, boolean hostIsSource, long minBytes, long minBatchBytes) {
        return autoMode(batch, hostIsSource, minBytes, minBatchBytes, 0);
    }

    /**
     * AUTO's choice, counting a 2D DMA (at least {@code dmaRowsMin} runs of one length at fixed pitches, see {@link
     * CudaCopySettings#dmaRowsMin()}) as one operation: BATCH when the batch's DMA operations average at least {@code
     * minBatchBytes}, else the staged/kernel rule. A layer's consecutive blocks of 16 KiB (TP 4) then go as 2D DMAs
     * rather than through the SMs.
     */
    public static CudaCopyMode autoMode(
            CopyBatch batch, boolean hostIsSource, long minBytes, long minBatchBytes, int dmaRowsMin) {
        return autoMode(batch, hostIsSource, minBytes, minBatchBytes, dmaRowsMin, new CopyPlan());
    }

    private static CudaCopyMode autoMode(
            CopyBatch batch, boolean hostIsSource, long minBytes, long minBatchBytes, int dmaRowsMin, CopyPlan sizer) {
        // the runs' average first: where it is large enough already, counting 2D DMAs would change nothing
        if (minBatchBytes > 0
                && batch.runCount() > 0
                && (batch.totalBytes() / batch.runCount() >= minBatchBytes
                        || batch.totalBytes() / sizer.dmaOperations(batch, dmaRowsMin, maxOps(batch, minBatchBytes))
                                >= minBatchBytes)) {
            return CudaCopyMode.BATCH;
        }
        int ranges = batch.contiguousRanges(hostIsSource);
        return ranges == 0 || batch.totalBytes() / ranges >= minBytes ? CudaCopyMode.STAGED : CudaCopyMode.KERNEL;
    }

    /** The most DMA operations a batch may need and still average {@code minBatchBytes} each. */
    private static int maxOps(CopyBatch batch, long minBatchBytes) {
        return (int) Math.min(Integer.MAX_VALUE - 1, batch.totalBytes() / minBatchBytes);
    }

    private static final CudaCopyMode[] MODES = CudaCopyMode.values();
    private static final int SAVE = 0;
    private static final int LOAD = 1;
    private static final int DEVICE_TO_DEVICE = 2;
    private static final String[] DIRECTIONS = {"save", "load", "device"};
    /** Copies by direction and the mode they ran in: what AUTO chose shows in the metrics. */
    private final LongAdder[] chosen = newAdders(DIRECTIONS.length * MODES.length);

    private static LongAdder[] newAdders(int n) {
        LongAdder[] adders = new LongAdder[n];
        for (int i = 0; i < n; i++) {
            adders[i] = new LongAdder();
        }
        return adders;
    }

    @Override
    public Map<String, Long> copiesByMode() {
        Map<String, Long> counts = new TreeMap<>();
        for (int d = 0; d < DIRECTIONS.length; d++) {
            for (CudaCopyMode m : MODES) {
                long n = chosen[d * MODES.length + m.ordinal()].sum();
                if (n > 0) {
                    counts.put(DIRECTIONS[d] + "/" + m.label(), n);
                }
            }
        }
        return counts;
    }

    private static final int DEVICE = 1;
    private static final int PINNED = 2;
    private static final int PLAIN = 4;

    /** ORs the kinds of the first {@code used} segments into a mask, and stores their addresses in {@code bases}. */
    private int classify(MemorySegment[] segments, int used, long[] bases) {
        int kinds = 0;
        for (int i = 0; i < used; i++) {
            CudaDevice.Region region = device.regionOf(segments[i]);
            kinds |= region == null ? PLAIN : region.device() ? DEVICE : PINNED;
            bases[i] = segments[i].address();
        }
        return kinds;
    }

    private static long[] grow(long[] array, int n) {
        return array != null && array.length >= n ? array : new long[Math.max(n, 8)];
    }

    /**
     * Refuses new copies, fails the queued ones ("closed"), lets the copies the agents are running finish, then frees
     * the lanes and the kernels. If an agent is still inside a copy after {@value #CLOSE_TIMEOUT_MS} ms, the lanes and
     * kernels are left allocated rather than freed under a copy the GPU may still be running.
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (!dispatcher.close(CLOSE_TIMEOUT_MS)) {
            return;
        }
        device.makeCurrent();
        lanes.forEach(CopyLane::close);
        if (kernels != null) {
            kernels.close();
        }
    }
}
