package io.pegaflow.fabric.engine;

import java.util.List;

/**
 * A worker's RegisterContext: who it is and, per layer, where its KV blocks lie. Unsigned wire fields keep their
 * bits (a uint32 as {@code int}, a uint64 as {@code long}); the engine reads them unsigned, so {@code 2^32-1} is
 * "too large", never {@code -1}.
 *
 * @param device the GPU's UUID, or "host" for shared-memory regions
 */
public record ContextRegistration(
        String instanceId,
        String namespace,
        int tpRank,
        int tpSize,
        int ppRank,
        int totalLayers,
        String device,
        List<LayerSpec> layers) {
    public ContextRegistration {
        layers = List.copyOf(layers);
    }
}
