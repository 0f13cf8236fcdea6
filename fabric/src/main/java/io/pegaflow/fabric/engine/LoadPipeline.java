package io.pegaflow.fabric.engine;

import io.pegaflow.gpu.CopyBatch;
import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.gpu.MappedRegion;
import io.pegaflow.store.BlockEntry;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.NamespaceLayout;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Load as an asynchronous pipeline of {@link CompletionStage}s, no thread waiting between stages:
 *
 * <ol>
 *   <li>flag: the context's mapped flag file (a mapping thread maps it the first time), the slot set pending;
 *   <li>pin: the local store pins the blocks it holds (and consumes the lease);
 *   <li>remote: the {@link RemoteBlockSource} fetches the blocks still missing (only when some are);
 *   <li>copy: a copy thread copies pool to worker memory;
 *   <li>flag: the copy thread unpins and sets the flag done or failed.
 * </ol>
 *
 * The reply (blocks that cannot be loaded, blocks scheduled) completes once the copy is queued, before it runs, or
 * for a load with {@code replyWhenDone} once it has ended (then the flag is optional and the reply carries its
 * figures). A
 * stage that fails before that fails the reply, sets a pending flag failed, unpins and lets go of the context; a
 * refused copy (queue full, node stopping) is such a failure.
 */
final class LoadPipeline {
    private static final Logger log = LoggerFactory.getLogger(LoadPipeline.class);

    private final BlockStore store;
    private final MemorySegment[] poolRegion;
    private final CopyEngine copyEngine;
    private final BoundedExecutor copyThreads;
    private final RemoteBlockSource remote;
    private final EngineListener listener;
    /** One batch per copy thread, reused: a load allocates no copy descriptors per block. */
    private final ThreadLocal<CopyBatch> batches = ThreadLocal.withInitial(() -> new CopyBatch(4096));

    LoadPipeline(
            BlockStore store,
            MemorySegment[] poolRegion,
            CopyEngine copyEngine,
            BoundedExecutor copyThreads,
            RemoteBlockSource remote,
            EngineListener listener) {
        this.store = store;
        this.poolRegion = poolRegion;
        this.copyEngine = copyEngine;
        this.copyThreads = copyThreads;
        this.remote = remote;
        this.listener = listener;
    }

    /** One Load as it moves through the stages; each stage hands it to the next (happens-before by the stages). */
    private static final class LoadJob {
        final WorkerContext context;
        final LoadBlocks request;
        MappedRegion flagFile;
        MemorySegment flag;
        BlockEntry[] entries;
        int[] failed;
        /** Set once a copy thread (or the no-copy path) owns the ending: the failure path must not end it twice. */
        boolean handedOff;
        /** Completed by {@link #finish} with the flag's figures; only for a load with {@code replyWhenDone}. */
        final CompletableFuture<LoadStarted.LoadDone> done;
        /** Phase clocks ({@link CallPhase}): the handler's start, the hand-off to a copy thread, the commit's end. */
        final long startNs = System.nanoTime();

        long handedOffNs;
        long committedNs;

        LoadJob(WorkerContext context, LoadBlocks request) {
            this.context = context;
            this.request = request;
            this.done = request.replyWhenDone() ? new CompletableFuture<>() : null;
        }
    }

    CompletableFuture<LoadStarted> start(WorkerContext context, LoadBlocks request) {
        try {
            BlockChecks.checkBlocks(context, request.blockIds(), request.hashes());
            if (request.hasFlag() || !request.replyWhenDone()) {
                BlockChecks.checkFlag(request.flagPath(), request.flagOffsetBytes());
            }
        } catch (EngineException e) {
            return CompletableFuture.failedFuture(e);
        }
        if (!context.acquire()) {
            return CompletableFuture.failedFuture(
                    EngineException.notFound("context_id: " + context.id + " was unregistered"));
        }
        LoadJob job = new LoadJob(context, request);
        CompletableFuture<LoadStarted> reply;
        try {
            CompletableFuture<LoadJob> flagged = request.hasFlag()
                    ? context.flags().get(request.flagPath()).thenApply(file -> openFlag(job, file))
                    : CompletableFuture.completedFuture(job);
            reply = flagged.thenApply(this::pinLocal)
                    .thenCompose(this::fetchRemote)
                    .thenApply(this::startCopy);
        } catch (RuntimeException e) {
            reply = CompletableFuture.failedFuture(e);
        }
        reply = reply.whenComplete((started, error) -> {
            if (error != null) {
                abandon(job, error);
            }
        });
        if (!request.replyWhenDone()) {
            return reply;
        }
        // The reply waits, without a thread, for the copy's end (finish completes job.done).
        return reply.thenCompose(started -> job.done.thenApply(done -> {
            listener.phase(CallPhase.LOAD_REPLY, System.nanoTime() - job.committedNs);
            return new LoadStarted(started.failedBlockIds(), started.scheduled(), done);
        }));
    }

    /** Stage 1: the slot in the flag file, set pending. */
    private LoadJob openFlag(LoadJob job, MappedRegion file) {
        long offset = job.request.flagOffsetBytes();
        if (offset > file.sizeBytes() - LoadFlagWriter.FLAG_BYTES) {
            throw EngineException.invalid("flag.offset_bytes: " + offset + " + 32 is past the end of "
                    + Limits.echo(job.request.flagPath()) + " (" + file.sizeBytes() + " bytes)");
        }
        String damage = file.damage();
        if (damage != null) {
            throw EngineException.precondition(
                    "flag.path: " + Limits.echo(job.request.flagPath()) + ": " + damage + "; use a fresh flag file");
        }
        MemorySegment flag = file.memory().asSlice(offset, LoadFlagWriter.FLAG_BYTES);
        LoadFlagWriter.pending(flag);
        job.flagFile = file;
        job.flag = flag;
        return job;
    }

    /** Stage 2: pins what the local store holds; consumes the lease. */
    private LoadJob pinLocal(LoadJob job) {
        job.entries = store.pinForLoad(job.context.layout.namespace(), job.request.hashes(), job.request.leaseId());
        return job;
    }

    /** Stage 3: asks the remote source for what is still missing (nothing asked when nothing is missing). */
    private CompletionStage<LoadJob> fetchRemote(LoadJob job) {
        int missing = 0;
        for (BlockEntry entry : job.entries) {
            if (entry == null) {
                missing++;
            }
        }
        if (missing == 0) {
            return CompletableFuture.completedFuture(job);
        }
        int[] positions = new int[missing];
        byte[][] hashes = new byte[missing][];
        for (int i = 0, k = 0; i < job.entries.length; i++) {
            if (job.entries[i] == null) {
                positions[k] = i;
                hashes[k++] = job.request.hashes().copy(i);
            }
        }
        return remote.fetchMissing(job.context.layout, hashes).thenApply(fetched -> {
            for (int k = 0; k < Math.min(fetched.length, positions.length); k++) {
                job.entries[positions[k]] = fetched[k];
            }
            return job;
        });
    }

    /** Stage 4: hands the copy to a copy thread (or, with nothing to copy, ends the load here) and replies. */
    private LoadStarted startCopy(LoadJob job) {
        int[] blockIds = job.request.blockIds();
        job.failed = missing(blockIds, job.entries);
        int scheduled = blockIds.length - job.failed.length;
        job.handedOff = true;
        if (scheduled == 0) {
            finish(job, 0, 0, false);
            return new LoadStarted(job.failed, 0);
        }
        job.handedOffNs = System.nanoTime();
        listener.phase(CallPhase.LOAD_PIN, job.handedOffNs - job.startNs);
        EngineException refused = copyThreads.tryExecute("load", () -> copyAndFinish(job));
        if (refused != null) {
            job.handedOff = false; // the task never ran: the failure path ends the load
            throw refused;
        }
        return new LoadStarted(job.failed, scheduled);
    }

    /** Stage 5, on a copy thread: copies, then unpins and sets the flag whatever happened. */
    private void copyAndFinish(LoadJob job) {
        long startNs = System.nanoTime();
        listener.phase(CallPhase.LOAD_QUEUE, startNs - job.handedOffNs);
        long bytes = 0;
        boolean ok = false;
        try {
            bytes = copy(job.context, job.request.blockIds(), job.entries);
            ok = true;
        } catch (RuntimeException e) {
            log.warn("load into context {} failed: {}", job.context.id, e.getMessage());
        } catch (InternalError e) {
            // The JVM's error for a fault in an unsafe memory access: a region shrank after the check.
            EngineException lost = job.context.regionFault();
            log.warn("load into context {} failed: {}", job.context.id, lost != null ? lost.getMessage() : e);
        } finally {
            finish(job, bytes, System.nanoTime() - startNs, ok);
        }
    }

    private void finish(LoadJob job, long bytes, long durationNs, boolean copied) {
        int total = job.request.blockIds().length;
        int loaded = copied ? total - job.failed.length : 0;
        int failedCount = total - loaded;
        long commitNs = System.nanoTime();
        store.unpinAll(job.entries);
        if (job.flag != null) {
            writeFinalFlag(job, loaded, failedCount, durationNs);
        }
        job.committedNs = System.nanoTime();
        job.context.releaseRef();
        listener.loaded(bytes, durationNs, loaded, failedCount);
        if (copied) {
            listener.phase(CallPhase.LOAD_COPY, durationNs);
            listener.phase(CallPhase.LOAD_COMMIT, job.committedNs - commitNs);
        }
        if (job.done != null) {
            job.done.complete(new LoadStarted.LoadDone(failedCount != 0, loaded, failedCount, durationNs));
        }
    }

    /** A stage failed before the copy was handed off: the reply fails; undo what the earlier stages did. */
    private void abandon(LoadJob job, Throwable error) {
        if (job.handedOff) {
            return;
        }
        job.handedOff = true;
        if (job.entries != null) {
            store.unpinAll(job.entries);
        }
        if (job.flag != null) {
            writeFinalFlag(job, 0, job.request.blockIds().length, 0);
        }
        job.context.releaseRef();
        EngineException e = EngineException.unwrap(error);
        log.debug(
                "load into context {} refused: {}", job.context.id, e != null ? e.getMessage() : String.valueOf(error));
    }

    /** The flag's final state, unless the worker shrank the flag file meanwhile (writing would fault then). */
    private static void writeFinalFlag(LoadJob job, long loaded, long failed, long durationNs) {
        String damage = job.flagFile.damage();
        if (damage != null) {
            log.warn(
                    "load into context {}: flag file {} {}; its state is not written",
                    job.context.id,
                    Limits.echo(job.request.flagPath()),
                    damage);
            return;
        }
        LoadFlagWriter.finish(job.flag, loaded, failed, durationNs);
    }

    /** Pool to worker memory for this context's layers and rank. */
    private long copy(WorkerContext context, int[] blockIds, BlockEntry[] entries) {
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
            context.checkRegionsIntact();
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
}
