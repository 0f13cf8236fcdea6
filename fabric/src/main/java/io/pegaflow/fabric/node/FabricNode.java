package io.pegaflow.fabric.node;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.pegaflow.actors.cluster.ClusterSettings;
import io.pegaflow.actors.cluster.ClusterView;
import io.pegaflow.actors.node.NodeGuardian;
import io.pegaflow.config.ByteSize;
import io.pegaflow.fabric.engine.EngineSettings;
import io.pegaflow.fabric.engine.KvEngine;
import io.pegaflow.fabric.grpc.EngineGrpcImpl;
import io.pegaflow.fabric.grpc.FabricGrpcImpl;
import io.pegaflow.fabric.grpc.NodeGrpcHandler;
import io.pegaflow.fabric.metrics.EngineMetrics;
import io.pegaflow.fabric.metrics.MetricsEndpoint;
import io.pegaflow.fabric.metrics.NodeMetricsSampler;
import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.gpu.HostCopyEngine;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.memory.HostMemory;
import io.pegaflow.store.pool.BlockPool;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.Done;
import org.apache.pekko.actor.CoordinatedShutdown;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One running node: the cluster member, the gRPC server and the metrics endpoint. Stops through Pekko's
 * CoordinatedShutdown (Shutdown RPC or SIGTERM): unbind gRPC, leave the cluster, terminate.
 */
public final class FabricNode implements FabricGrpcImpl.NodeState {
    private static final Logger log = LoggerFactory.getLogger(FabricNode.class);
    public static final String VERSION = "0.1.0";
    private static final Duration BIND_TIMEOUT = Duration.ofSeconds(20);

    private final NodeLaunch launch;
    private final ActorSystem<Void> system;
    private final KvEngine engine;
    private final long startNs = System.nanoTime();

    private FabricNode(NodeLaunch launch, ActorSystem<Void> system, KvEngine engine) {
        this.launch = launch;
        this.system = system;
        this.engine = engine;
    }

    /** Starts the node; returns once gRPC and metrics listen (cluster joining continues in the background). */
    public static FabricNode start(NodeLaunch launch) {
        LocalHostCheck.check(launch.self(), launch.grpcBindHost());
        Config base = ConfigFactory.parseResources("pegaflow-node.conf")
                .withFallback(ConfigFactory.load())
                .resolve();
        MetricsEndpoint metrics = MetricsEndpoint.start(
                base, launch.self().id(), launch.grpcBindHost(), launch.self().metricsPort());
        Config config = ClusterSettings.forNode(launch.topology(), launch.self().id(), base);
        EngineMetrics engineMetrics = new EngineMetrics(launch.device().isPresent() ? "cuda" : "host");
        ActorSystem<Void> system = ActorSystem.create(
                Behaviors.setup(context -> {
                    context.spawn(NodeGuardian.create(launch.topology()), NodeGuardian.NAME);
                    return Behaviors.empty();
                }),
                ClusterSettings.systemName(launch.topology()),
                config);
        // Kamon lives as long as the node; stop it (and free its port) once the actor system is gone, however it ends.
        system.getWhenTerminated().thenRun(metrics::close);
        KvEngine engine;
        GpuBackend[] gpu = new GpuBackend[1];
        HostMemory[] host = new HostMemory[1];
        try {
            engine = startEngine(launch, engineMetrics, gpu, host);
        } catch (RuntimeException | OutOfMemoryError e) {
            // Nothing else holds these yet: release them here so a failed start leaves no pinned memory or bound port.
            if (gpu[0] != null) {
                gpu[0].close();
            }
            if (host[0] != null) {
                host[0].close();
            }
            system.terminate();
            if (e instanceof NodeStartException start) {
                throw start;
            }
            throw new NodeStartException(
                    "node " + launch.self().id() + ": cannot start the KV engine with a pool of "
                            + ByteSize.format(launch.poolSizeBytes()) + ": " + e,
                    e);
        }
        FabricNode node = new FabricNode(launch, system, engine);
        NodeMetricsSampler sampler = NodeMetricsSampler.start(node::clusterView, List.of(engineMetrics::sample));
        CoordinatedShutdown shutdown = CoordinatedShutdown.get(system);
        shutdown.addTask(CoordinatedShutdown.PhaseBeforeActorSystemTerminate(), "stop-engine", () -> {
            sampler.close();
            // Free pool and GPU memory only once no copy can touch them any more.
            if (engine.close()) {
                engine.store().pool().close();
                engine.store().close();
                if (gpu[0] != null) {
                    gpu[0].close();
                }
                if (host[0] != null) {
                    host[0].close();
                }
            }
            return java.util.concurrent.CompletableFuture.completedFuture(Done.getInstance());
        });
        node.bindGrpc(shutdown);
        log.info(
                "node {} started: cluster {} at {}:{}, gRPC {}:{}, metrics http://{}:{}/metrics, pool {}, copy engine {}, transport {}",
                launch.self().id(),
                launch.topology().clusterName(),
                launch.self().host(),
                launch.self().clusterPort(),
                launch.grpcBindHost(),
                launch.self().grpcPort(),
                launch.grpcBindHost(),
                launch.self().metricsPort(),
                ByteSize.format(launch.poolSizeBytes()),
                node.copyEngine(),
                node.transport());
        return node;
    }

    /**
     * The pool and the engine: on the GPU ({@code --device}: pinned pool, CUDA copy engine) or in host memory mapped
     * and populated in parallel ({@link HostMemory}).
     */
    private static KvEngine startEngine(
            NodeLaunch launch, EngineMetrics metrics, GpuBackend[] gpuOut, HostMemory[] hostOut) {
        EngineSettings settings;
        try {
            settings = EngineSettings.from(System.getProperties());
        } catch (IllegalArgumentException e) {
            throw new NodeStartException("node " + launch.self().id() + ": " + e.getMessage(), e);
        }
        BlockPool pool;
        CopyEngine copyEngine;
        if (launch.device().isPresent()) {
            GpuBackend gpu = GpuBackend.start(
                    launch.self().id(), launch.device().get(), launch.poolSizeBytes(), System.getProperties());
            gpuOut[0] = gpu;
            pool = BlockPool.wrap(
                    gpu.pool().memory(), BlockPool.defaultSlabBytes(gpu.pool().sizeBytes()));
            copyEngine = gpu.copyEngine();
        } else {
            long start = System.nanoTime();
            HostMemory host = HostMemory.allocate(launch.poolSizeBytes());
            hostOut[0] = host;
            log.info(
                    "host pool {} ready in {} s ({})",
                    ByteSize.format(host.sizeBytes()),
                    String.format("%.2f", (System.nanoTime() - start) / 1e9),
                    host.report());
            pool = BlockPool.wrap(host.memory(), BlockPool.defaultSlabBytes(host.sizeBytes()));
            copyEngine = new HostCopyEngine();
        }
        BlockStore store = new BlockStore(pool, launch.partialTimeoutMs() * 1_000_000, System::nanoTime);
        KvEngine engine = KvEngine.builder(store, copyEngine)
                .settings(settings)
                .listener(metrics)
                .build();
        metrics.attach(engine);
        return engine;
    }

    private void bindGrpc(CoordinatedShutdown shutdown) {
        var handler = NodeGrpcHandler.create(
                new FabricGrpcImpl(this, VERSION), new EngineGrpcImpl(engine, this::uptimeMs), system);
        CompletionStage<ServerBinding> binding = Http.get(system)
                .newServerAt(launch.grpcBindHost(), launch.self().grpcPort())
                .bind(handler);
        ServerBinding bound;
        try {
            bound = binding.toCompletableFuture().get(BIND_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            system.terminate();
            throw new NodeStartException(
                    "node " + launch.self().id() + ": cannot listen for gRPC on " + launch.grpcBindHost() + ":"
                            + launch.self().grpcPort() + ": " + rootMessage(e),
                    e);
        }
        // Stop taking new calls first, let calls in flight finish, then leave the cluster.
        shutdown.addTask(
                CoordinatedShutdown.PhaseServiceUnbind(),
                "grpc-unbind",
                () -> bound.unbind().thenApply(done -> Done.getInstance()));
        shutdown.addTask(
                CoordinatedShutdown.PhaseServiceRequestsDone(),
                "grpc-drain",
                () -> bound.terminate(Duration.ofSeconds(3)).thenApply(t -> Done.getInstance()));
    }

    /** Completes when the node has fully stopped. */
    public CompletionStage<Done> whenTerminated() {
        return system.getWhenTerminated();
    }

    /** Graceful stop, as SIGTERM or the Shutdown RPC do it. */
    public CompletionStage<Done> stop(String reason) {
        return CoordinatedShutdown.get(system).runAll(new Reason(reason));
    }

    public ActorSystem<Void> system() {
        return system;
    }

    @Override
    public String nodeId() {
        return launch.self().id();
    }

    @Override
    public String clusterName() {
        return launch.topology().clusterName();
    }

    @Override
    public ClusterView clusterView() {
        return ClusterView.of(system, launch.topology());
    }

    @Override
    public long uptimeMs() {
        return (System.nanoTime() - startNs) / 1_000_000;
    }

    @Override
    public String copyEngine() {
        return engine.copyEngineName();
    }

    public KvEngine engine() {
        return engine;
    }

    @Override
    public String transport() {
        return "tcp";
    }

    @Override
    public void requestShutdown(String reason) {
        log.info("node {}: shutdown requested ({})", nodeId(), reason);
        // Let the gRPC reply leave before the server unbinds.
        system.scheduler().scheduleOnce(Duration.ofMillis(200), () -> stop(reason), system.executionContext());
    }

    private static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null) {
            t = t.getCause();
        }
        return t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
    }

    /** A CoordinatedShutdown reason carrying the caller's words. */
    private record Reason(String text) implements CoordinatedShutdown.Reason {}
}
