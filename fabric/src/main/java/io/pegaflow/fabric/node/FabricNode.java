package io.pegaflow.fabric.node;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.pegaflow.actors.cluster.ClusterSettings;
import io.pegaflow.actors.cluster.ClusterView;
import io.pegaflow.actors.directory.DirectoryClient;
import io.pegaflow.actors.directory.DirectoryNode;
import io.pegaflow.actors.directory.StoreEventPublisher;
import io.pegaflow.actors.node.NodeGuardian;
import io.pegaflow.actors.transfer.TransferCoordinator;
import io.pegaflow.actors.transfer.TransferCounters;
import io.pegaflow.config.ByteSize;
import io.pegaflow.fabric.channel.CommandChannels;
import io.pegaflow.fabric.engine.DevicePools;
import io.pegaflow.fabric.engine.EngineSettings;
import io.pegaflow.fabric.engine.KvEngine;
import io.pegaflow.fabric.grpc.EngineGrpcImpl;
import io.pegaflow.fabric.grpc.FabricGrpcImpl;
import io.pegaflow.fabric.grpc.LocationWatch;
import io.pegaflow.fabric.grpc.NodeGrpcServer;
import io.pegaflow.fabric.metrics.DirectoryMetrics;
import io.pegaflow.fabric.metrics.EngineMetrics;
import io.pegaflow.fabric.metrics.MetricsEndpoint;
import io.pegaflow.fabric.metrics.NodeMetricsSampler;
import io.pegaflow.fabric.metrics.TransferMetrics;
import io.pegaflow.fabric.metrics.TransportMetrics;
import io.pegaflow.fabric.transfer.CoordinatorBlockSource;
import io.pegaflow.fabric.transfer.NodeTransport;
import io.pegaflow.fabric.transfer.TransferDrain;
import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.gpu.HostCopyEngine;
import io.pegaflow.gpu.cuda.CudaProbe;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.memory.HostMemory;
import io.pegaflow.store.pool.BlockPool;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.Done;
import org.apache.pekko.actor.CoordinatedShutdown;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.stream.SystemMaterializer;
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
    private static final Duration LOCATE_TIMEOUT = Duration.ofSeconds(2);
    /** A load waits at most this long for blocks held elsewhere; longer than the coordinator's own step timeouts. */
    private static final Duration REMOTE_FETCH_TIMEOUT = Duration.ofSeconds(12);
    /** Shutdown waits this long (twice at most) for the transfer coordinator to cancel and abort what it fetches. */
    private static final Duration TRANSFER_DRAIN_TIMEOUT = Duration.ofSeconds(3);

    private final NodeLaunch launch;
    private final ActorSystem<Void> system;
    private final KvEngine engine;
    private final DirectoryNode directory;
    private final NodeTransport transport;
    private final CompletableFuture<ActorRef<NodeGuardian.Command>> guardian;
    private final LocationWatch watch;
    private final TransferCounters transferCounters = new TransferCounters();
    private final long startNs = System.nanoTime();
    private final CommandChannels commandChannels;

    private FabricNode(
            NodeLaunch launch,
            ActorSystem<Void> system,
            KvEngine engine,
            DirectoryNode directory,
            CompletableFuture<ActorRef<NodeGuardian.Command>> guardian,
            LocationWatch watch,
            NodeTransport transport) {
        this.watch = watch;
        this.transport = transport;
        this.launch = launch;
        this.system = system;
        this.engine = engine;
        this.directory = directory;
        this.guardian = guardian;
        this.commandChannels = new CommandChannels(engine, CommandChannels.Settings.fromSystemProperties());
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
        List<Integer> gpus = servedGpus(launch);
        EngineMetrics engineMetrics = new EngineMetrics(gpus.isEmpty() ? "host" : "cuda");
        // The guardian's ref leaves the setup through this future: the directory spawns its actors as its children.
        CompletableFuture<ActorRef<NodeGuardian.Command>> guardian = new CompletableFuture<>();
        ActorSystem<Void> system = ActorSystem.create(
                Behaviors.setup(context -> {
                    guardian.complete(context.spawn(NodeGuardian.create(launch.topology()), NodeGuardian.NAME));
                    return Behaviors.empty();
                }),
                ClusterSettings.systemName(launch.topology()),
                config);
        // Kamon lives as long as the node; stop it (and free its port) once the actor system is gone, however it ends.
        system.getWhenTerminated().thenRun(metrics::close);
        KvEngine engine;
        CompletableFuture<ActorRef<TransferCoordinator.Command>> coordinator = new CompletableFuture<>();
        NodeTransport[] transportOut = new NodeTransport[1];
        GpuBackend[] gpu = new GpuBackend[1];
        HostMemory[] host = new HostMemory[1];
        try {
            engine = startEngine(launch, gpus, engineMetrics, gpu, host, system, coordinator, transportOut);
        } catch (RuntimeException | OutOfMemoryError e) {
            // Nothing else holds these yet: release them here so a failed start leaves no pinned memory or bound port.
            if (transportOut[0] != null) {
                transportOut[0].close();
            }
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
        DirectoryNode directory = DirectoryNode.start(
                system, launch.topology(), launch.self().id(), null, new GuardianSpawner(system, guardian));
        // Seals and removals flow to the directory from now on; the store's event thread only hands them over.
        StoreEventPublisher toDirectory = new StoreEventPublisher(directory.publisher());
        LocationWatch watch = new LocationWatch(
                launch.self().id(),
                org.apache.pekko.cluster.typed.Cluster.get(system)
                        .selfMember()
                        .uniqueAddress()
                        .longUid());
        engine.store().setListener(batch -> {
            toDirectory.onEvents(batch);
            watch.onEvents(batch);
        });
        NodeTransport transport = transportOut[0];
        // Reservations of incoming blocks (they may evict) run here, off the coordinator's thread; bounded.
        ThreadPoolExecutor storeExecutor = new ThreadPoolExecutor(
                1,
                1,
                0,
                TimeUnit.SECONDS,
                new ArrayBlockingQueue<>(256),
                Thread.ofPlatform().name("pegaflow-transfer-store").daemon().factory());
        FabricNode node = new FabricNode(launch, system, engine, directory, guardian, watch, transport);
        spawnCoordinator(
                launch,
                system,
                engine,
                transport,
                storeExecutor,
                directory,
                guardian,
                coordinator,
                node.transferCounters);
        DirectoryMetrics directoryMetrics = new DirectoryMetrics(launch.self().id(), directory.counters());
        TransportMetrics transportMetrics = new TransportMetrics(
                transport.transport(),
                transport.requested().yamlName(),
                transport.fallbackReason().isPresent());
        TransferMetrics transferMetrics =
                new TransferMetrics(launch.self().id(), node.transport(), node.transferCounters);
        NodeMetricsSampler sampler = NodeMetricsSampler.start(
                node::clusterView,
                List.of(
                        engineMetrics::sample,
                        directoryMetrics::sample,
                        transportMetrics::sample,
                        transferMetrics::sample));
        CoordinatedShutdown shutdown = CoordinatedShutdown.get(system);
        shutdown.addTask(CoordinatedShutdown.PhaseBeforeActorSystemTerminate(), "stop-engine", () -> {
            node.commandChannels.close(); // before the engine: no channel takes a request from here on
            sampler.close();
            // Fetches in flight: cancelled through the transport and their reservations aborted before the pool goes.
            TransferDrain.drain(coordinator, transport, system.scheduler(), TRANSFER_DRAIN_TIMEOUT);
            // Free pool and GPU memory only once no copy can touch them any more.
            if (engine.close()) {
                transport.close(); // no transport thread touches the pool after this
                storeExecutor.shutdown();
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
     * The pool and the engine: on the GPUs ({@code --devices}: one pinned pool, a CUDA copy engine per GPU) or in host memory mapped
     * and populated in parallel ({@link HostMemory}, 4 KiB pages).
     */
    private static KvEngine startEngine(
            NodeLaunch launch,
            List<Integer> gpus,
            EngineMetrics metrics,
            GpuBackend[] gpuOut,
            HostMemory[] hostOut,
            ActorSystem<Void> system,
            CompletionStage<ActorRef<TransferCoordinator.Command>> coordinator,
            NodeTransport[] transportOut) {
        EngineSettings settings;
        try {
            settings = EngineSettings.from(System.getProperties());
        } catch (IllegalArgumentException e) {
            throw new NodeStartException("node " + launch.self().id() + ": " + e.getMessage(), e);
        }
        BlockPool pool;
        CopyEngine copyEngine;
        if (!gpus.isEmpty()) {
            GpuBackend gpu = GpuBackend.start(
                    launch.self().id(), gpus, launch.poolSizeBytes(), System.getProperties(), Path.of("/sys"));
            gpuOut[0] = gpu;
            pool = BlockPool.wrap(
                    gpu.pool().memory(), BlockPool.defaultSlabBytes(gpu.pool().sizeBytes()), gpu.poolCount());
            copyEngine = gpu.copyEngine();
        } else {
            long start = System.nanoTime();
            // 4 KiB pages: nothing registers this memory, and fresh huge pages were the slower start on the dev VM.
            HostMemory host = HostMemory.allocate(launch.poolSizeBytes(), HostMemory.defaultPopulateThreads(), false);
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
        try {
            transportOut[0] = NodeTransport.start(launch.topology(), launch.self(), pool.memory());
        } catch (RuntimeException e) {
            throw new NodeStartException(
                    "node " + launch.self().id() + ": cannot start the transport: " + e.getMessage(), e);
        }
        KvEngine engine = KvEngine.builder(store, copyEngine)
                .settings(settings)
                .remoteSource(new CoordinatorBlockSource(store, coordinator, system.scheduler(), REMOTE_FETCH_TIMEOUT))
                .listener(metrics)
                .devicePools(gpuOut[0] == null ? DevicePools.NONE : gpuOut[0].devicePools())
                .build();
        metrics.attach(engine);
        return engine;
    }

    /**
     * The GPUs this node serves: as listed; or, by default, every GPU the driver shows (none, and the host copy path,
     * where CUDA is not usable: said in the log).
     */
    private static List<Integer> servedGpus(NodeLaunch launch) {
        if (launch.devices().kind() != DeviceSelection.Kind.AUTO) {
            return launch.devices().resolve(Optional.empty());
        }
        Optional<String> why = CudaProbe.unavailabilityCause();
        List<Integer> gpus =
                launch.devices().resolve(why.isPresent() ? Optional.empty() : Optional.of(CudaProbe.deviceCount()));
        if (gpus.isEmpty()) {
            log.info(
                    "node {}: no GPU to serve ({}): host copy engine",
                    launch.self().id(),
                    why.orElse("the driver shows none"));
        } else {
            log.info(
                    "node {}: serving every GPU the driver shows: {}",
                    launch.self().id(),
                    gpus);
        }
        return gpus;
    }

    private void bindGrpc(CoordinatedShutdown shutdown) {
        NodeGrpcServer server;
        try {
            server = NodeGrpcServer.start(
                    launch.grpcBindHost(),
                    launch.self().grpcPort(),
                    new FabricGrpcImpl(this, VERSION),
                    new EngineGrpcImpl(engine, this::uptimeMs, this::heldInCluster, commandChannels),
                    SystemMaterializer.get(system).materializer());
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
                () -> server.stopAccepting().thenApply(done -> Done.getInstance()));
        shutdown.addTask(
                CoordinatedShutdown.PhaseServiceRequestsDone(),
                "grpc-drain",
                () -> server.drain(Duration.ofSeconds(3)).thenApply(t -> Done.getInstance()));
    }

    /** For cluster-scope queries: the prefix of {@code hashes} some node holds, per the directory. */
    private CompletionStage<Integer> heldInCluster(String namespace, byte[][] hashes) {
        return directory.client().locate(namespace, hashes, LOCATE_TIMEOUT).thenApply(r -> r.prefixLength());
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

    @Override
    public KvEngine engine() {
        return engine;
    }

    /** This node's part of the block directory: {@code client()} locates blocks, {@code publisher()} is fed by the store. */
    public DirectoryNode directory() {
        return directory;
    }

    @Override
    public DirectoryClient directoryClient() {
        return directory.client();
    }

    @Override
    public LocationWatch locationWatch() {
        return watch;
    }

    /** The node guardian (parent of the node's actors); completes as soon as the actor system has started it. */
    public CompletionStage<ActorRef<NodeGuardian.Command>> guardian() {
        return guardian;
    }

    @Override
    public String transport() {
        return transport.transport().name();
    }

    /** The node's transport (the pool registered as its region). */
    public NodeTransport nodeTransport() {
        return transport;
    }

    /** The transfer coordinator as a node-guardian child; {@code coordinator} completes with its ref. */
    private static void spawnCoordinator(
            NodeLaunch launch,
            ActorSystem<Void> system,
            KvEngine engine,
            NodeTransport transport,
            ThreadPoolExecutor storeExecutor,
            DirectoryNode directory,
            CompletionStage<ActorRef<NodeGuardian.Command>> guardian,
            CompletableFuture<ActorRef<TransferCoordinator.Command>> coordinator,
            TransferCounters counters) {
        var behavior = TransferCoordinator.create(
                engine.store(),
                transport.transport(),
                transport.poolRegion(),
                directory.client(),
                launch.topology(),
                storeExecutor,
                TransferCoordinator.Settings.defaults(),
                counters);
        var key = new NodeGuardian.ChildKey<>(TransferCoordinator.NAME, TransferCoordinator.Command.class);
        guardian.thenCompose(
                        ref -> AskPattern.<NodeGuardian.Command, ActorRef<TransferCoordinator.Command>>askWithStatus(
                                ref,
                                replyTo -> new NodeGuardian.Command.SpawnChild<>(key, behavior, replyTo),
                                BIND_TIMEOUT,
                                system.scheduler()))
                .whenComplete((ref, failure) -> {
                    if (failure != null) {
                        log.error("transfer coordinator not started: {}", failure.getMessage());
                        coordinator.completeExceptionally(failure);
                    } else {
                        coordinator.complete(ref);
                    }
                });
    }

    /** This node's transfer-coordinator counters (exported by {@link TransferMetrics}). */
    public TransferCounters transferCounters() {
        return transferCounters;
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
