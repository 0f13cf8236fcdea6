package io.pegaflow.fabric.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.pegaflow.actors.cluster.ClusterView;
import io.pegaflow.proto.fabric.ShutdownRequest;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.grpc.GrpcServiceException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Fabric.Shutdown against a node stand-in that records shutdown requests (the real stop, a JVM exit, is
 * ClusterProcessTest's): only a request naming this node stops it, and the log line says who asked.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class FabricGrpcImplTest {
    final List<String> shutdowns = new CopyOnWriteArrayList<>();

    final FabricGrpcImpl.NodeState node = new FabricGrpcImpl.NodeState() {
        @Override
        public String nodeId() {
            return "n1";
        }

        @Override
        public String clusterName() {
            return "test";
        }

        @Override
        public ClusterView clusterView() {
            throw new UnsupportedOperationException("not used here");
        }

        @Override
        public long uptimeMs() {
            return 1;
        }

        @Override
        public String copyEngine() {
            return "host";
        }

        @Override
        public String transport() {
            return "tcp";
        }

        @Override
        public io.pegaflow.actors.directory.DirectoryClient directoryClient() {
            throw new UnsupportedOperationException("not used here");
        }

        @Override
        public LocationWatch locationWatch() {
            throw new UnsupportedOperationException("not used here");
        }

        @Override
        public void requestShutdown(String reason) {
            shutdowns.add(reason);
        }
    };

    final FabricGrpcImpl fabric = new FabricGrpcImpl(node, "test").forCaller("10.1.2.3:4567");

    private Status refusal(ShutdownRequest request) {
        ExecutionException e = assertThrows(
                ExecutionException.class,
                () -> fabric.shutdown(request).toCompletableFuture().get(5, TimeUnit.SECONDS));
        return ((GrpcServiceException) e.getCause()).getStatus();
    }

    @Test
    void shouldRefuseAShutdownWithoutTheNodesIdAndStayUp() throws Exception {
        Status missing = refusal(ShutdownRequest.newBuilder().setReason("x").build());
        assertEquals(Status.Code.INVALID_ARGUMENT, missing.getCode());
        assertTrue(missing.getDescription().startsWith("confirm_node_id: missing"), missing.getDescription());
        Status other =
                refusal(ShutdownRequest.newBuilder().setConfirmNodeId("n2").build());
        assertEquals(Status.Code.FAILED_PRECONDITION, other.getCode());
        assertEquals("confirm_node_id: \"n2\" is not this node (n1)", other.getDescription());
        // Eight random bytes that parse: fields of unknown numbers, or a reason without a confirmation.
        Status random = refusal(ShutdownRequest.parseFrom(new byte[] {0x0a, 0x02, 'o', 'k', 0x18, 0x05, 0x20, 0x01}));
        assertEquals(Status.Code.INVALID_ARGUMENT, random.getCode());
        Status longReason = refusal(ShutdownRequest.newBuilder()
                .setConfirmNodeId("n1")
                .setReason("r".repeat(257))
                .build());
        assertEquals(Status.Code.INVALID_ARGUMENT, longReason.getCode());
        assertEquals(List.of(), shutdowns, "a refused Shutdown must not stop the node");
    }

    @Test
    void shouldStopWhenTheRequestNamesThisNodeAndSayWhoAsked() throws Exception {
        String nodeId = fabric.shutdown(ShutdownRequest.newBuilder()
                        .setConfirmNodeId("n1")
                        .setReason("maintenance")
                        .build())
                .toCompletableFuture()
                .get(5, TimeUnit.SECONDS)
                .getNodeId();
        assertEquals("n1", nodeId);
        assertEquals(List.of("maintenance, asked by 10.1.2.3:4567"), shutdowns);
    }
}
