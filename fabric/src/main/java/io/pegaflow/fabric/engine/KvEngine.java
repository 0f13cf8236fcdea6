package io.pegaflow.fabric.engine;

import io.pegaflow.gpu.CopyBatch;
import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.gpu.MappedRegion;
import io.pegaflow.gpu.SharedMemoryFile;
import io.pegaflow.proto.engine.ByteSegment;
import io.pegaflow.proto.engine.CudaIpcRegion;
import io.pegaflow.proto.engine.LayerRegistration;
import io.pegaflow.proto.engine.RegisterContextRequest;
import io.pegaflow.store.BlockEntry;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.NamespaceLayout;
import io.pegaflow.store.PoolFullException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The local KV engine: validates requests, keeps worker contexts and namespace layouts, and drives copies between
 * workers' memory and the pool through the {@link CopyEngine}. Bad requests throw {@link EngineException} before
 * anything changes.
 */
public final class KvEngine {
    private static final Logger log = LoggerFactory.getLogger(KvEngine.class);
    static final int MAX_HASH_BYTES = 64;
    /** Shared-memory files (KV caches, load flags) must live here: {@code -Dpegaflow.shm-dir}, default /dev/shm. */
    static final Path SHARED_MEMORY_DIR = Path.of(System.getProperty("pegaflow.shm-dir", "/dev/shm"));

    private final BlockStore store;
    /** The pool as the one-segment side of every copy. */
    private final MemorySegment[] poolRegion;

    private final CopyEngine copyEngine;
    private final EngineListener listener;
    private final ExecutorService copyThreads;
    private final ScheduledExecutorService housekeeping;
    private final ConcurrentHashMap<String, WorkerContext> contexts = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, NamespaceLayout> namespaces = new ConcurrentHashMap<>();
    /** Worker (instance, tp rank, pp rank) to its current context: a re-registration replaces the old one. */
    private final ConcurrentHashMap<String, String> contextByWorker = new ConcurrentHashMap<>();

    private final AtomicLong contextSeq = new AtomicLong();
    private final ThreadLocal<CopyBatch> batches = ThreadLocal.withInitial(() -> new CopyBatch(4096));

    public KvEngine(BlockStore store, CopyEngine copyEngine, int copyThreadCount, EngineListener listener) {
        this.store = store;
        this.poolRegion = new MemorySegment[] {store.pool().memory()};
        this.copyEngine = copyEngine;
        this.listener = listener;
        this.copyThreads = Executors.newFixedThreadPool(copyThreadCount, named("pegaflow-copy"));
        this.housekeeping = Executors.newSingleThreadScheduledExecutor(named("pegaflow-store-sweeper"));
        housekeeping.scheduleWithFixedDelay(this::sweepSafely, 100, 100, TimeUnit.MILLISECONDS);
    }

    public BlockStore store() {
        return store;
    }

    public String copyEngineName() {
        return copyEngine.name();
    }

    public int contextCount() {
        return contexts.size();
    }

    // ---- registration ----

    public record Registered(String contextId, long blockBytes, long slotBytes) {}

    public Registered register(RegisterContextRequest request) {
        NamespaceLayout layout = validateHeader(request);
        List<MappedRegion> mapped = new ArrayList<>();
        boolean published = false;
        try {
            LayerMapping[] layers = mapLayers(request, mapped, copyEngine);
            long slotBytes = layers[0].slotBytes();
            for (LayerMapping layer : layers) {
                if (layer.slotBytes() != slotBytes) {
                    throw EngineException.invalid("layers: layer "
                            + layer.layerIndex()
                            + " has "
                            + layer.slotBytes()
                            + " bytes per block but layer "
                            + layers[0].layerIndex()
                            + " has "
                            + slotBytes
                            + "; layers of different sizes are not supported");
                }
            }
            layout = new NamespaceLayout(layout.namespace(), layout.totalLayers(), layout.tpSize(), slotBytes);
            long blockBytes;
            try {
                blockBytes = Math.multiplyExact((long) layout.slotCount(), slotBytes);
            } catch (ArithmeticException e) {
                blockBytes = Long.MAX_VALUE;
            }
            if (blockBytes > store.pool().slabBytes()) {
                throw EngineException.precondition("a block of this namespace needs "
                        + (blockBytes == Long.MAX_VALUE ? "more than " + Long.MAX_VALUE : String.valueOf(blockBytes))
                        + " bytes, more than the pool's largest allocation ("
                        + store.pool().slabBytes()
                        + " bytes); start the node with a larger --pool-size");
            }
            NamespaceLayout existing = namespaces.putIfAbsent(layout.namespace(), layout);
            if (existing != null && existing.mismatch(layout) != null) {
                throw EngineException.precondition("namespace \"" + layout.namespace() + "\": "
                        + existing.mismatch(layout) + " (registered earlier)");
            }
            String worker = WorkerContext.workerKey(request.getInstanceId(), request.getTpRank(), request.getPpRank());
            String id = worker + "#" + contextSeq.incrementAndGet();
            WorkerContext context = new WorkerContext(
                    id,
                    request.getInstanceId(),
                    layout,
                    request.getTpRank(),
                    request.getPpRank(),
                    request.getDevice(),
                    layers,
                    mapped);
            contexts.put(id, context);
            published = true; // from here on the context owns the mappings: unregister closes them
            // Two registrations of one worker may race (they run on a thread pool): the higher sequence number wins.
            String[] replaced = new String[1];
            contextByWorker.compute(worker, (w, current) -> {
                if (current == null || sequenceOf(current) < sequenceOf(id)) {
                    replaced[0] = current;
                    return id;
                }
                replaced[0] = id;
                return current;
            });
            if (replaced[0] != null) {
                unregister(replaced[0], "replaced by a newer registration of " + worker);
            }
            if (id.equals(replaced[0])) {
                throw EngineException.precondition("a newer registration of " + worker
                        + " arrived while this one was being set up; use the newer one");
            }
            log.info(
                    "context {} registered: namespace {}, {} layers in {} regions, tp {}/{}, {} blocks, {} bytes per block slot,"
                            + " copy engine {}",
                    id,
                    layout.namespace(),
                    layers.length,
                    mapped.size(),
                    request.getTpRank(),
                    layout.tpSize(),
                    context.numBlocks,
                    slotBytes,
                    copyEngine.name());
            listener.contextsChanged(contexts.size());
            return new Registered(id, layout.blockBytes(), slotBytes * layers.length);
        } catch (RuntimeException e) {
            if (!published) {
                mapped.forEach(MappedRegion::close);
            }
            throw e;
        }
    }

    private static NamespaceLayout validateHeader(RegisterContextRequest r) {
        // Protobuf's uint32/uint64 arrive as Java int/long: compare them unsigned so 2^32-1 is "too large", not -1.
        long tpSize = Integer.toUnsignedLong(r.getTpSize());
        long tpRank = Integer.toUnsignedLong(r.getTpRank());
        long totalLayers = Integer.toUnsignedLong(r.getTotalLayers());
        List<String> problems = new ArrayList<>();
        if (r.getInstanceId().isBlank()) {
            problems.add("instance_id: missing");
        }
        if (r.getNamespace().isBlank()) {
            problems.add("namespace: missing");
        }
        if (tpSize < 1 || tpSize > 1024) {
            problems.add("tp_size: " + tpSize + " is out of range 1..1024");
        } else if (tpRank >= tpSize) {
            problems.add("tp_rank: " + tpRank + " is out of range 0.." + (tpSize - 1));
        }
        if (Integer.toUnsignedLong(r.getPpRank()) > 1024) {
            problems.add("pp_rank: " + Integer.toUnsignedLong(r.getPpRank()) + " is out of range 0..1024");
        }
        if (totalLayers < 1 || totalLayers > 4096) {
            problems.add("total_layers: " + totalLayers + " is out of range 1..4096");
        }
        if (r.getLayersCount() == 0) {
            problems.add("layers: at least one layer is needed");
        }
        if (!problems.isEmpty()) {
            throw EngineException.invalid(String.join("; ", problems));
        }
        return new NamespaceLayout(r.getNamespace(), r.getTotalLayers(), r.getTpSize(), 0);
    }

    private static LayerMapping[] mapLayers(
            RegisterContextRequest r, List<MappedRegion> mapped, CopyEngine copyEngine) {
        // Regions by shm path or IPC handle: layers sharing one file or allocation share one mapping.
        Map<String, Integer> regionByPath = new LinkedHashMap<>();
        boolean[] seen = new boolean[r.getTotalLayers()];
        LayerMapping[] layers = new LayerMapping[r.getLayersCount()];
        for (int i = 0; i < r.getLayersCount(); i++) {
            LayerRegistration layer = r.getLayers(i);
            String at = "layers[" + i + "]";
            if (Integer.toUnsignedLong(layer.getLayerIndex()) >= r.getTotalLayers()) {
                throw EngineException.invalid(at
                        + ".layer_index: "
                        + Integer.toUnsignedString(layer.getLayerIndex())
                        + " is out of range 0.."
                        + (r.getTotalLayers() - 1));
            }
            if (seen[layer.getLayerIndex()]) {
                throw EngineException.invalid(at + ".layer_index: " + layer.getLayerIndex() + " is registered twice");
            }
            seen[layer.getLayerIndex()] = true;
            if (layer.getNumBlocks() < 1) {
                throw EngineException.invalid(at + ".num_blocks: " + Integer.toUnsignedString(layer.getNumBlocks())
                        + " is out of range 1.." + Integer.MAX_VALUE);
            }
            if (layer.getBlockStrideBytes() < 1) {
                throw EngineException.invalid(at + ".block_stride_bytes: "
                        + Long.toUnsignedString(layer.getBlockStrideBytes()) + " must be in 1.." + Long.MAX_VALUE);
            }
            if (layer.getSegmentsCount() == 0 || layer.getSegmentsCount() > 8) {
                throw EngineException.invalid(at + ".segments: needs 1..8 segments, got " + layer.getSegmentsCount());
            }
            long[] offsets = new long[layer.getSegmentsCount()];
            long[] lengths = new long[layer.getSegmentsCount()];
            long slotBytes = 0;
            for (int s = 0; s < layer.getSegmentsCount(); s++) {
                ByteSegment seg = layer.getSegments(s);
                if (seg.getLengthBytes() < 1) {
                    throw EngineException.invalid(at + ".segments[" + s + "].length_bytes: "
                            + Long.toUnsignedString(seg.getLengthBytes()) + " must be in 1.." + Long.MAX_VALUE);
                }
                if (seg.getOffsetBytes() < 0) {
                    throw EngineException.invalid(at + ".segments[" + s + "].offset_bytes: "
                            + Long.toUnsignedString(seg.getOffsetBytes()) + " is too large");
                }
                offsets[s] = seg.getOffsetBytes();
                lengths[s] = seg.getLengthBytes();
                try {
                    slotBytes = Math.addExact(slotBytes, seg.getLengthBytes());
                } catch (ArithmeticException e) {
                    throw EngineException.invalid(
                            at + ".segments: the lengths add up to more than " + Long.MAX_VALUE + " bytes");
                }
            }
            if (!layer.hasRegion()) {
                throw EngineException.invalid(at + ".region: missing");
            }
            String path;
            long base;
            Integer regionIndex;
            if (layer.getRegion().hasCudaIpc()) {
                CudaIpcRegion ipc = layer.getRegion().getCudaIpc();
                path = "cuda-ipc:"
                        + java.util.HexFormat.of().formatHex(ipc.getIpcHandle().toByteArray());
                base = ipc.getOffsetBytes();
                regionIndex = regionByPath.get(path);
                if (regionIndex == null) {
                    mapped.add(openCudaIpc(at, r.getDevice(), ipc, copyEngine));
                    regionIndex = mapped.size() - 1;
                    regionByPath.put(path, regionIndex);
                }
            } else {
                if (!layer.getRegion().hasShm()
                        || layer.getRegion().getShm().getPath().isBlank()) {
                    throw EngineException.invalid(at + ".region.shm.path: missing");
                }
                path = layer.getRegion().getShm().getPath();
                base = layer.getRegion().getShm().getOffsetBytes();
                regionIndex = regionByPath.get(path);
                if (regionIndex == null) {
                    try {
                        mapped.add(SharedMemoryFile.mapWithin(SHARED_MEMORY_DIR, Path.of(path)));
                    } catch (IOException | RuntimeException e) {
                        throw EngineException.invalid(
                                at + ".region.shm.path: cannot map " + path + ": " + e.getMessage());
                    }
                    regionIndex = mapped.size() - 1;
                    regionByPath.put(path, regionIndex);
                }
            }
            MappedRegion file = mapped.get(regionIndex);
            if (base < 0) {
                throw EngineException.invalid(at
                        + (layer.getRegion().hasCudaIpc()
                                ? ".region.cuda_ipc.offset_bytes: "
                                : ".region.shm.offset_bytes: ")
                        + Long.toUnsignedString(base)
                        + " is past the end of "
                        + file.description());
            }
            for (int s = 0; s < offsets.length; s++) {
                long end;
                try {
                    long lastBlock = Math.multiplyExact((long) (layer.getNumBlocks() - 1), layer.getBlockStrideBytes());
                    end = Math.addExact(Math.addExact(Math.addExact(base, lastBlock), offsets[s]), lengths[s]);
                } catch (ArithmeticException e) {
                    end = Long.MAX_VALUE;
                }
                if (end > file.sizeBytes()) {
                    throw EngineException.invalid(at
                            + ".segments["
                            + s
                            + "]: block "
                            + (layer.getNumBlocks() - 1)
                            + " ends at byte "
                            + end
                            + ", past the end of "
                            + file.description()
                            + " ("
                            + file.sizeBytes()
                            + " bytes)");
                }
            }
            layers[i] = new LayerMapping(
                    layer.getName(),
                    layer.getLayerIndex(),
                    regionIndex,
                    file.memory(),
                    base,
                    layer.getNumBlocks(),
                    layer.getBlockStrideBytes(),
                    offsets,
                    lengths,
                    slotBytes);
        }
        Arrays.sort(layers, Comparator.comparingInt(LayerMapping::layerIndex));
        return layers;
    }

    /**
     * Opens (or shares) a worker's CUDA allocation: only on a node whose copy engine serves the worker's GPU. Refusals
     * are FAILED_PRECONDITION (wrong node or GPU), a malformed region INVALID_ARGUMENT.
     */
    private static MappedRegion openCudaIpc(String at, String device, CudaIpcRegion ipc, CopyEngine copyEngine) {
        if (copyEngine.deviceUuid().isEmpty()) {
            throw EngineException.precondition(
                    at + ".region: CUDA IPC regions need a node running the CUDA copy engine (--device); this node runs"
                            + " the " + copyEngine.name() + " copy engine and maps shared-memory files only");
        }
        String served = copyEngine.deviceUuid().get();
        if (!sameGpu(device, served)) {
            throw EngineException.precondition("device: \"" + device + "\" is not the GPU this node serves (" + served
                    + "); register with the node" + " started for that GPU");
        }
        if (ipc.getIpcHandle().size() != 64) {
            throw EngineException.invalid(at + ".region.cuda_ipc.ipc_handle: "
                    + ipc.getIpcHandle().size() + " bytes; a cudaIpcMemHandle_t has 64");
        }
        if (ipc.getAllocationSizeBytes() < 1) {
            throw EngineException.invalid(at + ".region.cuda_ipc.allocation_size_bytes: must be positive");
        }
        try {
            return copyEngine.openCudaIpc(ipc.getIpcHandle().toByteArray(), ipc.getAllocationSizeBytes());
        } catch (IllegalArgumentException e) {
            throw EngineException.invalid(at + ".region.cuda_ipc." + e.getMessage());
        } catch (RuntimeException e) {
            throw EngineException.precondition(at + ".region.cuda_ipc: cannot open the handle: " + e.getMessage());
        }
    }

    /** Whether two GPU UUIDs name the same GPU, ignoring case, dashes and a "GPU-" prefix. */
    static boolean sameGpu(String a, String b) {
        return canonicalGpu(a).equals(canonicalGpu(b));
    }

    private static String canonicalGpu(String uuid) {
        String t = uuid.trim().toLowerCase(java.util.Locale.ROOT);
        if (t.startsWith("gpu-")) {
            t = t.substring(4);
        }
        return t.replace("-", "");
    }

    private static long sequenceOf(String contextId) {
        return Long.parseLong(contextId.substring(contextId.lastIndexOf('#') + 1));
    }

    /** Drops a context's mappings (after its operations in flight); its blocks stay cached. */
    public boolean unregister(String contextId, String why) {
        WorkerContext context = contexts.remove(contextId);
        if (context == null) {
            return false;
        }
        contextByWorker.remove(context.workerKey(), contextId);
        context.close();
        log.info("context {} unregistered ({})", contextId, why);
        listener.contextsChanged(contexts.size());
        return true;
    }

    public boolean hasContext(String contextId) {
        return contexts.containsKey(contextId);
    }

    // ---- save ----

    public record SaveResult(int stored, int skipped, int sealed) {}

    public CompletableFuture<SaveResult> save(String contextId, int[] blockIds, byte[][] hashes, int[] layerIndices) {
        WorkerContext context = requireContext(contextId);
        validateBlocks(context, blockIds, hashes);
        int[] slots = slotsFor(context, layerIndices);
        if (!context.acquire()) {
            throw EngineException.notFound("context_id: " + contextId + " was unregistered");
        }
        BlockStore.SaveReservation reservation;
        try {
            reservation = store.reserveForSave(context.layout, blockIds, hashes, slots);
        } catch (PoolFullException e) {
            context.releaseRef();
            throw new EngineException(EngineException.Code.RESOURCE_EXHAUSTED, e.getMessage());
        } catch (RuntimeException e) {
            context.releaseRef();
            throw e;
        }
        List<BlockStore.SaveTarget> targets = reservation.targets();
        int skipped = blockIds.length - targets.size();
        CompletableFuture<SaveResult> own;
        if (targets.isEmpty()) {
            context.releaseRef();
            own = CompletableFuture.completedFuture(new SaveResult(0, skipped, 0));
        } else {
            try {
                own = CompletableFuture.supplyAsync(() -> copyAndSeal(context, targets, skipped), copyThreads);
            } catch (RejectedExecutionException e) {
                store.completeSave(targets, false);
                context.releaseRef();
                throw new EngineException(EngineException.Code.UNAVAILABLE, "the node is stopping: save refused");
            }
        }
        if (reservation.othersInFlight().isEmpty()) {
            return own;
        }
        // Some slots this request names are being copied by another request right now: the reply must not say they
        // are stored until that copy has landed (a caller may free its blocks on our reply).
        return own.thenCombine(
                CompletableFuture.allOf(reservation.othersInFlight().toArray(CompletableFuture[]::new)),
                (result, landed) -> {
                    if (!store.allArrived(reservation.othersTargets())) {
                        throw new EngineException(
                                EngineException.Code.UNAVAILABLE,
                                "a concurrent save of some of these blocks failed; save them again");
                    }
                    return result;
                });
    }

    /** Runs on a copy thread: copies, then seals or rolls back exactly once whatever is thrown. */
    private SaveResult copyAndSeal(WorkerContext context, List<BlockStore.SaveTarget> targets, int skipped) {
        long startNs = System.nanoTime();
        boolean copied = false;
        try {
            long bytes = copySave(context, targets);
            copied = true;
            int sealed = store.completeSave(targets, true);
            listener.saved(bytes, System.nanoTime() - startNs, targets.size());
            return new SaveResult(targets.size(), skipped, sealed);
        } catch (RuntimeException e) {
            throw new EngineException(EngineException.Code.INTERNAL, "save copy failed: " + e.getMessage(), e);
        } finally {
            if (!copied) {
                store.completeSave(targets, false);
            }
            context.releaseRef();
        }
    }

    /** Worker memory to pool. */
    private long copySave(WorkerContext context, List<BlockStore.SaveTarget> targets) {
        // One batch over every region, runs in pool order (a block's slots are contiguous there), copied as one unit.
        CopyBatch batch = batches.get();
        batch.clear();
        for (BlockStore.SaveTarget target : targets) {
            for (int slot : target.slots()) {
                LayerMapping layer = context.layer(slot / context.layout.tpSize());
                long dst = target.entry().offset() + (long) slot * context.layout.slotBytes();
                for (int s = 0; s < layer.segmentOffsets().length; s++) {
                    batch.add(
                            layer.regionIndex(),
                            0,
                            layer.sourceOffset(target.blockId(), s),
                            dst,
                            layer.segmentLengths()[s]);
                    dst += layer.segmentLengths()[s];
                }
            }
        }
        if (batch.runCount() > 0) {
            copyEngine.copy(context.regions, poolRegion, batch);
        }
        return batch.totalBytes();
    }

    // ---- query ----

    public record QueryResult(int hitBlocks, long leaseId, long leaseExpiresInMs) {}

    public QueryResult query(String namespace, byte[][] hashes, long leaseTtlMs) {
        if (namespace.isBlank()) {
            throw EngineException.invalid("namespace: missing");
        }
        for (int i = 0; i < hashes.length; i++) {
            checkHash("hashes[" + i + "]", hashes[i]);
        }
        if (leaseTtlMs < 0 || leaseTtlMs > 600_000) {
            throw EngineException.invalid("lease_ttl_ms: " + leaseTtlMs + " is out of range 0..600000");
        }
        io.pegaflow.store.QueryResult r = store.query(namespace, hashes, leaseTtlMs);
        return new QueryResult(
                r.hitCount(), r.leaseId(), r.lease() == null ? 0 : r.lease().expiresInMs());
    }

    public boolean release(long leaseId) {
        return store.release(leaseId);
    }

    // ---- load ----

    public record LoadStarted(int[] failedBlockIds, int scheduled) {}

    /**
     * Starts a load; missing blocks are reported at once, present ones are copied in the background and the flag is
     * set when they have landed.
     */
    public LoadStarted load(
            String contextId, int[] blockIds, byte[][] hashes, long leaseId, String flagPath, long flagOffset) {
        WorkerContext context = requireContext(contextId);
        validateBlocks(context, blockIds, hashes);
        if (flagPath.isBlank()) {
            throw EngineException.invalid("flag.path: missing");
        }
        if (flagOffset < 0) {
            throw EngineException.invalid("flag.offset_bytes: " + Long.toUnsignedString(flagOffset) + " is too large");
        }
        if (flagOffset % 8 != 0) {
            throw EngineException.invalid("flag.offset_bytes: " + flagOffset + " is not 8-byte aligned");
        }
        if (!context.acquire()) {
            throw EngineException.notFound("context_id: " + contextId + " was unregistered");
        }
        MemorySegment flag;
        SharedMemoryFile flagFile;
        try {
            flagFile = SharedMemoryFile.mapWithin(SHARED_MEMORY_DIR, Path.of(flagPath));
        } catch (IOException | RuntimeException e) {
            context.releaseRef();
            throw EngineException.invalid("flag.path: cannot map " + flagPath + ": " + e.getMessage());
        }
        if (flagOffset > flagFile.sizeBytes() - LoadFlagWriter.FLAG_BYTES) {
            long size = flagFile.sizeBytes();
            flagFile.close();
            context.releaseRef();
            throw EngineException.invalid("flag.offset_bytes: " + flagOffset + " + 32 is past the end of " + flagPath
                    + " (" + size + " bytes)");
        }
        flag = flagFile.memory().asSlice(flagOffset, LoadFlagWriter.FLAG_BYTES);
        LoadFlagWriter.pending(flag);
        BlockEntry[] entries = store.pinForLoad(context.layout.namespace(), hashes, leaseId);
        int[] failed = missing(blockIds, entries);
        int scheduled = blockIds.length - failed.length;
        if (scheduled == 0) {
            LoadFlagWriter.finish(flag, 0, failed.length, 0);
            flagFile.close();
            context.releaseRef();
            listener.loaded(0, 0, 0, failed.length);
            return new LoadStarted(failed, 0);
        }
        try {
            CompletableFuture.runAsync(
                    () -> {
                        long startNs = System.nanoTime();
                        long bytes = 0;
                        boolean ok = false;
                        try {
                            bytes = copyLoad(context, blockIds, entries);
                            ok = true;
                        } catch (RuntimeException e) {
                            log.warn("load into context {} failed: {}", contextId, e.toString());
                        } finally {
                            store.unpinAll(entries);
                            long durationNs = System.nanoTime() - startNs;
                            int loaded = ok ? scheduled : 0;
                            int failedCount = ok ? failed.length : blockIds.length;
                            LoadFlagWriter.finish(flag, loaded, failedCount, durationNs);
                            flagFile.close();
                            context.releaseRef();
                            listener.loaded(bytes, durationNs, loaded, failedCount);
                        }
                    },
                    copyThreads);
        } catch (RejectedExecutionException e) {
            store.unpinAll(entries);
            LoadFlagWriter.finish(flag, 0, blockIds.length, 0);
            flagFile.close();
            context.releaseRef();
            throw new EngineException(EngineException.Code.UNAVAILABLE, "the node is stopping: load refused");
        }
        return new LoadStarted(failed, scheduled);
    }

    /** Pool to worker memory for this context's layers and rank. */
    private long copyLoad(WorkerContext context, int[] blockIds, BlockEntry[] entries) {
        // One batch over every region, runs in pool order, copied as one unit.
        CopyBatch batch = batches.get();
        batch.clear();
        NamespaceLayout layout = context.layout;
        for (int i = 0; i < blockIds.length; i++) {
            BlockEntry entry = entries[i];
            if (entry == null) {
                continue;
            }
            for (LayerMapping layer : context.layers) {
                long src = entry.offset() + layout.slotOffset(layer.layerIndex(), context.tpRank);
                for (int s = 0; s < layer.segmentOffsets().length; s++) {
                    batch.add(
                            0, layer.regionIndex(), src, layer.sourceOffset(blockIds[i], s), layer.segmentLengths()[s]);
                    src += layer.segmentLengths()[s];
                }
            }
        }
        if (batch.runCount() > 0) {
            copyEngine.copy(poolRegion, context.regions, batch);
        }
        return batch.totalBytes();
    }

    private static int[] missing(int[] blockIds, BlockEntry[] entries) {
        int n = 0;
        for (BlockEntry e : entries) {
            if (e == null) {
                n++;
            }
        }
        int[] failed = new int[n];
        int j = 0;
        for (int i = 0; i < entries.length; i++) {
            if (entries[i] == null) {
                failed[j++] = blockIds[i];
            }
        }
        return failed;
    }

    // ---- validation helpers ----

    private WorkerContext requireContext(String contextId) {
        if (contextId.isBlank()) {
            throw EngineException.invalid("context_id: missing");
        }
        WorkerContext context = contexts.get(contextId);
        if (context == null) {
            throw EngineException.notFound("context_id: " + contextId
                    + " is not registered (never registered, unregistered, or its session ended)");
        }
        return context;
    }

    private static void validateBlocks(WorkerContext context, int[] blockIds, byte[][] hashes) {
        int numBlocks = context.numBlocks;
        for (int i = 0; i < blockIds.length; i++) {
            if (blockIds[i] < 0 || blockIds[i] >= numBlocks) {
                throw EngineException.invalid("blocks[" + i + "].block_id: " + Integer.toUnsignedString(blockIds[i])
                        + " is out of range 0.." + (numBlocks - 1));
            }
            checkHash("blocks[" + i + "].hash", hashes[i]);
        }
        HashMap<Integer, Integer> seen = new HashMap<>();
        for (int i = 0; i < blockIds.length; i++) {
            Integer previous = seen.putIfAbsent(blockIds[i], i);
            if (previous != null && !Arrays.equals(hashes[previous], hashes[i])) {
                throw EngineException.invalid("blocks[" + i + "].block_id: " + blockIds[i]
                        + " appears twice with different hashes (also blocks[" + previous + "])");
            }
        }
    }

    private static void checkHash(String field, byte[] hash) {
        if (hash.length == 0 || hash.length > MAX_HASH_BYTES) {
            throw EngineException.invalid(
                    field + ": " + hash.length + " bytes; a hash has 1.." + MAX_HASH_BYTES + " bytes");
        }
    }

    private static int[] slotsFor(WorkerContext context, int[] layerIndices) {
        if (layerIndices.length == 0) {
            int[] slots = new int[context.layers.length];
            for (int i = 0; i < slots.length; i++) {
                slots[i] = context.layout.slotIndex(context.layers[i].layerIndex(), context.tpRank);
            }
            return slots;
        }
        int[] slots = new int[layerIndices.length];
        for (int i = 0; i < layerIndices.length; i++) {
            if (context.layer(layerIndices[i]) == null) {
                throw EngineException.invalid("layer_indices[" + i + "]: layer "
                        + Integer.toUnsignedString(layerIndices[i]) + " is not registered by context " + context.id);
            }
            slots[i] = context.layout.slotIndex(layerIndices[i], context.tpRank);
        }
        for (int i = 0; i < slots.length; i++) {
            for (int j = 0; j < i; j++) {
                if (slots[i] == slots[j]) {
                    throw EngineException.invalid(
                            "layer_indices[" + i + "]: layer " + layerIndices[i] + " is listed twice");
                }
            }
        }
        return slots;
    }

    private void sweepSafely() {
        try {
            store.sweep();
        } catch (RuntimeException e) {
            log.warn("store sweep failed", e);
        }
    }

    private static java.util.concurrent.ThreadFactory named(String prefix) {
        AtomicLong n = new AtomicLong();
        return r -> {
            Thread t = new Thread(r, prefix + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    /**
     * Stops taking copies, waits for those running, then unregisters every context.
     *
     * @return false if copies were still running after the wait: the caller must then not free the pool or the GPU
     *     resources those copies may still touch
     */
    public boolean close() {
        housekeeping.shutdownNow();
        copyThreads.shutdown();
        boolean idle;
        try {
            idle = copyThreads.awaitTermination(60, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            idle = false;
        }
        if (!idle) {
            log.error("copies still running after 60 s at shutdown: leaving the pool and mappings in place");
            return false;
        }
        new ArrayList<>(contexts.keySet()).forEach(id -> unregister(id, "node stopping"));
        return true;
    }

    /** For tests: the block size of a registered namespace, or 0. */
    long blockBytes(String namespace) {
        NamespaceLayout layout = namespaces.get(namespace);
        return layout == null ? 0 : layout.blockBytes();
    }
}
