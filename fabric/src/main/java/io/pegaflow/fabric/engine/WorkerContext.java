package io.pegaflow.fabric.engine;

import io.pegaflow.gpu.MappedRegion;
import io.pegaflow.store.NamespaceLayout;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.function.Consumer;
import org.slf4j.LoggerFactory;

/**
 * One registered worker (a vLLM GPU rank): its namespace layout, rank, the layers it mapped and its flag files.
 * Operations in flight hold a reference; once the context is closed and the last one has finished, its mappings are
 * unmapped on {@code unmapper} (a cleanup thread), never on the thread that let go last.
 *
 * <p>Lifetime: a context with Session streams open lives until the last of them ends; a context that never had one
 * lives while it is used (Save and Load touch it) and is dropped by the sweeper once idle for the engine's {@code
 * sessionless-idle-ms}. A region that shrank under its mapping drops the context too ({@link #checkRegionsIntact}).
 */
final class WorkerContext {
    final String id;
    final String instanceId;
    final NamespaceLayout layout;
    final int tpRank;
    final int ppRank;
    final String device;
    /** Layers sorted by global index. */
    final LayerMapping[] layers;
    /** Mapped regions by {@link LayerMapping#regionIndex()}: the segments every save and load copies between. */
    final MemorySegment[] regions;
    /** Blocks every layer has: the bound on block ids. */
    final int numBlocks;

    private final MappedRegion[] mappings;
    private final FlagFiles flags;
    private final Executor unmapper;
    /** Drops this context from the registry, with the reason for the log. */
    private final Consumer<String> dropper;
    /** Layers by global index (null where this context has none): a save looks one up per block and layer. */
    private final LayerMapping[] byIndex;

    private final CompletableFuture<Void> unmapped = new CompletableFuture<>();
    private int inFlight;
    private boolean closed;
    private boolean unmapScheduled;
    private int sessions;
    private boolean hadSession;
    /** When a Save or Load last named this context (System.nanoTime). */
    private volatile long lastUsedNs = System.nanoTime();

    WorkerContext(
            String id,
            String instanceId,
            NamespaceLayout layout,
            int tpRank,
            int ppRank,
            String device,
            LayerMapping[] layers,
            List<MappedRegion> mappings,
            FlagFiles flags,
            Executor unmapper,
            Consumer<String> dropper) {
        this.id = id;
        this.instanceId = instanceId;
        this.layout = layout;
        this.tpRank = tpRank;
        this.ppRank = ppRank;
        this.device = device;
        this.layers = layers;
        this.mappings = mappings.toArray(MappedRegion[]::new);
        this.flags = flags;
        this.unmapper = unmapper;
        this.dropper = dropper;
        int max = 0;
        for (LayerMapping layer : layers) {
            max = Math.max(max, layer.layerIndex() + 1);
        }
        this.byIndex = new LayerMapping[max];
        int regionCount = 0;
        int minBlocks = Integer.MAX_VALUE;
        for (LayerMapping layer : layers) {
            byIndex[layer.layerIndex()] = layer;
            regionCount = Math.max(regionCount, layer.regionIndex() + 1);
            minBlocks = Math.min(minBlocks, layer.numBlocks());
        }
        this.regions = new MemorySegment[regionCount];
        for (LayerMapping layer : layers) {
            regions[layer.regionIndex()] = layer.region();
        }
        this.numBlocks = minBlocks;
    }

    /** The worker a context belongs to: a newer registration of the same worker replaces the older context. */
    static String workerKey(String instanceId, int tpRank, int ppRank) {
        return instanceId + "/tp" + Integer.toUnsignedString(tpRank) + "/pp" + Integer.toUnsignedString(ppRank);
    }

    String workerKey() {
        return workerKey(instanceId, tpRank, ppRank);
    }

    FlagFiles flags() {
        return flags;
    }

    /** A Save or Load named this context: a context without a session lives while it is used. */
    void touch() {
        lastUsedNs = System.nanoTime();
    }

    /** A Session stream starts; false once the context is closed. */
    synchronized boolean attachSession() {
        if (closed) {
            return false;
        }
        sessions++;
        hadSession = true;
        return true;
    }

    /** A Session stream ended; true when it was the last one (the context must go now). */
    synchronized boolean detachSession() {
        sessions--;
        return sessions == 0 && !closed;
    }

    /** Never had a session and not used for {@code idleNs}: the sweeper drops it. */
    synchronized boolean idleWithoutSession(long nowNs, long idleNs) {
        return !closed && !hadSession && inFlight == 0 && nowNs - lastUsedNs > idleNs;
    }

    synchronized int sessionCount() {
        return sessions;
    }

    /**
     * Called on a copy thread before each copy batch (one {@code fstat} per shared-memory region, no allocation): a
     * region whose file shrank after it was mapped would fault the copy. The context is dropped then (a worker that
     * truncated its KV cache must register again) and the operation refused.
     *
     * @throws EngineException FAILED_PRECONDITION naming the region
     */
    void checkRegionsIntact() {
        for (MappedRegion region : mappings) {
            String damage = region.damage();
            if (damage != null) {
                throw regionLost(region, damage);
            }
        }
    }

    /**
     * A copy faulted (the JVM's InternalError for a fault in an unsafe memory access): a region that shrank between
     * the check and the copy. Drops the context as {@link #checkRegionsIntact} does.
     *
     * @return the refusal to throw, or null when no region is damaged (the fault is something else)
     */
    EngineException regionFault() {
        for (MappedRegion region : mappings) {
            String damage = region.damage();
            if (damage != null) {
                return regionLost(region, damage);
            }
        }
        return null;
    }

    private EngineException regionLost(MappedRegion region, String damage) {
        String why = "region " + Limits.echo(region.description()) + ": " + damage;
        dropper.accept(why);
        return EngineException.precondition(
                why + "; context " + Limits.echo(id) + " is unregistered (register again with an intact file)");
    }

    /** Takes a reference for one operation; false once the context is closed. */
    synchronized boolean acquire() {
        if (closed) {
            return false;
        }
        inFlight++;
        return true;
    }

    synchronized void releaseRef() {
        inFlight--;
        unmapIfIdle();
    }

    /**
     * Stops new operations; the mappings go once the last operation in flight has ended.
     *
     * @return completes when every mapping of the context is unmapped
     */
    synchronized CompletableFuture<Void> close() {
        closed = true;
        unmapIfIdle();
        return unmapped;
    }

    private void unmapIfIdle() {
        if (closed && inFlight == 0 && !unmapScheduled) {
            unmapScheduled = true;
            unmapper.execute(this::unmapNow);
        }
    }

    /** Runs on a cleanup thread. */
    private void unmapNow() {
        // One failing close (e.g. cuIpcCloseMemHandle) must neither leak the others nor fail the caller's operation.
        for (MappedRegion mapping : mappings) {
            try {
                mapping.close();
            } catch (RuntimeException e) {
                LoggerFactory.getLogger(WorkerContext.class)
                        .warn("context {}: closing a mapping failed: {}", id, e.toString());
            }
        }
        flags.closeAll();
        unmapped.complete(null);
    }

    LayerMapping layer(int layerIndex) {
        return layerIndex >= 0 && layerIndex < byIndex.length ? byIndex[layerIndex] : null;
    }
}
