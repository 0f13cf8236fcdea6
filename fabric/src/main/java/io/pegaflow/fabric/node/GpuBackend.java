package io.pegaflow.fabric.node;

import io.pegaflow.config.ByteSize;
import io.pegaflow.gpu.cuda.CudaCopyEngine;
import io.pegaflow.gpu.cuda.CudaCopySettings;
import io.pegaflow.gpu.cuda.CudaDevice;
import io.pegaflow.gpu.cuda.CudaProbe;
import io.pegaflow.gpu.cuda.PinnedHostMemory;
import io.pegaflow.store.memory.HostMemory;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a node started with {@code --device N} holds on the GPU side: the device (primary context), the pool's host
 * memory (mapped and populated in parallel by {@link HostMemory}) and its registration with the GPU, and the CUDA copy
 * engine. Closed after the engine that uses them, children first.
 */
final class GpuBackend implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(GpuBackend.class);

    private final CudaDevice device;
    private final HostMemory host;
    private final PinnedHostMemory pool;
    private final CudaCopyEngine copyEngine;

    private GpuBackend(CudaDevice device, HostMemory host, PinnedHostMemory pool, CudaCopyEngine copyEngine) {
        this.device = device;
        this.host = host;
        this.pool = pool;
        this.copyEngine = copyEngine;
    }

    /**
     * Opens GPU {@code ordinal}, allocates the pinned pool and starts the copy engine with settings from
     * {@code pegaflow.cuda.*} properties.
     *
     * @throws NodeStartException saying why (CUDA unusable, no such GPU, bad setting, the pool cannot be pinned)
     */
    static GpuBackend start(String nodeId, int ordinal, long poolBytes, Map<?, ?> properties) {
        String why = CudaProbe.unavailabilityCause().orElse(null);
        if (why != null) {
            throw new NodeStartException(
                    "node " + nodeId + ": --device " + ordinal + " needs CUDA, which is not usable: " + why);
        }
        CudaCopySettings settings;
        try {
            settings = CudaCopySettings.from(properties);
        } catch (IllegalArgumentException e) {
            throw new NodeStartException("node " + nodeId + ": " + e.getMessage(), e);
        }
        CudaDevice device;
        try {
            device = CudaDevice.open(Integer.toString(ordinal));
        } catch (RuntimeException e) {
            throw new NodeStartException("node " + nodeId + ": --device " + ordinal + ": " + e.getMessage(), e);
        }
        HostMemory host = null;
        PinnedHostMemory pool = null;
        try {
            long start = System.nanoTime();
            host = HostMemory.allocate(poolBytes);
            pool = device.registerHost(host.memory());
            log.info(
                    "GPU {} ({}, {}, driver CUDA {}): pinned pool {} ready in {} s ({}, {})",
                    ordinal,
                    device.name(),
                    device.uuid(),
                    CudaProbe.versionText(CudaProbe.driverVersion()),
                    ByteSize.format(pool.sizeBytes()),
                    String.format("%.2f", (System.nanoTime() - start) / 1e9),
                    host.report(),
                    pool.report());
            CudaCopyEngine engine = CudaCopyEngine.create(device, settings);
            log.info("CUDA copy engine: {}", engine.describe());
            engine.kernelProblem().ifPresent(p -> log.warn("CUDA copy engine: {}", p));
            return new GpuBackend(device, host, pool, engine);
        } catch (RuntimeException e) {
            if (pool != null) {
                pool.close();
            }
            if (host != null) {
                host.close();
            }
            device.close();
            throw new NodeStartException(
                    "node " + nodeId + ": GPU " + ordinal + ": cannot set up a pinned pool of "
                            + ByteSize.format(poolBytes) + " and the copy engine: " + e.getMessage(),
                    e);
        }
    }

    PinnedHostMemory pool() {
        return pool;
    }

    CudaCopyEngine copyEngine() {
        return copyEngine;
    }

    @Override
    public void close() {
        copyEngine.close();
        pool.close(); // unregister before unmapping
        host.close();
        device.close();
    }
}
