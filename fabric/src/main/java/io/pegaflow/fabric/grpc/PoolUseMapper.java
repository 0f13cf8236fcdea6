package io.pegaflow.fabric.grpc;

import io.pegaflow.fabric.engine.DevicePools;
import io.pegaflow.fabric.engine.KvEngine;
import io.pegaflow.proto.fabric.PoolUse;
import io.pegaflow.store.PoolSnapshot;
import java.util.ArrayList;
import java.util.List;

/** Health's per-pool use: the store's pools (one per NUMA node where there are several) with their nodes and GPUs. */
public final class PoolUseMapper {
    private PoolUseMapper() {}

    public static List<PoolUse> of(KvEngine engine) {
        List<PoolSnapshot> pools = engine.store().poolSnapshots();
        DevicePools placement = engine.devicePools();
        List<PoolUse> uses = new ArrayList<>(pools.size());
        for (int p = 0; p < pools.size(); p++) {
            uses.add(PoolUse.newBuilder()
                    .setPool(p)
                    .setNumaNode(placement.numaNodeOf(p))
                    .setCapacityBytes(pools.get(p).capacityBytes())
                    .setUsedBytes(pools.get(p).usedBytes())
                    .addAllGpus(placement.gpusOf(p))
                    .build());
        }
        return uses;
    }
}
