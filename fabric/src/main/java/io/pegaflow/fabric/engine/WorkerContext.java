package io.pegaflow.fabric.engine;

import io.pegaflow.gpu.MappedRegion;
import io.pegaflow.store.NamespaceLayout;
import java.lang.foreign.MemorySegment;
import java.util.List;
import org.slf4j.LoggerFactory;

/**
 * One registered worker (a vLLM GPU rank): its namespace layout, rank, and the layers it mapped. Operations in
 * flight hold a reference; the mappings are unmapped only when the context is closed and the last one finished.
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

    private final List<MappedRegion> mappings;
    /** Layers by global index (null where this context has none): a save looks one up per block and layer. */
    private final LayerMapping[] byIndex;

    private int inFlight;
    private boolean closed;
    private boolean unmapped;

    WorkerContext(
            String id,
            String instanceId,
            NamespaceLayout layout,
            int tpRank,
            int ppRank,
            String device,
            LayerMapping[] layers,
            List<MappedRegion> mappings) {
        this.id = id;
        this.instanceId = instanceId;
        this.layout = layout;
        this.tpRank = tpRank;
        this.ppRank = ppRank;
        this.device = device;
        this.layers = layers;
        this.mappings = List.copyOf(mappings);
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
        return instanceId + "/tp" + tpRank + "/pp" + ppRank;
    }

    String workerKey() {
        return workerKey(instanceId, tpRank, ppRank);
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

    /** Stops new operations; unmaps now or when the last operation in flight ends. */
    synchronized void close() {
        closed = true;
        unmapIfIdle();
    }

    private void unmapIfIdle() {
        if (closed && inFlight == 0 && !unmapped) {
            unmapped = true;
            // One failing close (e.g. cuIpcCloseMemHandle) must neither leak the others nor fail the caller's
            // operation.
            for (MappedRegion mapping : mappings) {
                try {
                    mapping.close();
                } catch (RuntimeException e) {
                    LoggerFactory.getLogger(WorkerContext.class)
                            .warn("context {}: closing a mapping failed: {}", id, e.toString());
                }
            }
        }
    }

    LayerMapping layer(int layerIndex) {
        return layerIndex >= 0 && layerIndex < byIndex.length ? byIndex[layerIndex] : null;
    }
}
