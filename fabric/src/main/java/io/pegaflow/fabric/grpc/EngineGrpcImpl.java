package io.pegaflow.fabric.grpc;

import io.grpc.Status;
import io.pegaflow.fabric.channel.CommandChannels;
import io.pegaflow.fabric.engine.EngineException;
import io.pegaflow.fabric.engine.KvEngine;
import io.pegaflow.fabric.engine.Limits;
import io.pegaflow.fabric.engine.PrefixHits;
import io.pegaflow.fabric.engine.PrefixQuery;
import io.pegaflow.fabric.metrics.EngineCallMetrics;
import io.pegaflow.fabric.metrics.GrpcMetrics;
import io.pegaflow.proto.engine.Engine;
import io.pegaflow.proto.engine.LoadRequest;
import io.pegaflow.proto.engine.LoadResponse;
import io.pegaflow.proto.engine.OpenCommandChannelRequest;
import io.pegaflow.proto.engine.OpenCommandChannelResponse;
import io.pegaflow.proto.engine.QueryRequest;
import io.pegaflow.proto.engine.QueryResponse;
import io.pegaflow.proto.engine.QueryScope;
import io.pegaflow.proto.engine.RegisterContextRequest;
import io.pegaflow.proto.engine.RegisterContextResponse;
import io.pegaflow.proto.engine.ReleaseRequest;
import io.pegaflow.proto.engine.ReleaseResponse;
import io.pegaflow.proto.engine.SaveRequest;
import io.pegaflow.proto.engine.SaveResponse;
import io.pegaflow.proto.engine.SessionEvent;
import io.pegaflow.proto.engine.SessionRequest;
import io.pegaflow.proto.engine.UnregisterContextRequest;
import io.pegaflow.proto.engine.UnregisterContextResponse;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import org.apache.pekko.NotUsed;
import org.apache.pekko.grpc.GrpcServiceException;
import org.apache.pekko.stream.javadsl.Source;

/**
 * The {@code Engine} gRPC service: messages to domain records ({@link EngineProtoMapper}), {@link KvEngine} calls,
 * {@link EngineException}s to gRPC status codes. Handlers run on the ActorSystem's dispatcher and return at once:
 * the engine does its mapping, unmapping and copying on its own threads and completes the returned stages.
 */
public final class EngineGrpcImpl implements Engine {
    private static final Duration HEARTBEAT = Duration.ofSeconds(2);

    private final KvEngine engine;
    private final LongSupplier uptimeMs;
    private final ClusterPrefix clusterPrefix;
    private final GrpcMetrics metrics = new GrpcMetrics("Engine");
    private final CommandChannels channels;

    /**
     * How many of {@code hashes}, from the first, some node of the cluster holds (the block directory's locate);
     * completes exceptionally or with 0 when that is unknown. Must not block.
     */
    @FunctionalInterface
    public interface ClusterPrefix {
        CompletionStage<Integer> heldPrefix(String namespace, byte[][] hashes);

        /** A node without a directory: nothing is held elsewhere. */
        ClusterPrefix NONE = (namespace, hashes) -> CompletableFuture.completedFuture(0);
    }

    public EngineGrpcImpl(KvEngine engine, LongSupplier uptimeMs) {
        this(engine, uptimeMs, ClusterPrefix.NONE);
    }

    public EngineGrpcImpl(KvEngine engine, LongSupplier uptimeMs, ClusterPrefix clusterPrefix) {
        this(engine, uptimeMs, clusterPrefix, null);
    }

    /** With {@code channels} (null: OpenCommandChannel answers UNIMPLEMENTED). */
    public EngineGrpcImpl(
            KvEngine engine, LongSupplier uptimeMs, ClusterPrefix clusterPrefix, CommandChannels channels) {
        this.engine = engine;
        this.uptimeMs = uptimeMs;
        this.clusterPrefix = clusterPrefix;
        this.channels = channels;
    }

    @Override
    public CompletionStage<RegisterContextResponse> registerContext(RegisterContextRequest in) {
        return metrics.timed(
                "RegisterContext",
                async(() ->
                        engine.register(EngineProtoMapper.registration(in)).thenApply(EngineProtoMapper::registered)));
    }

    @Override
    public CompletionStage<UnregisterContextResponse> unregisterContext(UnregisterContextRequest in) {
        return metrics.timed(
                "UnregisterContext",
                async(() -> engine.unregister(in.getContextId(), "UnregisterContext")
                        .thenApply(known -> {
                            if (!known) {
                                throw new EngineException(
                                        EngineException.Code.NOT_FOUND,
                                        "context_id: " + Limits.echo(in.getContextId()) + " is not registered");
                            }
                            return UnregisterContextResponse.getDefaultInstance();
                        })));
    }

    @Override
    public Source<SessionEvent, NotUsed> session(SessionRequest in) {
        String contextId = in.getContextId();
        if (contextId.isBlank()) {
            metrics.count("Session", "INVALID_ARGUMENT");
            return Source.failed(
                    new GrpcServiceException(Status.INVALID_ARGUMENT.withDescription("context_id: missing")));
        }
        if (!engine.hasContext(contextId)) {
            metrics.count("Session", "NOT_FOUND");
            return Source.failed(notRegistered(contextId));
        }
        metrics.count("Session", "OK");
        // The session attaches when the stream starts, not here: a response that is never sent holds nothing.
        AtomicReference<KvEngine.SessionHandle> attached = new AtomicReference<>();
        return Source.lazySource(() -> {
                    KvEngine.SessionHandle handle = engine.attachSession(contextId);
                    if (handle == null) {
                        return Source.<SessionEvent>failed(notRegistered(contextId));
                    }
                    attached.set(handle);
                    return Source.single(SessionEvent.newBuilder()
                                    .setAttached(contextId)
                                    .build())
                            .concat(Source.tick(HEARTBEAT, HEARTBEAT, Boolean.TRUE)
                                    .takeWhile(t -> engine.hasContext(contextId))
                                    .map(t -> SessionEvent.newBuilder()
                                            .setHeartbeatMs(uptimeMs.getAsLong())
                                            .build()));
                })
                .watchTermination((mat, done) -> {
                    // However the stream ends (client gone, connection lost, node stopping) this session is over;
                    // the context goes with its last session (its unmapping runs on the engine's cleanup thread).
                    done.whenComplete((d, e) -> {
                        KvEngine.SessionHandle handle = attached.getAndSet(null);
                        if (handle != null) {
                            handle.end();
                        }
                    });
                    return NotUsed.getInstance();
                });
    }

    private static GrpcServiceException notRegistered(String contextId) {
        return new GrpcServiceException(
                Status.NOT_FOUND.withDescription("context_id: " + Limits.echo(contextId) + " is not registered"));
    }

    @Override
    public CompletionStage<SaveResponse> save(SaveRequest in) {
        return onGrpcPath(
                "Save",
                () -> metrics.timed(
                        "Save",
                        async(() -> engine.save(EngineProtoMapper.save(in)).thenApply(EngineProtoMapper::saved))));
    }

    @Override
    public CompletionStage<QueryResponse> query(QueryRequest in) {
        return onGrpcPath(
                "Query",
                () -> metrics.timed("Query", async(() -> {
                    PrefixQuery query = EngineProtoMapper.query(in);
                    PrefixHits local = engine.query(query);
                    QueryResponse localReply = EngineProtoMapper.hits(local);
                    int rest = query.hashes().size() - local.hitBlocks();
                    if (in.getScope() != QueryScope.QUERY_SCOPE_CLUSTER || rest == 0) {
                        return CompletableFuture.completedFuture(localReply);
                    }
                    // The local prefix is leased (if asked); the rest is only counted: a Load fetches it from its
                    // holders.
                    byte[][] remaining = query.hashes()
                            .copies(local.hitBlocks(), query.hashes().size());
                    return clusterPrefix
                            .heldPrefix(query.namespace(), remaining)
                            .handle((held, error) -> {
                                int elsewhere = error != null || held == null ? 0 : Math.min(held, rest);
                                return localReply.toBuilder()
                                        .setHitBlocks(local.hitBlocks() + elsewhere)
                                        .build();
                            })
                            .toCompletableFuture();
                })));
    }

    @Override
    public CompletionStage<LoadResponse> load(LoadRequest in) {
        return onGrpcPath(
                "Load",
                () -> metrics.timed(
                        "Load",
                        async(() -> engine.load(EngineProtoMapper.load(in)).thenApply(EngineProtoMapper::started))));
    }

    @Override
    public CompletionStage<OpenCommandChannelResponse> openCommandChannel(OpenCommandChannelRequest in) {
        if (channels == null) {
            metrics.count("OpenCommandChannel", "UNIMPLEMENTED");
            return CompletableFuture.failedFuture(new GrpcServiceException(
                    Status.UNIMPLEMENTED.withDescription("this node offers no command channel: use the RPCs")));
        }
        return metrics.timed(
                "OpenCommandChannel",
                async(() -> channels.open(in.getContextId())
                        .thenApply(info -> OpenCommandChannelResponse.newBuilder()
                                .setPath(info.path().toString())
                                .setSizeBytes(info.sizeBytes())
                                .setVersion(info.version())
                                .setSlotCount(info.slotCount())
                                .setSlotBytes((int) info.slotBytes())
                                .setMaxBlocks(info.maxBlocks())
                                .setMaxLayers(info.maxLayers())
                                .setHeaderBytes((int) info.headerBytes())
                                .build())));
    }

    /** Counts a Save, Load or Query as taken over gRPC ({@link EngineCallMetrics}, path "grpc"). */
    private static <T> CompletionStage<T> onGrpcPath(String op, Supplier<CompletionStage<T>> call) {
        long startNs = System.nanoTime(); // before the call: its parsing and synchronous part count too
        return call.get()
                .whenComplete((value, error) -> EngineCallMetrics.record(
                        op,
                        EngineCallMetrics.GRPC,
                        error == null ? "OK" : GrpcMetrics.statusOf(error),
                        System.nanoTime() - startNs));
    }

    @Override
    public CompletionStage<ReleaseResponse> release(ReleaseRequest in) {
        return metrics.timed(
                "Release",
                async(() -> CompletableFuture.completedFuture(ReleaseResponse.newBuilder()
                        .setReleased(engine.release(in.getLeaseId()))
                        .build())));
    }

    /** Calls the engine, turning engine errors (thrown or in the stage) into gRPC statuses. */
    private static <T> Supplier<CompletionStage<T>> async(Supplier<CompletionStage<T>> call) {
        return () -> {
            CompletionStage<T> stage;
            try {
                stage = call.get();
            } catch (RuntimeException e) {
                stage = CompletableFuture.failedFuture(e);
            }
            return stage.handle((value, error) -> {
                        if (error == null) {
                            return CompletableFuture.completedFuture(value);
                        }
                        return CompletableFuture.<T>failedFuture(toGrpc(error));
                    })
                    .thenCompose(s -> s);
        };
    }

    static GrpcServiceException toGrpc(Throwable error) {
        EngineException e = EngineException.unwrap(error);
        if (e == null) {
            Throwable cause =
                    error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
            return new GrpcServiceException(Status.INTERNAL.withDescription(String.valueOf(cause)));
        }
        Status status = switch (e.code()) {
            case INVALID_ARGUMENT -> Status.INVALID_ARGUMENT;
            case NOT_FOUND -> Status.NOT_FOUND;
            case FAILED_PRECONDITION -> Status.FAILED_PRECONDITION;
            case RESOURCE_EXHAUSTED -> Status.RESOURCE_EXHAUSTED;
            case UNAVAILABLE -> Status.UNAVAILABLE;
            case INTERNAL -> Status.INTERNAL;
        };
        return new GrpcServiceException(status.withDescription(e.getMessage()));
    }
}
