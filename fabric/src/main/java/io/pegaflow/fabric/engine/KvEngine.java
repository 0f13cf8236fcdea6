package io.pegaflow.fabric.engine;

import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.NamespaceLayout;
import io.pegaflow.store.QueryResult;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The local KV engine behind the Engine gRPC service: wires the context registry, registration, save, the load
 * pipeline and the executors they run on, and keeps the store's sweeper. Takes and returns domain records only.
 *
 * <p>Every method returns at once and may be called from any thread, a gRPC handler's included: operations that map,
 * unmap, copy or may evict return a {@link CompletionStage} completed by an engine thread. A refused request fails
 * its stage with an {@link EngineException} naming the field (or the full queue) and has changed nothing.
 */
public final class KvEngine {
    private static final Logger log = LoggerFactory.getLogger(KvEngine.class);

    private final BlockStore store;
    private final CopyEngine copyEngine;
    private final BoundedExecutor copyThreads;
    private final BoundedExecutor mappingThreads;
    private final BoundedExecutor cleanupThreads;
    private final ScheduledExecutorService sweeper;
    private final ContextRegistry registry;
    private final RegisterOperation registration;
    private final SaveOperation saves;
    private final LoadPipeline loads;
    private final long sessionlessIdleNs;
    private final DevicePools devicePools;

    private KvEngine(Builder b) {
        this.store = b.store;
        this.copyEngine = b.copyEngine;
        EngineSettings s = b.settings;
        this.copyThreads = new BoundedExecutor("copy", s.copyThreads(), s.copyQueue(), b.listener);
        this.mappingThreads = new BoundedExecutor("mapping", s.mappingThreads(), s.mappingQueue(), b.listener);
        this.cleanupThreads = new BoundedExecutor("cleanup", s.cleanupThreads(), s.cleanupQueue(), b.listener);
        this.registry = new ContextRegistry(b.listener);
        MemorySegment[] poolRegion = {store.pool().memory()};
        this.registration = new RegisterOperation(
                registry,
                copyEngine,
                store.pool().slabBytes(),
                mappingThreads,
                task -> cleanupThreads.executeEventually("unmap", task),
                s,
                b.files);
        this.saves = new SaveOperation(store, poolRegion, copyEngine, copyThreads, b.listener, b.devicePools);
        this.loads = new LoadPipeline(store, poolRegion, copyEngine, copyThreads, b.remote, b.listener);
        this.devicePools = b.devicePools;
        this.sessionlessIdleNs = TimeUnit.MILLISECONDS.toNanos(s.sessionlessIdleMs());
        this.sweeper = Executors.newSingleThreadScheduledExecutor(BoundedExecutor.named("pegaflow-store-sweeper"));
        sweeper.scheduleWithFixedDelay(this::sweepSafely, 100, 100, TimeUnit.MILLISECONDS);
    }

    /** An engine over {@code store} copying with {@code copyEngine}; defaults for everything else. */
    public static Builder builder(BlockStore store, CopyEngine copyEngine) {
        return new Builder(store, copyEngine);
    }

    public static final class Builder {
        private final BlockStore store;
        private final CopyEngine copyEngine;
        private EngineSettings settings = EngineSettings.defaults();
        private EngineListener listener = EngineListener.NONE;
        private RemoteBlockSource remote = RemoteBlockSource.NONE;
        private SharedMemoryMapper files = SharedMemoryMapper.FILES;
        private DevicePools devicePools = DevicePools.NONE;

        private Builder(BlockStore store, CopyEngine copyEngine) {
            this.store = store;
            this.copyEngine = copyEngine;
        }

        public Builder settings(EngineSettings settings) {
            this.settings = settings;
            return this;
        }

        public Builder listener(EngineListener listener) {
            this.listener = listener;
            return this;
        }

        /** The load pipeline's remote stage ([9 of 12]); {@link RemoteBlockSource#NONE} by default. */
        public Builder remoteSource(RemoteBlockSource remote) {
            this.remote = remote;
            return this;
        }

        /** How shared-memory files are mapped; {@link SharedMemoryMapper#FILES} by default. */
        public Builder sharedMemoryMapper(SharedMemoryMapper files) {
            this.files = files;
            return this;
        }

        /** Which pool a save from each GPU lands in first ({@link DevicePools#NONE}, any pool, by default). */
        public Builder devicePools(DevicePools devicePools) {
            this.devicePools = java.util.Objects.requireNonNull(devicePools, "devicePools");
            return this;
        }

        public KvEngine build() {
            return new KvEngine(this);
        }
    }

    public BlockStore store() {
        return store;
    }

    /** Which pool serves each GPU (for Health and the logs). */
    public DevicePools devicePools() {
        return devicePools;
    }

    public String copyEngineName() {
        return copyEngine.name();
    }

    /** The copy engine's copies by direction and mode ({@code "save/staged"} -> count), for the metrics. */
    public Map<String, Long> copiesByMode() {
        return copyEngine.copiesByMode();
    }

    public int contextCount() {
        return registry.count();
    }

    public boolean hasContext(String contextId) {
        return registry.contains(contextId);
    }

    // ---- contexts ----

    /** Checks the request here, then maps its memory on a mapping thread. */
    public CompletionStage<Registered> register(ContextRegistration request) {
        return registration.register(request);
    }

    /**
     * Drops a context at once (later calls naming it get NOT_FOUND); its cached blocks stay.
     *
     * @return true once its mappings are unmapped (on a cleanup thread, after its operations in flight), false if it
     *     was not registered
     */
    public CompletionStage<Boolean> unregister(String contextId, String why) {
        if (contextId.isBlank()) {
            return CompletableFuture.failedFuture(EngineException.invalid("context_id: missing"));
        }
        CompletableFuture<Void> unmapped = registry.remove(contextId, why);
        return unmapped == null ? CompletableFuture.completedFuture(false) : unmapped.thenApply(done -> true);
    }

    /** One open Session stream of a context; {@link #end()} once, when the stream ends however it ends. */
    public interface SessionHandle {
        void end();
    }

    /**
     * A Session stream starts for {@code contextId}. A context is released when its last session ends: a second
     * session (a reconnect, a helper process) keeps it alive while the first is gone, and closing one of two leaves
     * the context in place.
     *
     * @return the handle to end this session with, or null when the context is not registered
     */
    public SessionHandle attachSession(String contextId) {
        WorkerContext context = registry.find(contextId);
        if (context == null || !context.attachSession()) {
            return null;
        }
        AtomicBoolean ended = new AtomicBoolean();
        return () -> {
            if (ended.compareAndSet(false, true) && context.detachSession()) {
                registry.remove(context.id, "its last session ended");
            }
        };
    }

    /** Open Session streams of a context (0 when unknown). */
    public int sessionCount(String contextId) {
        WorkerContext context = registry.find(contextId);
        return context == null ? 0 : context.sessionCount();
    }

    // ---- data ----

    /** Checks here; reserves, copies and seals on a copy thread; completes when the blocks are stored. */
    public CompletionStage<SaveResult> save(SaveBlocks request) {
        WorkerContext context;
        try {
            context = registry.require(request.contextId());
        } catch (EngineException e) {
            return CompletableFuture.failedFuture(e);
        }
        context.touch();
        return saves.save(context, request);
    }

    /** A short critical section of the store (no eviction): answered on the caller's thread. */
    public PrefixHits query(PrefixQuery query) {
        BlockChecks.checkQuery(query);
        QueryResult r = store.query(query.namespace(), query.hashes(), query.leaseTtlMs());
        return new PrefixHits(
                r.hitCount(), r.leaseId(), r.lease() == null ? 0 : r.lease().expiresInMs());
    }

    public boolean release(long leaseId) {
        return store.release(leaseId);
    }

    /**
     * Starts a load through the {@link LoadPipeline}; completes once the copy is queued, with the blocks that cannot
     * be loaded. The flag reports the end.
     */
    public CompletionStage<LoadStarted> load(LoadBlocks request) {
        WorkerContext context;
        try {
            context = registry.require(request.contextId());
        } catch (EngineException e) {
            return CompletableFuture.failedFuture(e);
        }
        context.touch();
        return loads.start(context, request);
    }

    // ---- running ----

    /** An executor's load, for metrics. */
    public record ExecutorLoad(String executor, int queued, int queueCapacity, int active) {}

    public List<ExecutorLoad> executorLoads() {
        return List.of(load(copyThreads), load(mappingThreads), load(cleanupThreads));
    }

    private static ExecutorLoad load(BoundedExecutor e) {
        return new ExecutorLoad(e.name(), e.queued(), e.queueCapacity(), e.active());
    }

    private void sweepSafely() {
        try {
            store.sweep();
            registry.dropIdleWithoutSession(System.nanoTime(), sessionlessIdleNs);
            cleanupThreads.retryDeferred();
        } catch (RuntimeException e) {
            log.warn("store sweep failed", e);
        }
    }

    /**
     * Stops taking work, waits for copies and mappings in flight, then unregisters every context. Blocks: call it
     * from a shutdown thread, not a handler.
     *
     * @return false if copies were still running after the wait: the caller must then not free the pool or the GPU
     *     resources those copies may still touch
     */
    public boolean close() {
        sweeper.shutdownNow();
        copyThreads.shutdown();
        mappingThreads.shutdown();
        boolean idle = copyThreads.awaitTermination(60_000) && mappingThreads.awaitTermination(10_000);
        if (!idle) {
            log.error("copies still running after 60 s at shutdown: leaving the pool and mappings in place");
            return false;
        }
        for (String id : registry.ids()) {
            registry.remove(id, "node stopping");
        }
        cleanupThreads.shutdown();
        if (!cleanupThreads.awaitTermination(30_000)) {
            log.warn("unmapping still running after 30 s at shutdown");
        }
        cleanupThreads.runDeferredHere();
        return true;
    }

    /** For tests: the block size of a registered namespace, or 0. */
    long blockBytes(String namespace) {
        NamespaceLayout layout = registry.layout(namespace);
        return layout == null ? 0 : layout.blockBytes();
    }
}
