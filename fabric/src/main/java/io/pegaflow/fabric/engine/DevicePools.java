package io.pegaflow.fabric.engine;

import io.pegaflow.store.BlockStore;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * Which pool serves each GPU: on a node whose GPUs sit on several NUMA nodes, the pool on the GPU's own node, so that
 * a save lands in memory local to the GPU that copies it. A device it does not know (a shared-memory context's
 * "host", or any GPU on a one-pool node) gets {@link BlockStore#ANY_POOL}. GPU UUIDs are compared ignoring case,
 * dashes and a "GPU-" prefix, as {@code CudaIpcPolicy} does. Immutable, thread-safe.
 */
public final class DevicePools {
    /** Every device: any pool (one pool, or no placement). */
    public static final DevicePools NONE = new DevicePools(Map.of(), Map.of(), List.of());

    private final Map<String, Integer> poolByGpu;
    private final Map<String, Integer> poolByUuidAsGiven;
    private final List<Integer> poolNodes;

    private DevicePools(
            Map<String, Integer> poolByGpu, Map<String, Integer> poolByUuidAsGiven, List<Integer> poolNodes) {
        this.poolByGpu = poolByGpu;
        this.poolByUuidAsGiven = poolByUuidAsGiven;
        this.poolNodes = poolNodes;
    }

    /** @param poolByGpuUuid a GPU UUID to the index of its pool (NUMA nodes unknown: -1) */
    public static DevicePools of(Map<String, Integer> poolByGpuUuid) {
        return of(poolByGpuUuid, List.of());
    }

    /**
     * @param poolByGpuUuid a GPU UUID to the index of its pool
     * @param poolNodes the NUMA node of each pool by index (may be empty: unknown)
     */
    public static DevicePools of(Map<String, Integer> poolByGpuUuid, List<Integer> poolNodes) {
        Map<String, Integer> canonical = new TreeMap<>();
        poolByGpuUuid.forEach((uuid, pool) -> {
            if (pool < 0) {
                throw new IllegalArgumentException("pool " + pool + " of GPU " + uuid + " must be at least 0");
            }
            canonical.put(canonicalGpu(uuid), pool);
        });
        return new DevicePools(Map.copyOf(canonical), new TreeMap<>(poolByGpuUuid), List.copyOf(poolNodes));
    }

    /** The NUMA node pool {@code pool} is bound to, or -1 (one pool, or not known). */
    public int numaNodeOf(int pool) {
        return pool >= 0 && pool < poolNodes.size() ? poolNodes.get(pool) : -1;
    }

    /** The UUIDs (as given) of the GPUs pool {@code pool} serves first; empty with one pool. */
    public List<String> gpusOf(int pool) {
        return poolByUuidAsGiven.entrySet().stream()
                .filter(e -> e.getValue() == pool)
                .map(Map.Entry::getKey)
                .toList();
    }

    /** The pool a save from a context on {@code device} should land in, or {@link BlockStore#ANY_POOL}. */
    public int poolFor(String device) {
        if (poolByGpu.isEmpty() || device == null) {
            return BlockStore.ANY_POOL;
        }
        Integer pool = poolByGpu.get(canonicalGpu(device));
        return pool == null ? BlockStore.ANY_POOL : pool;
    }

    static String canonicalGpu(String uuid) {
        String t = uuid.trim().toLowerCase(Locale.ROOT);
        if (t.startsWith("gpu-")) {
            t = t.substring(4);
        }
        return t.replace("-", "");
    }

    @Override
    public String toString() {
        return poolByGpu.isEmpty() ? "one pool for every device" : "pool by GPU " + poolByGpu;
    }
}
