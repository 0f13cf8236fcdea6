package io.pegaflow.fabric.engine;

import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.store.NamespaceLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * The checks of a RegisterContext: its fields and the CUDA IPC policy before anything is mapped (cheap and
 * side-effect free, on the caller's thread), then the layout of the mapped layers (on the mapping thread). The order
 * of the checks is the order the messages have always come in. Each refusal names the field and the allowed range.
 * Stateless.
 */
final class RegistrationChecks {
    static final int MAX_SEGMENTS = 8;

    private RegistrationChecks() {}

    /**
     * Header fields, every layer's fields and the CUDA IPC policy, in request order.
     *
     * @throws EngineException INVALID_ARGUMENT or FAILED_PRECONDITION naming the field
     */
    static void checkFields(ContextRegistration r, CopyEngine copyEngine) {
        checkHeader(r);
        boolean[] seen = new boolean[r.totalLayers()];
        for (int i = 0; i < r.layers().size(); i++) {
            checkLayer("layers[" + i + "]", r, r.layers().get(i), seen, copyEngine);
        }
        boolean replicated = r.layers().getFirst().replicated();
        for (int i = 1; i < r.layers().size(); i++) {
            if (r.layers().get(i).replicated() != replicated) {
                throw EngineException.invalid("layers[" + i + "].replicated: " + !replicated + ", but layers[0]'s is "
                        + replicated + "; a namespace's layers are all replicated across TP ranks (MLA) or all split");
            }
        }
    }

    /**
     * The namespace layout of mapped layers: equal sizes, and a block that fits the pool's largest allocation.
     * (After mapping, so that a layer running past its file is reported as that, as it always was.)
     *
     * @param layers sorted by global index
     * @param slabBytes the pool's largest allocation
     */
    static NamespaceLayout layout(ContextRegistration r, LayerMapping[] layers, long slabBytes) {
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
        NamespaceLayout layout = new NamespaceLayout(
                r.namespace(),
                r.totalLayers(),
                r.tpSize(),
                slotBytes,
                r.layers().getFirst().replicated());
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
        } else {
            addIfTooLong(problems, "instance_id", r.instanceId(), Limits.INSTANCE_ID_BYTES);
        }
        if (r.namespace().isBlank()) {
            problems.add("namespace: missing");
        } else {
            addIfTooLong(problems, "namespace", r.namespace(), Limits.NAMESPACE_BYTES);
        }
        addIfTooLong(problems, "device", r.device(), Limits.DEVICE_BYTES);
        if (tpSize < 1 || tpSize > 1024) {
            problems.add("tp_size: " + tpSize + " is out of range 1..1024");
        } else if (tpRank >= tpSize) {
            problems.add("tp_rank: " + tpRank + " is out of range 0.." + (tpSize - 1));
        }
        if (Integer.toUnsignedLong(r.ppRank()) > 1024) {
            problems.add("pp_rank: " + Integer.toUnsignedLong(r.ppRank()) + " is out of range 0..1024");
        }
        if (totalLayers < 1 || totalLayers > Limits.LAYERS) {
            problems.add("total_layers: " + totalLayers + " is out of range 1.." + Limits.LAYERS);
        }
        if (r.layers().isEmpty()) {
            problems.add("layers: at least one layer is needed");
        } else if (r.layers().size() > Math.min(Limits.LAYERS, Math.max(1, totalLayers))) {
            problems.add("layers: " + r.layers().size() + " entries; at most total_layers ("
                    + Math.min(Limits.LAYERS, Math.max(1, totalLayers)) + ")");
        }
        if (!problems.isEmpty()) {
            throw EngineException.invalid(String.join("; ", problems));
        }
    }

    private static void addIfTooLong(List<String> problems, String field, String value, int maxBytes) {
        String problem = Limits.tooLong(field, value, maxBytes);
        if (problem != null) {
            problems.add(problem);
        }
    }

    private static void checkLayer(
            String at, ContextRegistration r, LayerSpec layer, boolean[] seen, CopyEngine copyEngine) {
        if (Integer.toUnsignedLong(layer.layerIndex()) >= r.totalLayers()) {
            throw EngineException.invalid(at
                    + ".layer_index: "
                    + Integer.toUnsignedString(layer.layerIndex())
                    + " is out of range 0.."
                    + (r.totalLayers() - 1));
        }
        long count = Integer.toUnsignedLong(layer.layers());
        if (layer.layerIndex() + count > r.totalLayers()) {
            throw EngineException.invalid(at + ".layer_count: " + count + " layers from layer_index "
                    + layer.layerIndex() + " run past total_layers (" + r.totalLayers() + ")");
        }
        if (count > 1 && layer.layerStrideBytes() < 1) {
            throw EngineException.invalid(at + ".layer_stride_bytes: "
                    + Long.toUnsignedString(layer.layerStrideBytes()) + " must be in 1.." + Long.MAX_VALUE
                    + " for a group of " + count + " layers");
        }
        for (int k = 0; k < count; k++) {
            int index = layer.layerIndex() + k;
            if (seen[index]) {
                throw EngineException.invalid((count > 1 ? at + ".layer_count: layer " : at + ".layer_index: ") + index
                        + " is registered twice");
            }
            seen[index] = true;
        }
        Limits.checkLength(at + ".name", layer.name(), Limits.LAYER_NAME_BYTES);
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
        long sum = 0;
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
                sum = Math.addExact(sum, seg.lengthBytes());
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
                Limits.checkLength(at + ".region.shm.path", shm.path(), Limits.PATH_BYTES);
            }
        }
    }
}
