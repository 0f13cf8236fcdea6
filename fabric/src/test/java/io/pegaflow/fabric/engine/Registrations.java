package io.pegaflow.fabric.engine;

import java.util.ArrayList;
import java.util.List;

/** Test-side variants of a registration: one field changed, the rest as given. */
final class Registrations {
    private Registrations() {}

    static ContextRegistration withInstance(ContextRegistration r, String instanceId) {
        return new ContextRegistration(
                instanceId, r.namespace(), r.tpRank(), r.tpSize(), r.ppRank(), r.totalLayers(), r.device(), r.layers());
    }

    static ContextRegistration withNamespace(ContextRegistration r, String namespace) {
        return new ContextRegistration(
                r.instanceId(), namespace, r.tpRank(), r.tpSize(), r.ppRank(), r.totalLayers(), r.device(), r.layers());
    }

    static ContextRegistration withTp(ContextRegistration r, int tpRank, int tpSize) {
        return new ContextRegistration(
                r.instanceId(), r.namespace(), tpRank, tpSize, r.ppRank(), r.totalLayers(), r.device(), r.layers());
    }

    static ContextRegistration withTotalLayers(ContextRegistration r, int totalLayers) {
        return new ContextRegistration(
                r.instanceId(), r.namespace(), r.tpRank(), r.tpSize(), r.ppRank(), totalLayers, r.device(), r.layers());
    }

    static ContextRegistration withDevice(ContextRegistration r, String device) {
        return new ContextRegistration(
                r.instanceId(), r.namespace(), r.tpRank(), r.tpSize(), r.ppRank(), r.totalLayers(), device, r.layers());
    }

    static ContextRegistration withLayer(ContextRegistration r, int i, LayerSpec layer) {
        List<LayerSpec> layers = new ArrayList<>(r.layers());
        layers.set(i, layer);
        return new ContextRegistration(
                r.instanceId(), r.namespace(), r.tpRank(), r.tpSize(), r.ppRank(), r.totalLayers(), r.device(), layers);
    }

    static LayerSpec withNumBlocks(LayerSpec l, int numBlocks) {
        return new LayerSpec(l.name(), l.layerIndex(), l.region(), numBlocks, l.blockStrideBytes(), l.segments());
    }

    static LayerSpec withRegion(LayerSpec l, RegionSpec region) {
        return new LayerSpec(l.name(), l.layerIndex(), region, l.numBlocks(), l.blockStrideBytes(), l.segments());
    }
}
