package io.pegaflow.fabric.grpc;

import io.grpc.Status;
import io.pegaflow.actors.cluster.ClusterView;
import io.pegaflow.actors.cluster.MemberView;
import io.pegaflow.fabric.engine.Limits;
import io.pegaflow.fabric.metrics.DirectoryMetrics;
import io.pegaflow.fabric.metrics.GrpcMetrics;
import io.pegaflow.proto.fabric.ClusterStatusRequest;
import io.pegaflow.proto.fabric.ClusterStatusResponse;
import io.pegaflow.proto.fabric.Fabric;
import io.pegaflow.proto.fabric.HealthRequest;
import io.pegaflow.proto.fabric.HealthResponse;
import io.pegaflow.proto.fabric.LocateRequest;
import io.pegaflow.proto.fabric.LocateResponse;
import io.pegaflow.proto.fabric.LocationEvent;
import io.pegaflow.proto.fabric.Member;
import io.pegaflow.proto.fabric.ShutdownRequest;
import io.pegaflow.proto.fabric.ShutdownResponse;
import io.pegaflow.proto.fabric.WatchLocationsRequest;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.function.Supplier;
import org.apache.pekko.NotUsed;
import org.apache.pekko.grpc.GrpcServiceException;
import org.apache.pekko.stream.javadsl.Source;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@code Fabric} gRPC service: health, membership, graceful shutdown, and block locations ({@code Locate} through
 * the directory client, {@code WatchLocations} from this node's store events). A Shutdown needs the node's id as its
 * confirmation and is logged with the caller's address ({@link #forCaller}: the node makes one view per request,
 * sharing everything but the caller).
 */
public final class FabricGrpcImpl implements Fabric {
    static final int REASON_BYTES = 256;
    private static final Logger log = LoggerFactory.getLogger(FabricGrpcImpl.class);

    /** What the service needs from the node, kept narrow so it is easy to test. */
    public interface NodeState {
        String nodeId();

        String clusterName();

        ClusterView clusterView();

        long uptimeMs();

        String copyEngine();

        String transport();

        /** Where blocks live in the cluster: this node's client of the sharded block directory. */
        io.pegaflow.actors.directory.DirectoryClient directoryClient();

        /** This node's block-location changes (the store's listener feeds it), for {@code WatchLocations}. */
        LocationWatch locationWatch();

        /** Starts a graceful stop (leave the cluster, exit 0) shortly after the reply has gone out. */
        void requestShutdown(String reason);

        /** The node's engine, whose pools Health reports (null: none to report). */
        default io.pegaflow.fabric.engine.KvEngine engine() {
            return null;
        }
    }

    /** How long a Locate waits for the directory's ranges; a silent range's hashes come back empty, incomplete. */
    static final Duration LOCATE_TIMEOUT = Duration.ofSeconds(2);

    private final NodeState node;
    private final GrpcMetrics metrics;
    private final String version;
    private final String caller;

    public FabricGrpcImpl(NodeState node, String version) {
        this(node, version, new GrpcMetrics("Fabric"), "an unknown address");
    }

    private FabricGrpcImpl(NodeState node, String version, GrpcMetrics metrics, String caller) {
        this.node = node;
        this.version = version;
        this.metrics = metrics;
        this.caller = caller;
    }

    /** This service answering one request from {@code caller} (an address, for the log). */
    public FabricGrpcImpl forCaller(String caller) {
        return new FabricGrpcImpl(node, version, metrics, caller);
    }

    @Override
    public CompletionStage<HealthResponse> health(HealthRequest in) {
        return metrics.timed("Health", completed(this::healthNow));
    }

    @Override
    public CompletionStage<ClusterStatusResponse> clusterStatus(ClusterStatusRequest in) {
        return metrics.timed("ClusterStatus", completed(this::clusterStatusNow));
    }

    @Override
    public CompletionStage<ShutdownResponse> shutdown(ShutdownRequest in) {
        return metrics.timed("Shutdown", completed(() -> {
            String confirm = in.getConfirmNodeId();
            if (confirm.isEmpty()) {
                throw refuse(
                        Status.INVALID_ARGUMENT,
                        "confirm_node_id: missing; send this node's id (Health.node_id) to confirm the shutdown");
            }
            if (!confirm.equals(node.nodeId())) {
                throw refuse(
                        Status.FAILED_PRECONDITION,
                        "confirm_node_id: " + Limits.echo(confirm) + " is not this node (" + node.nodeId() + ")");
            }
            if (in.getReason().length() > REASON_BYTES
                    || in.getReason().getBytes(StandardCharsets.UTF_8).length > REASON_BYTES) {
                throw refuse(Status.INVALID_ARGUMENT, "reason: at most " + REASON_BYTES + " bytes are allowed");
            }
            String reason = (in.getReason().isBlank() ? "Shutdown RPC" : in.getReason()) + ", asked by " + caller;
            node.requestShutdown(reason);
            return ShutdownResponse.newBuilder().setNodeId(node.nodeId()).build();
        }));
    }

    @Override
    public CompletionStage<LocateResponse> locate(LocateRequest in) {
        return metrics.timed("Locate", () -> {
            byte[][] hashes = LocateMapper.hashes(in);
            long startNs = System.nanoTime();
            return node.directoryClient()
                    .locate(in.getNamespace(), hashes, LOCATE_TIMEOUT)
                    .thenApply(result -> {
                        DirectoryMetrics.lookedUp(node.nodeId(), System.nanoTime() - startNs);
                        return LocateMapper.reply(result, node.nodeId());
                    });
        });
    }

    @Override
    public Source<LocationEvent, NotUsed> watchLocations(WatchLocationsRequest in) {
        int namespaceBytes = in.getNamespaceBytes().size();
        if (namespaceBytes > LocateMapper.MAX_NAMESPACE_BYTES) {
            metrics.count("WatchLocations", "INVALID_ARGUMENT");
            return Source.failed(LocateMapper.invalid(
                    "namespace: " + namespaceBytes + " bytes; at most " + LocateMapper.MAX_NAMESPACE_BYTES));
        }
        metrics.count("WatchLocations", "OK");
        return node.locationWatch().watch(in);
    }

    private GrpcServiceException refuse(Status status, String message) {
        log.warn("node {}: refused a Shutdown from {}: {}", node.nodeId(), caller, message);
        return new GrpcServiceException(status.withDescription(message));
    }

    private HealthResponse healthNow() {
        boolean up = node.clusterView().selfStatus().equals("Up");
        return HealthResponse.newBuilder()
                .setNodeId(node.nodeId())
                .setStatus(up ? HealthResponse.ServingStatus.SERVING : HealthResponse.ServingStatus.NOT_SERVING)
                .setVersion(version)
                .setUptimeMs(node.uptimeMs())
                .setCopyEngine(node.copyEngine())
                .setTransport(node.transport())
                .addAllPools(node.engine() == null ? java.util.List.of() : PoolUseMapper.of(node.engine()))
                .build();
    }

    private ClusterStatusResponse clusterStatusNow() {
        ClusterView view = node.clusterView();
        ClusterStatusResponse.Builder reply = ClusterStatusResponse.newBuilder()
                .setClusterName(node.clusterName())
                .setSelfNodeId(node.nodeId())
                .setSelfAddress(view.selfAddress())
                .setLeaderAddress(view.leader())
                .addAllUnreachable(view.unreachable());
        for (MemberView m : view.members()) {
            reply.addMembers(Member.newBuilder()
                    .setAddress(m.address())
                    .setNodeId(m.nodeId())
                    .setStatus(m.status())
                    .addAllRoles(m.roles().stream().sorted().toList()));
        }
        return reply.build();
    }

    private static <T> Supplier<CompletionStage<T>> completed(Supplier<T> body) {
        return () -> CompletableFuture.completedFuture(body.get());
    }
}
