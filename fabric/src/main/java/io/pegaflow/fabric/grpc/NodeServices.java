package io.pegaflow.fabric.grpc;

import com.google.protobuf.Descriptors;
import io.grpc.ServerServiceDefinition;
import io.pegaflow.proto.engine.Engine;
import io.pegaflow.proto.engine.EngineProto;
import io.pegaflow.proto.engine.LoadRequest;
import io.pegaflow.proto.engine.LoadResponse;
import io.pegaflow.proto.engine.OpenCommandChannelRequest;
import io.pegaflow.proto.engine.OpenCommandChannelResponse;
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
import io.pegaflow.proto.fabric.ClusterStatusRequest;
import io.pegaflow.proto.fabric.ClusterStatusResponse;
import io.pegaflow.proto.fabric.Fabric;
import io.pegaflow.proto.fabric.FabricProto;
import io.pegaflow.proto.fabric.HealthRequest;
import io.pegaflow.proto.fabric.HealthResponse;
import io.pegaflow.proto.fabric.LocateRequest;
import io.pegaflow.proto.fabric.LocateResponse;
import io.pegaflow.proto.fabric.LocationEvent;
import io.pegaflow.proto.fabric.ShutdownRequest;
import io.pegaflow.proto.fabric.ShutdownResponse;
import io.pegaflow.proto.fabric.WatchLocationsRequest;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.apache.pekko.stream.Materializer;

/**
 * The node's two services as grpc-java service definitions: every method of {@code engine.proto} and {@code
 * fabric.proto} bound by name to its handler in {@link EngineGrpcImpl} / {@link FabricGrpcImpl} (the pekko-grpc
 * generated interfaces). A method in the proto without a binding here fails the node's start ({@link
 * #checkComplete}). Fabric calls see their caller ({@link FabricGrpcImpl#forCaller}). Stateless.
 */
public final class NodeServices {
    private NodeServices() {}

    public static ServerServiceDefinition engine(EngineGrpcImpl engine, Materializer materializer) {
        String s = Engine.name;
        return checkComplete(
                ServerServiceDefinition.builder(s)
                        .addMethod(NodeCalls.unary(
                                s,
                                "RegisterContext",
                                RegisterContextRequest.parser(),
                                RegisterContextResponse.getDefaultInstance(),
                                (in, call) -> engine.registerContext(in)))
                        .addMethod(NodeCalls.unary(
                                s,
                                "UnregisterContext",
                                UnregisterContextRequest.parser(),
                                UnregisterContextResponse.getDefaultInstance(),
                                (in, call) -> engine.unregisterContext(in)))
                        .addMethod(NodeCalls.serverStreaming(
                                s,
                                "Session",
                                SessionRequest.parser(),
                                SessionEvent.getDefaultInstance(),
                                (in, call) -> engine.session(in),
                                materializer))
                        .addMethod(NodeCalls.unary(
                                s,
                                "Save",
                                SaveRequest.parser(),
                                SaveResponse.getDefaultInstance(),
                                (in, call) -> engine.save(in)))
                        .addMethod(NodeCalls.unary(
                                s,
                                "Query",
                                QueryRequest.parser(),
                                QueryResponse.getDefaultInstance(),
                                (in, call) -> engine.query(in)))
                        .addMethod(NodeCalls.unary(
                                s,
                                "Load",
                                LoadRequest.parser(),
                                LoadResponse.getDefaultInstance(),
                                (in, call) -> engine.load(in)))
                        .addMethod(NodeCalls.unary(
                                s,
                                "Release",
                                ReleaseRequest.parser(),
                                ReleaseResponse.getDefaultInstance(),
                                (in, call) -> engine.release(in)))
                        .addMethod(NodeCalls.unary(
                                s,
                                "OpenCommandChannel",
                                OpenCommandChannelRequest.parser(),
                                OpenCommandChannelResponse.getDefaultInstance(),
                                (in, call) -> engine.openCommandChannel(in)))
                        .build(),
                EngineProto.getDescriptor().findServiceByName("Engine"));
    }

    public static ServerServiceDefinition fabric(FabricGrpcImpl fabric, Materializer materializer) {
        String s = Fabric.name;
        return checkComplete(
                ServerServiceDefinition.builder(s)
                        .addMethod(NodeCalls.unary(
                                s,
                                "Health",
                                HealthRequest.parser(),
                                HealthResponse.getDefaultInstance(),
                                (in, call) -> fabric.health(in)))
                        .addMethod(NodeCalls.unary(
                                s,
                                "ClusterStatus",
                                ClusterStatusRequest.parser(),
                                ClusterStatusResponse.getDefaultInstance(),
                                (in, call) -> fabric.clusterStatus(in)))
                        .addMethod(NodeCalls.unary(
                                s,
                                "Shutdown",
                                ShutdownRequest.parser(),
                                ShutdownResponse.getDefaultInstance(),
                                (in, call) -> fabric.forCaller(GrpcCallers.describe(call))
                                        .shutdown(in)))
                        .addMethod(NodeCalls.unary(
                                s,
                                "Locate",
                                new AliasingParser<>(LocateRequest.parser()), // packed hashes read in place
                                LocateResponse.getDefaultInstance(),
                                (in, call) -> fabric.locate(in)))
                        .addMethod(NodeCalls.serverStreaming(
                                s,
                                "WatchLocations",
                                WatchLocationsRequest.parser(),
                                LocationEvent.getDefaultInstance(),
                                (in, call) -> fabric.watchLocations(in),
                                materializer))
                        .build(),
                FabricProto.getDescriptor().findServiceByName("Fabric"));
    }

    /** {@code bound}, once it is known to serve every method {@code proto} declares. */
    static ServerServiceDefinition checkComplete(ServerServiceDefinition bound, Descriptors.ServiceDescriptor proto) {
        Set<String> declared = proto.getMethods().stream()
                .map(Descriptors.MethodDescriptor::getName)
                .collect(Collectors.toCollection(TreeSet::new));
        Set<String> served = bound.getMethods().stream()
                .map(m -> m.getMethodDescriptor().getBareMethodName())
                .collect(Collectors.toCollection(TreeSet::new));
        if (!declared.equals(served)) {
            throw new IllegalStateException(
                    proto.getFullName() + ": the proto declares " + declared + " but the node binds " + served);
        }
        return bound;
    }
}
