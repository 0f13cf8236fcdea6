package io.pegaflow.fabric.grpc;

import io.grpc.Status;
import io.pegaflow.fabric.engine.EngineException;
import io.pegaflow.fabric.engine.KvEngine;
import io.pegaflow.fabric.metrics.GrpcMetrics;
import io.pegaflow.proto.engine.BlockRef;
import io.pegaflow.proto.engine.Engine;
import io.pegaflow.proto.engine.LoadRequest;
import io.pegaflow.proto.engine.LoadResponse;
import io.pegaflow.proto.engine.QueryRequest;
import io.pegaflow.proto.engine.QueryResponse;
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
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import org.apache.pekko.NotUsed;
import org.apache.pekko.grpc.GrpcServiceException;
import org.apache.pekko.stream.javadsl.Source;

/**
 * The {@code Engine} gRPC service: translates messages to {@link KvEngine} calls and {@link EngineException}s to
 * gRPC status codes. Registration (it maps files) runs on {@code blockingWork}, never on the gRPC dispatcher.
 */
public final class EngineGrpcImpl implements Engine {
    private static final Duration HEARTBEAT = Duration.ofSeconds(2);

    private final KvEngine engine;
    private final Executor blockingWork;
    private final LongSupplier uptimeMs;
    private final GrpcMetrics metrics = new GrpcMetrics("Engine");

    public EngineGrpcImpl(KvEngine engine, Executor blockingWork, LongSupplier uptimeMs) {
        this.engine = engine;
        this.blockingWork = blockingWork;
        this.uptimeMs = uptimeMs;
    }

    @Override
    public CompletionStage<RegisterContextResponse> registerContext(RegisterContextRequest in) {
        return metrics.timed(
                "RegisterContext",
                () -> mapErrors(CompletableFuture.supplyAsync(
                        () -> {
                            KvEngine.Registered r = engine.register(in);
                            return RegisterContextResponse.newBuilder()
                                    .setContextId(r.contextId())
                                    .setBlockBytes(r.blockBytes())
                                    .setSlotBytes(r.slotBytes())
                                    .build();
                        },
                        blockingWork)));
    }

    @Override
    public CompletionStage<UnregisterContextResponse> unregisterContext(UnregisterContextRequest in) {
        return metrics.timed("UnregisterContext", sync(() -> {
            if (in.getContextId().isBlank()) {
                throw new EngineException(EngineException.Code.INVALID_ARGUMENT, "context_id: missing");
            }
            if (!engine.unregister(in.getContextId(), "UnregisterContext")) {
                throw new EngineException(
                        EngineException.Code.NOT_FOUND, "context_id: " + in.getContextId() + " is not registered");
            }
            return UnregisterContextResponse.getDefaultInstance();
        }));
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
            return Source.failed(new GrpcServiceException(
                    Status.NOT_FOUND.withDescription("context_id: " + contextId + " is not registered")));
        }
        metrics.count("Session", "OK");
        return Source.single(SessionEvent.newBuilder().setAttached(contextId).build())
                .concat(Source.tick(HEARTBEAT, HEARTBEAT, Boolean.TRUE)
                        .takeWhile(t -> engine.hasContext(contextId))
                        .map(t -> SessionEvent.newBuilder()
                                .setHeartbeatMs(uptimeMs.getAsLong())
                                .build()))
                .watchTermination((mat, done) -> {
                    // However the stream ends (client gone, connection lost, node stopping) the worker is gone with it.
                    done.whenComplete((d, e) -> engine.unregister(contextId, "session ended"));
                    return NotUsed.getInstance();
                });
    }

    @Override
    public CompletionStage<SaveResponse> save(SaveRequest in) {
        return metrics.timed("Save", () -> {
            int n = in.getBlocksCount();
            int[] ids = new int[n];
            byte[][] hashes = new byte[n][];
            unpack(in.getBlocksList(), ids, hashes);
            int[] layers = in.getLayerIndicesList().stream()
                    .mapToInt(Integer::intValue)
                    .toArray();
            try {
                return mapErrors(engine.save(in.getContextId(), ids, hashes, layers)
                        .thenApply(r -> SaveResponse.newBuilder()
                                .setBlocksStored(r.stored())
                                .setBlocksSkipped(r.skipped())
                                .setBlocksSealed(r.sealed())
                                .build()));
            } catch (EngineException e) {
                return CompletableFuture.failedFuture(toGrpc(e));
            }
        });
    }

    @Override
    public CompletionStage<QueryResponse> query(QueryRequest in) {
        return metrics.timed("Query", sync(() -> {
            byte[][] hashes = new byte[in.getHashesCount()][];
            for (int i = 0; i < hashes.length; i++) {
                hashes[i] = in.getHashes(i).toByteArray();
            }
            KvEngine.QueryResult r =
                    engine.query(in.getNamespace(), hashes, Integer.toUnsignedLong(in.getLeaseTtlMs()));
            return QueryResponse.newBuilder()
                    .setHitBlocks(r.hitBlocks())
                    .setLeaseId(r.leaseId())
                    .setLeaseExpiresInMs(r.leaseExpiresInMs())
                    .build();
        }));
    }

    @Override
    public CompletionStage<LoadResponse> load(LoadRequest in) {
        return metrics.timed("Load", sync(() -> {
            int n = in.getBlocksCount();
            int[] ids = new int[n];
            byte[][] hashes = new byte[n][];
            unpack(in.getBlocksList(), ids, hashes);
            KvEngine.LoadStarted r = engine.load(
                    in.getContextId(),
                    ids,
                    hashes,
                    in.getLeaseId(),
                    in.getFlag().getPath(),
                    in.getFlag().getOffsetBytes());
            LoadResponse.Builder reply = LoadResponse.newBuilder().setBlocksScheduled(r.scheduled());
            for (int id : r.failedBlockIds()) {
                reply.addFailedBlockIds(id);
            }
            return reply.build();
        }));
    }

    @Override
    public CompletionStage<ReleaseResponse> release(ReleaseRequest in) {
        return metrics.timed(
                "Release",
                sync(() -> ReleaseResponse.newBuilder()
                        .setReleased(engine.release(in.getLeaseId()))
                        .build()));
    }

    private static void unpack(List<BlockRef> refs, int[] ids, byte[][] hashes) {
        for (int i = 0; i < ids.length; i++) {
            BlockRef ref = refs.get(i);
            ids[i] = ref.getBlockId();
            hashes[i] = ref.getHash().toByteArray();
        }
    }

    /** Runs a short, non-blocking handler inline, turning engine errors into gRPC statuses. */
    private static <T> Supplier<CompletionStage<T>> sync(Supplier<T> body) {
        return () -> {
            try {
                return CompletableFuture.completedFuture(body.get());
            } catch (EngineException e) {
                return CompletableFuture.failedFuture(toGrpc(e));
            }
        };
    }

    private static <T> CompletionStage<T> mapErrors(CompletionStage<T> stage) {
        return stage.handle((value, error) -> {
                    if (error == null) {
                        return CompletableFuture.completedFuture(value);
                    }
                    Throwable cause =
                            error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
                    if (cause instanceof EngineException e) {
                        return CompletableFuture.<T>failedFuture(toGrpc(e));
                    }
                    return CompletableFuture.<T>failedFuture(
                            new GrpcServiceException(Status.INTERNAL.withDescription(String.valueOf(cause))));
                })
                .thenCompose(s -> s);
    }

    static GrpcServiceException toGrpc(EngineException e) {
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
