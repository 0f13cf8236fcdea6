package io.pegaflow.gpu;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * Copies batches of byte runs between a worker's memory and the pool. One interface for the host stand-in and the
 * CUDA engine so the block store runs unchanged on both; every log line and metric names the engine that ran.
 */
public interface CopyEngine extends AutoCloseable {
    /** "host" or "cuda": reported by Health and tagged on metrics. */
    String name();

    /**
     * Copies every run of {@code batch} from {@code src} to {@code dst} and returns when the bytes have landed. Every
     * run must be in part 0 of both sides.
     *
     * @throws IndexOutOfBoundsException if a run falls outside either segment (nothing is copied then)
     */
    default void copy(MemorySegment src, MemorySegment dst, CopyBatch batch) {
        copy(new MemorySegment[] {src}, new MemorySegment[] {dst}, batch);
    }

    /**
     * Copies every run of {@code batch} from {@code srcs[run's source part]} to {@code dsts[run's destination part]},
     * as one operation, and returns when all bytes have landed. (A save gathers from several worker allocations into
     * the pool; a load scatters into several.)
     *
     * @throws IndexOutOfBoundsException if a run's part has no segment or a run falls outside its segments (nothing is
     *     copied then)
     */
    void copy(MemorySegment[] srcs, MemorySegment[] dsts, CopyBatch batch);

    /**
     * Copies run so far by direction and mode ({@code "save/staged"}, {@code "load/kernel"}, ...): which mode an
     * engine that chooses per copy picked. Empty for an engine with a single way of copying.
     */
    default Map<String, Long> copiesByMode() {
        return Map.of();
    }

    /** The GPU this engine serves as a canonical UUID ({@code GPU-xxxxxxxx-...}); empty for an engine without one. */
    default Optional<String> deviceUuid() {
        return Optional.empty();
    }

    /** Every GPU this engine serves, canonical UUIDs; empty for an engine without a GPU. */
    default List<String> deviceUuids() {
        return deviceUuid().map(List::of).orElse(List.of());
    }

    /**
     * Whether {@code segment} lies in GPU memory this engine's device knows (a CUDA IPC mapping or a device buffer):
     * an engine serving several GPUs hands a copy to the one that owns the worker's side.
     */
    default boolean ownsDeviceMemory(MemorySegment segment) {
        return false;
    }

    /**
     * {@link #openCudaIpc(byte[], long)} on the GPU {@code deviceUuid} names (with or without {@code GPU-} and dashes).
     *
     * @throws IllegalArgumentException if this engine does not serve that GPU (the message lists the ones it does)
     */
    default MappedRegion openCudaIpc(String deviceUuid, byte[] ipcHandle, long allocationSizeBytes) {
        String wanted = canonicalGpu(deviceUuid);
        if (deviceUuids().stream().noneMatch(u -> canonicalGpu(u).equals(wanted))) {
            throw new IllegalArgumentException("device " + deviceUuid + " is not served here (" + deviceUuids() + ")");
        }
        return openCudaIpc(ipcHandle, allocationSizeBytes);
    }

    /** A GPU UUID compared ignoring case, dashes and a {@code GPU-} prefix. */
    static String canonicalGpu(String uuid) {
        String t = uuid.trim().toLowerCase(Locale.ROOT);
        if (t.startsWith("gpu-")) {
            t = t.substring(4);
        }
        return t.replace("-", "");
    }

    /**
     * Opens a worker's CUDA allocation from its 64-byte {@code cudaIpcMemHandle_t}; an allocation already open in this
     * process is shared (each call returns its own reference; close each one).
     *
     * @param allocationSizeBytes the bytes the worker says the allocation holds (checked against the driver)
     * @throws UnsupportedOperationException from an engine without a GPU
     * @throws IllegalArgumentException if the handle or size is wrong (the message names which)
     */
    default MappedRegion openCudaIpc(byte[] ipcHandle, long allocationSizeBytes) {
        throw new UnsupportedOperationException("the " + name() + " copy engine cannot open CUDA IPC handles");
    }

    /**
     * Checks every run of {@code batch} against its segments.
     *
     * @throws IndexOutOfBoundsException naming the first bad run
     */
    static void checkRuns(MemorySegment[] srcs, MemorySegment[] dsts, CopyBatch batch) {
        if (batch.maxSrcPart() >= srcs.length || batch.maxDstPart() >= dsts.length) {
            throw new IndexOutOfBoundsException("runs name source part "
                    + batch.maxSrcPart()
                    + " and destination part "
                    + batch.maxDstPart()
                    + " but "
                    + srcs.length
                    + " source and "
                    + dsts.length
                    + " destination segments were given");
        }
        for (int i = 0; i < batch.runCount(); i++) {
            checkRange("source", srcs[batch.srcPart(i)], batch.srcOffset(i), batch.length(i));
            checkRange("destination", dsts[batch.dstPart(i)], batch.dstOffset(i), batch.length(i));
        }
    }

    private static void checkRange(String what, MemorySegment segment, long offset, long length) {
        if (offset < 0 || length < 0 || offset > segment.byteSize() - length) {
            throw new IndexOutOfBoundsException(what + " run [" + offset + ", +" + length + ") outside a segment of "
                    + segment.byteSize() + " bytes");
        }
    }

    @Override
    default void close() {}
}
