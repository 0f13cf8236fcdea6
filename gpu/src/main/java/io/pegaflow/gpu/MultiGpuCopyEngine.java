package io.pegaflow.gpu;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * One copy engine per GPU behind one {@link CopyEngine}: a node serving every GPU of its host. A copy goes to the
 * engine whose GPU owns the worker's side of it (its CUDA IPC mappings live in that GPU's registry); a copy that
 * touches no GPU memory (shared-memory registrations) goes to the first engine, which copies host to host. A CUDA IPC
 * handle is opened by the engine of the GPU the registration names. The pool is registered with every engine's GPU
 * before this is built, so each engine sees it as pinned memory.
 *
 * <p>Thread-safe as its engines are; routing scans at most a few segments per engine and allocates nothing.
 */
public final class MultiGpuCopyEngine implements CopyEngine {
    private final List<CopyEngine> engines;
    private final List<String> uuids;

    /**
     * @param engines one per GPU, each serving exactly one GPU; at least one; closed by {@link #close()}
     * @throws IllegalArgumentException if empty, or an engine serves no GPU or the same GPU as another
     */
    public MultiGpuCopyEngine(List<? extends CopyEngine> engines) {
        if (engines.isEmpty()) {
            throw new IllegalArgumentException("at least one copy engine is needed");
        }
        List<String> all = new ArrayList<>();
        for (CopyEngine e : engines) {
            if (e.deviceUuids().size() != 1) {
                throw new IllegalArgumentException(
                        "each engine must serve one GPU; " + e.name() + " serves " + e.deviceUuids());
            }
            String uuid = e.deviceUuids().getFirst();
            if (all.stream().anyMatch(u -> CopyEngine.canonicalGpu(u).equals(CopyEngine.canonicalGpu(uuid)))) {
                throw new IllegalArgumentException("two engines serve " + uuid);
            }
            all.add(uuid);
        }
        this.engines = List.copyOf(engines);
        this.uuids = List.copyOf(all);
    }

    @Override
    public String name() {
        return engines.getFirst().name();
    }

    @Override
    public Optional<String> deviceUuid() {
        return Optional.of(uuids.getFirst());
    }

    @Override
    public List<String> deviceUuids() {
        return uuids;
    }

    /** The engines, in the order of the GPUs given. */
    public List<CopyEngine> engines() {
        return engines;
    }

    @Override
    public boolean ownsDeviceMemory(MemorySegment segment) {
        for (CopyEngine e : engines) {
            if (e.ownsDeviceMemory(segment)) {
                return true;
            }
        }
        return false;
    }

    @Override
    public void copy(MemorySegment[] srcs, MemorySegment[] dsts, CopyBatch batch) {
        engineFor(srcs, batch.runCount() == 0 ? 0 : batch.maxSrcPart() + 1, dsts, batch.maxDstPart() + 1)
                .copy(srcs, dsts, batch);
    }

    /** The engine whose GPU owns one of the first segments of either side; the first engine if none does (public for tests). */
    public CopyEngine engineFor(MemorySegment[] srcs, int srcUsed, MemorySegment[] dsts, int dstUsed) {
        for (CopyEngine e : engines) {
            if (ownsAny(e, srcs, srcUsed) || ownsAny(e, dsts, dstUsed)) {
                return e;
            }
        }
        return engines.getFirst();
    }

    private static boolean ownsAny(CopyEngine e, MemorySegment[] segments, int used) {
        for (int i = 0; i < Math.min(used, segments.length); i++) {
            if (e.ownsDeviceMemory(segments[i])) {
                return true;
            }
        }
        return false;
    }

    @Override
    public MappedRegion openCudaIpc(String deviceUuid, byte[] ipcHandle, long allocationSizeBytes) {
        String wanted = CopyEngine.canonicalGpu(deviceUuid);
        for (int i = 0; i < engines.size(); i++) {
            if (CopyEngine.canonicalGpu(uuids.get(i)).equals(wanted)) {
                return engines.get(i).openCudaIpc(ipcHandle, allocationSizeBytes);
            }
        }
        throw new IllegalArgumentException("device " + deviceUuid + " is not served here (" + uuids + ")");
    }

    /** Opens on the first GPU: callers that know the worker's GPU use {@link #openCudaIpc(String, byte[], long)}. */
    @Override
    public MappedRegion openCudaIpc(byte[] ipcHandle, long allocationSizeBytes) {
        return engines.getFirst().openCudaIpc(ipcHandle, allocationSizeBytes);
    }

    /** Closes every engine; the first failure is thrown after all were tried. */
    @Override
    public void close() {
        RuntimeException first = null;
        for (CopyEngine e : engines) {
            try {
                e.close();
            } catch (RuntimeException ex) {
                if (first == null) {
                    first = ex;
                } else {
                    first.addSuppressed(ex);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
