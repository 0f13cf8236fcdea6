package io.pegaflow.fabric.engine;

import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.store.NamespaceLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * The checks of a RegisterContext that need no file or handle: header fields, every layer's fields, the CUDA IPC
 * policy, equal layer sizes and the block size against the pool. Cheap and side-effect free, so they run on the
 * caller's thread before anything is mapped. Each refusal names the field and the allowed range. Stateless.
 */
final class RegistrationChecks {
    static final int MAX_SEGMENTS = 8;

    private RegistrationChecks() {}

    /**
     * @param slabBytes the pool's largest allocation
     * @return the namespace layout the registration asks for (slot bytes included)
     * @throws EngineException INVALID_ARGUMENT or FAILED_PRECONDITION naming the field
     */
    static NamespaceLayout check(ContextRegistration r, CopyEngine copyEngine, long slabBytes) {
        checkHeader(r);
        long slotBytes = -1;
        int firstLayer = -1;
        boolean[] seen = new boolean[r.totalLayers()];
        for (int i = 0; i < r.layers().size(); i++) {
            LayerSpec layer = r.layers().get(i);
            long layerSlot = checkLayer("layers[" + i + "]", r, layer, seen, copyEngine);
            if (slotBytes < 0) {
                slotBytes = layerSlot;
                firstLayer = layer.layerIndex();
            } else if (layerSlot != slotBytes) {
                throw EngineException.invalid("layers: layer "
                        + layer.layerIndex()
                        + " has "
                        + layerSlot
                        + " bytes per block but layer "
                        + firstLayer
                        + " has "
                        + slotBytes
                        + "; layers of different sizes are not supported");
            }
        }
        NamespaceLayout layout = new NamespaceLayout(r.namespace(), r.totalLayers(), r.tpSize(), slotBytes);
        long blockBytes;
        try {
            blockBytes = Math.multiplyExact((long) layout.slotCount(), slotBytes);
        } catch (ArithmeticException e) {
            blockBytes = Long.MAX_VALUE;
        }
        if (blockBytes > slabBytes) {
            throw EngineException.precondition("a block of this namespace needs "
                    + (blockBytes == Long.MAX_VALUE ? "more than " + Long.MAX_VALUE : String.valueOf(blockBytes))
                    + " bytes, more than the pool's largest allocation ("
                    + slabBytes
                    + " bytes); start the node with a larger --pool-size");
        }
        return layout;
    }

    private static void checkHeader(ContextRegistration r) {
        // uint32 fields arrive as Java ints: compare them unsigned so 2^32-1 is "too large", not -1.
        long tpSize = Integer.toUnsignedLong(r.tpSize());
        long tpRank = Integer.toUnsignedLong(r.tpRank());
        long totalLayers = Integer.toUnsignedLong(r.totalLayers());
        List<String> problems = new ArrayList<>();
        if (r.instanceId().isBlank()) {
            problems.add("instance_id: missing");
        }
        if (r.namespace().isBlank()) {
            problems.add("namespace: missing");
        }
        if (tpSize < 1 || tpSize > 1024) {
            problems.add("tp_size: " + tpSize + " is out of range 1..1024");
        } else if (tpRank >= tpSize) {
            problems.add("tp_rank: " + tpRank + " is out of range 0.." + (tpSize - 1));
        }
        if (Integer.toUnsignedLong(r.ppRank()) > 1024) {
            problems.add("pp_rank: " + Integer.toUnsignedLong(r.ppRank()) + " is out of range 0..1024");
        }
        if (totalLayers < 1 || totalLayers > 4096) {
            problems.add("total_layers: " + totalLayers + " is out of range 1..4096");
        }
        if (r.layers().isEmpty()) {
            problems.add("layers: at least one layer is needed");
        }
        if (!problems.isEmpty()) {
            throw EngineException.invalid(String.join("; ", problems));
        }
    }

    /** @return the layer's bytes per block (its segments added up) */
    private static long checkLayer(
            String at, ContextRegistration r, LayerSpec layer, boolean[] seen, CopyEngine copyEngine) {
        if (Integer.toUnsignedLong(layer.layerIndex()) >= r.totalLayers()) {
            throw EngineException.invalid(at
                    + ".layer_index: "
                    + Integer.toUnsignedString(layer.layerIndex())
                    + " is out of range 0.."
                    + (r.totalLayers() - 1));
        }
        if (seen[layer.layerIndex()]) {
            throw EngineException.invalid(at + ".layer_index: " + layer.layerIndex() + " is registered twice");
        }
        seen[layer.layerIndex()] = true;
        if (layer.numBlocks() < 1) {
            throw EngineException.invalid(at + ".num_blocks: " + Integer.toUnsignedString(layer.numBlocks())
                    + " is out of range 1.." + Integer.MAX_VALUE);
        }
        if (layer.blockStrideBytes() < 1) {
            throw EngineException.invalid(at + ".block_stride_bytes: " + Long.toUnsignedString(layer.blockStrideBytes())
                    + " must be in 1.." + Long.MAX_VALUE);
        }
        int segments = layer.segments().size();
        if (segments == 0 || segments > MAX_SEGMENTS) {
            throw EngineException.invalid(at + ".segments: needs 1.." + MAX_SEGMENTS + " segments, got " + segments);
        }
        long slotBytes = 0;
        for (int s = 0; s < segments; s++) {
            LayerSpec.Segment seg = layer.segments().get(s);
            if (seg.lengthBytes() < 1) {
                throw EngineException.invalid(at + ".segments[" + s + "].length_bytes: "
                        + Long.toUnsignedString(seg.lengthBytes()) + " must be in 1.." + Long.MAX_VALUE);
            }
            if (seg.offsetBytes() < 0) {
                throw EngineException.invalid(at + ".segments[" + s + "].offset_bytes: "
                        + Long.toUnsignedString(seg.offsetBytes()) + " is too large");
            }
            try {
                slotBytes = Math.addExact(slotBytes, seg.lengthBytes());
            } catch (ArithmeticException e) {
                throw EngineException.invalid(
                        at + ".segments: the lengths add up to more than " + Long.MAX_VALUE + " bytes");
            }
        }
        switch (layer.region()) {
            case null -> throw EngineException.invalid(at + ".region: missing");
            case RegionSpec.CudaIpc ipc -> CudaIpcPolicy.check(at, r.device(), ipc, copyEngine);
            case RegionSpec.SharedMemory shm -> {
                if (shm.path().isBlank()) {
                    throw EngineException.invalid(at + ".region.shm.path: missing");
                }
            }
        }
        return slotBytes;
    }
}
