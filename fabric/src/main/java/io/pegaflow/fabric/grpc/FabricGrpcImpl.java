package io.pegaflow.fabric.grpc;

import io.pegaflow.actors.cluster.ClusterView;
import io.pegaflow.actors.cluster.MemberView;
import io.pegaflow.fabric.metrics.GrpcMetrics;
import io.pegaflow.proto.fabric.ClusterStatusRequest;
import io.pegaflow.proto.fabric.ClusterStatusResponse;
import io.pegaflow.proto.fabric.Fabric;
import io.pegaflow.proto.fabric.HealthRequest;
import io.pegaflow.proto.fabric.HealthResponse;
import io.pegaflow.proto.fabric.Member;
import io.pegaflow.proto.fabric.ShutdownRequest;
import io.pegaflow.proto.fabric.ShutdownResponse;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.function.Supplier;

/** The {@code Fabric} gRPC service: health, membership and graceful shutdown. */
public final class FabricGrpcImpl implements Fabric {
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

        /** Starts a graceful stop (leave the cluster, exit 0) shortly after the reply has gone out. */
        void requestShutdown(String reason);
    }

    private final NodeState node;
    private final GrpcMetrics metrics = new GrpcMetrics("Fabric");
    private final String version;

    public FabricGrpcImpl(NodeState node, String version) {
        this.node = node;
        this.version = version;
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
            String reason = in.getReason().isBlank() ? "Shutdown RPC" : in.getReason();
            node.requestShutdown(reason);
            return ShutdownResponse.newBuilder().setNodeId(node.nodeId()).build();
        }));
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
