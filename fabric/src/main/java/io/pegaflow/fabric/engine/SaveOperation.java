package io.pegaflow.fabric.engine;

import io.pegaflow.gpu.CopyBatch;
import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.PoolFullException;
import io.pegaflow.store.SaveReservation;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.CompletableFuture;

/**
 * Save: checks on the caller's thread (and, when every block is sealed already, the answer: nothing to do); then, on
 * a copy thread, reserves pool space (the store's bookkeeping, which
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

    /** What the copy thread did, the other saves' copies the reply must wait for, and when the thread was done. */
    private record Copied(SaveResult result, SaveReservation reservation, long doneNs) {}

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
        // Every block already sealed (a prefix saved before, or another rank's save): nothing to reserve or copy, so
        // the reply goes out from here, without two thread hand-offs (to a copy thread and back). The check is a
        // lookup per block under the store's lock, as a Query's is on this thread.
        long checkNs = System.nanoTime();
        if (store.touchIfAllSealed(context.layout.namespace(), request.hashes())) {
            context.releaseRef();
            listener.phase(CallPhase.SAVE_RESERVE, System.nanoTime() - checkNs);
            return CompletableFuture.completedFuture(new SaveResult(0, request.blockIds().length, 0));
        }
        // A refused task never ran and reserved nothing: only the context reference is to give back.
        long handedOffNs = System.nanoTime();
        return copyThreads
                .supply("save", () -> reserveCopySeal(context, request, slots, handedOffNs), context::releaseRef)
                .thenCompose(this::afterOthersLanded)
                .thenApply(this::replied);
    }

    /** Runs on a copy thread: reserves, copies, then seals or rolls back exactly once whatever is thrown. */
    private Copied reserveCopySeal(WorkerContext context, SaveBlocks request, int[] slots, long handedOffNs) {
        long reserveNs = System.nanoTime();
        listener.phase(CallPhase.SAVE_QUEUE, reserveNs - handedOffNs);
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
            long startNs = System.nanoTime();
            listener.phase(CallPhase.SAVE_RESERVE, startNs - reserveNs);
            if (targets == 0) {
                return new Copied(new SaveResult(0, skipped, 0), reservation, startNs);
            }
            boolean landed = false;
            try {
                long bytes = copy(context, reservation);
                landed = true;
                long copiedNs = System.nanoTime();
                int sealed = store.completeSave(reservation, true);
                long sealedNs = System.nanoTime();
                listener.saved(bytes, sealedNs - startNs, targets);
                listener.phase(CallPhase.SAVE_COPY, copiedNs - startNs);
                listener.phase(CallPhase.SAVE_SEAL, sealedNs - copiedNs);
                return new Copied(new SaveResult(targets, skipped, sealed), reservation, sealedNs);
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

    /** The reply, timed from the copy thread's end (a refused or failed save has no reply phase). */
    private SaveResult replied(Copied copied) {
        listener.phase(CallPhase.SAVE_REPLY, System.nanoTime() - copied.doneNs());
        return copied.result();
    }

    /**
     * Some slots this request names were being copied by another request: the reply must not say they are stored
     * until that copy has landed (a caller may free its blocks on our reply).
     */
    private CompletableFuture<Copied> afterOthersLanded(Copied copied) {
        SaveReservation reservation = copied.reservation();
        if (reservation.othersInFlight().isEmpty()) {
            return CompletableFuture.completedFuture(copied);
        }
        return CompletableFuture.allOf(reservation.othersInFlight().toArray(CompletableFuture[]::new))
                .thenApply(landed -> {
                    if (!store.othersArrived(reservation)) {
                        throw EngineException.unavailable(
                                "a concurrent save of some of these blocks failed; save them again");
                    }
                    return copied;
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
