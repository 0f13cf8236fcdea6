package io.pegaflow.fabric.engine;

import io.pegaflow.gpu.CopyBatch;
import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.PoolFullException;
import io.pegaflow.store.SaveReservation;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.CompletableFuture;

/**
 * Save: checks on the caller's thread; then, on a copy thread, reserves pool space (the store's bookkeeping, which
 * may evict), copies worker memory into the pool and seals. A save waiting in the copy queue holds no pool space;
 * a full queue refuses it with nothing reserved. The reply waits, without a thread, for concurrent copies of the
 * same slots by other saves.
 */
final class SaveOperation {
    private final BlockStore store;
    private final MemorySegment[] poolRegion;
    private final CopyEngine copyEngine;
    private final BoundedExecutor copyThreads;
    private final EngineListener listener;
    private final DevicePools devicePools;
    /** One batch per copy thread, reused: a save allocates no copy descriptors per block. */
    private final ThreadLocal<CopyBatch> batches = ThreadLocal.withInitial(() -> new CopyBatch(4096));

    SaveOperation(
            BlockStore store,
            MemorySegment[] poolRegion,
            CopyEngine copyEngine,
            BoundedExecutor copyThreads,
            EngineListener listener,
            DevicePools devicePools) {
        this.devicePools = devicePools;
        this.store = store;
        this.poolRegion = poolRegion;
        this.copyEngine = copyEngine;
        this.copyThreads = copyThreads;
        this.listener = listener;
    }

    /** What the copy thread did, and the other saves' copies the reply must wait for. */
    private record Copied(SaveResult result, SaveReservation reservation) {}

    CompletableFuture<SaveResult> save(WorkerContext context, SaveBlocks request) {
        int[] slots;
        try {
            BlockChecks.checkBlocks(context, request.blockIds(), request.hashes());
            slots = BlockChecks.slotsFor(context, request.layerIndices());
        } catch (EngineException e) {
            return CompletableFuture.failedFuture(e);
        }
        if (!context.acquire()) {
            return CompletableFuture.failedFuture(
                    EngineException.notFound("context_id: " + context.id + " was unregistered"));
        }
        if (request.blockIds().length == 0) {
            context.releaseRef();
            return CompletableFuture.completedFuture(new SaveResult(0, 0, 0));
        }
        // A refused task never ran and reserved nothing: only the context reference is to give back.
        return copyThreads
                .supply("save", () -> reserveCopySeal(context, request, slots), context::releaseRef)
                .thenCompose(this::afterOthersLanded);
    }

    /** Runs on a copy thread: reserves, copies, then seals or rolls back exactly once whatever is thrown. */
    private Copied reserveCopySeal(WorkerContext context, SaveBlocks request, int[] slots) {
        try {
            SaveReservation reservation;
            try {
                // New blocks go to the pool local to this context's GPU (one pool: any, i.e. that one).
                reservation = store.reserveForSave(
                        context.layout,
                        request.blockIds(),
                        request.hashes(),
                        slots,
                        devicePools.poolFor(context.device));
            } catch (PoolFullException e) {
                throw EngineException.exhausted(e.getMessage());
            }
            int targets = reservation.count();
            int skipped = request.blockIds().length - targets;
            if (targets == 0) {
                return new Copied(new SaveResult(0, skipped, 0), reservation);
            }
            long startNs = System.nanoTime();
            boolean landed = false;
            try {
                long bytes = copy(context, reservation);
                landed = true;
                int sealed = store.completeSave(reservation, true);
                listener.saved(bytes, System.nanoTime() - startNs, targets);
                return new Copied(new SaveResult(targets, skipped, sealed), reservation);
            } catch (EngineException e) {
                throw e;
            } catch (RuntimeException e) {
                throw new EngineException(EngineException.Code.INTERNAL, "save copy failed: " + e.getMessage(), e);
            } catch (InternalError e) {
                // The JVM's error for a fault in an unsafe memory access: a region shrank after the check.
                EngineException lost = context.regionFault();
                if (lost != null) {
                    throw lost;
                }
                throw new EngineException(EngineException.Code.INTERNAL, "save copy failed: " + e.getMessage(), e);
            } finally {
                if (!landed) {
                    store.completeSave(reservation, false);
                }
            }
        } finally {
            context.releaseRef();
        }
    }

    /**
     * Some slots this request names were being copied by another request: the reply must not say they are stored
     * until that copy has landed (a caller may free its blocks on our reply).
     */
    private CompletableFuture<SaveResult> afterOthersLanded(Copied copied) {
        SaveReservation reservation = copied.reservation();
        if (reservation.othersInFlight().isEmpty()) {
            return CompletableFuture.completedFuture(copied.result());
        }
        return CompletableFuture.allOf(reservation.othersInFlight().toArray(CompletableFuture[]::new))
                .thenApply(landed -> {
                    if (!store.othersArrived(reservation)) {
                        throw EngineException.unavailable(
                                "a concurrent save of some of these blocks failed; save them again");
                    }
                    return copied.result();
                });
    }

    /** Worker memory to pool. */
    private long copy(WorkerContext context, SaveReservation targets) {
        // One batch over every region, runs in pool order (a block's slots are contiguous there), copied as one unit.
        CopyBatch batch = batches.get();
        batch.clear();
        for (int t = 0; t < targets.count(); t++) {
            long blockOffset = targets.entry(t).offset();
            int blockId = targets.blockId(t);
            for (int slot : targets.slots(t)) {
                LayerMapping layer = context.layer(context.layout.layerOfSlot(slot));
                long dst = blockOffset + (long) slot * context.layout.slotBytes();
                for (int s = 0; s < layer.segmentOffsets().length; s++) {
                    batch.add(layer.regionIndex(), 0, layer.sourceOffset(blockId, s), dst, layer.segmentLengths()[s]);
                    dst += layer.segmentLengths()[s];
                }
            }
        }
        if (batch.runCount() > 0) {
            context.checkRegionsIntact();
            copyEngine.copy(context.regions, poolRegion, batch);
        }
        return batch.totalBytes();
    }
}
