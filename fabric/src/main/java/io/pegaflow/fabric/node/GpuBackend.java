package io.pegaflow.fabric.node;

import io.pegaflow.config.ByteSize;
import io.pegaflow.fabric.engine.DevicePools;
import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.gpu.MultiGpuCopyEngine;
import io.pegaflow.gpu.cuda.CudaCopyEngine;
import io.pegaflow.gpu.cuda.CudaCopySettings;
import io.pegaflow.gpu.cuda.CudaDevice;
import io.pegaflow.gpu.cuda.CudaProbe;
import io.pegaflow.gpu.cuda.PinnedHostMemory;
import io.pegaflow.store.memory.HostMemory;
import io.pegaflow.store.pool.BlockPool;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a node serving GPUs holds on the GPU side: each device (primary context), the pool pinned once for all of them
 * ({@link PinnedPool}) and a CUDA copy engine per GPU (one GPU: that engine; several: a {@link MultiGpuCopyEngine}
 * routing each copy to the GPU that owns the worker's memory). Closed after the engine that uses them, children first.
 */
final class GpuBackend implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(GpuBackend.class);

    private final List<CudaDevice> devices;
    private final PinnedPool pool;
    private final List<CudaCopyEngine> engines;
    private final CopyEngine copyEngine;
    private final NumaPoolPlan numa;

    private GpuBackend(List<CudaDevice> devices, PinnedPool pool, List<CudaCopyEngine> engines, NumaPoolPlan numa) {
        this.numa = numa;
        this.devices = devices;
        this.pool = pool;
        this.engines = engines;
        this.copyEngine = engines.size() == 1 ? engines.getFirst() : new MultiGpuCopyEngine(engines);
    }

    /**
     * Opens every GPU of {@code ordinals}, pins the pool for all of them and starts a copy engine per GPU with
     * settings from {@code pegaflow.cuda.*} and {@code pegaflow.pool.*} properties.
     *
     * @param ordinals at least one; the first GPU registers the pool
     * @param sysfs the sysfs root the GPUs' NUMA nodes are read from ({@code /sys})
     * @throws NodeStartException saying why (CUDA unusable, no such GPU, bad setting, the pool cannot be pinned)
     */
    static GpuBackend start(String nodeId, List<Integer> ordinals, long poolBytes, Map<?, ?> properties, Path sysfs) {
        String flag = "--devices "
                + String.join(",", ordinals.stream().map(String::valueOf).toList());
        String why = CudaProbe.unavailabilityCause().orElse(null);
        if (why != null) {
            throw new NodeStartException("node " + nodeId + ": " + flag + " needs CUDA, which is not usable: " + why);
        }
        CudaCopySettings settings;
        PinnedPool.Settings poolSettings;
        try {
            settings = CudaCopySettings.from(properties);
            poolSettings = PinnedPool.Settings.from(properties);
        } catch (IllegalArgumentException e) {
            throw new NodeStartException("node " + nodeId + ": " + e.getMessage(), e);
        }
        List<CudaDevice> devices = new ArrayList<>();
        PinnedPool pool = null;
        List<CudaCopyEngine> engines = new ArrayList<>();
        try {
            for (int ordinal : ordinals) {
                try {
                    devices.add(CudaDevice.open(Integer.toString(ordinal)));
                } catch (RuntimeException e) {
                    throw new NodeStartException("node " + nodeId + ": GPU " + ordinal + ": " + e.getMessage(), e);
                }
            }
            long size = (poolBytes + HostMemory.HUGE_PAGE_BYTES - 1) & -HostMemory.HUGE_PAGE_BYTES;
            long slab = BlockPool.defaultSlabBytes(size);
            NumaPoolPlan numa = planNuma(devices, sysfs).fit(size, slab);
            if (numa.crossesSockets()) {
                log.warn("node {}: {}", nodeId, numa.why());
            } else {
                log.info("node {}: {}", nodeId, numa.why());
            }
            long start = System.nanoTime();
            pool = PinnedPool.start(devices, poolBytes, poolSettings, numa.ranges(size, slab));
            log.info(
                    "GPUs {} (driver CUDA {}): pinned pool {} ready in {} s ({})",
                    devices.stream()
                            .map(d -> d.ordinal() + " " + d.name() + " " + d.uuid())
                            .toList(),
                    CudaProbe.versionText(CudaProbe.driverVersion()),
                    ByteSize.format(pool.sizeBytes()),
                    String.format("%.2f", (System.nanoTime() - start) / 1e9),
                    pool.report());
            for (CudaDevice device : devices) {
                CudaCopyEngine engine = CudaCopyEngine.create(device, settings);
                engines.add(engine);
                log.info("CUDA copy engine: {}", engine.describe());
                engine.kernelProblem().ifPresent(p -> log.warn("CUDA copy engine: {}", p));
            }
            return new GpuBackend(List.copyOf(devices), pool, List.copyOf(engines), numa);
        } catch (RuntimeException e) {
            engines.forEach(CudaCopyEngine::close);
            if (pool != null) {
                pool.close();
            }
            devices.forEach(CudaDevice::close);
            if (e instanceof NodeStartException n) {
                throw n;
            }
            throw new NodeStartException(
                    "node " + nodeId + ": " + flag + ": cannot set up a pinned pool of " + ByteSize.format(poolBytes)
                            + " and the copy engines: " + e.getMessage(),
                    e);
        }
    }

    private static NumaPoolPlan planNuma(List<CudaDevice> devices, Path sysfs) {
        Map<Integer, String> bdfs = new java.util.LinkedHashMap<>();
        for (CudaDevice d : devices) {
            String bdf;
            try {
                bdf = d.pciBusId();
            } catch (RuntimeException e) {
                bdf = "unknown";
            }
            bdfs.put(d.ordinal(), bdf);
        }
        return NumaPoolPlan.read(bdfs, sysfs);
    }

    /** How many pools the pinned region is split into (one per NUMA node where the GPUs sit on several). */
    int poolCount() {
        return numa.pools();
    }

    /** Which pool serves each GPU, by UUID, for the engine's save placement; none with one pool. */
    DevicePools devicePools() {
        if (numa.pools() == 1) {
            return DevicePools.NONE;
        }
        Map<String, Integer> byUuid = new java.util.LinkedHashMap<>();
        for (CudaDevice d : devices) {
            byUuid.put(d.uuid(), numa.poolByOrdinal().get(d.ordinal()));
        }
        return DevicePools.of(byUuid, numa.poolNodes());
    }

    NumaPoolPlan numa() {
        return numa;
    }

    PinnedHostMemory pool() {
        return pool.pinned();
    }

    CopyEngine copyEngine() {
        return copyEngine;
    }

    List<CudaDevice> devices() {
        return devices;
    }

    @Override
    public void close() {
        copyEngine.close();
        pool.close(); // unregister before unmapping
        devices.forEach(CudaDevice::close);
    }
}
