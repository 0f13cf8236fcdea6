package io.pegaflow.fabric.grpc;

import io.pegaflow.proto.engine.Engine;
import io.pegaflow.proto.engine.EngineHandlerFactory;
import io.pegaflow.proto.fabric.Fabric;
import io.pegaflow.proto.fabric.FabricHandlerFactory;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.grpc.javadsl.ServiceHandler;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.japi.function.Function;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.SystemMaterializer;

/**
 * The node's gRPC request handler: the Fabric and Engine services behind our error handler ({@link GrpcErrors}:
 * undecodable bytes are INVALID_ARGUMENT, no stack trace per request) and the request size limit ({@link
 * RequestLimits}); Fabric calls learn the caller's address ({@link GrpcCallers}, Shutdown logs who asked). Stateless.
 */
public final class NodeGrpcHandler {
    private NodeGrpcHandler() {}

    public static Function<HttpRequest, CompletionStage<HttpResponse>> create(
            FabricGrpcImpl fabric, EngineGrpcImpl engine, ActorSystem<?> system) {
        Materializer materializer = SystemMaterializer.get(system).materializer();
        Function<HttpRequest, CompletionStage<HttpResponse>> engineHandler =
                EngineHandlerFactory.partial(engine, Engine.name, materializer, GrpcErrors.handler(), system);
        // One light view of the Fabric service per request, carrying its caller (Fabric calls are rare).
        Function<HttpRequest, CompletionStage<HttpResponse>> fabricHandler = request -> FabricHandlerFactory.partial(
                        fabric.forCaller(GrpcCallers.describe(request)),
                        Fabric.name,
                        materializer,
                        GrpcErrors.handler(),
                        system)
                .apply(request);
        return RequestLimits.limited(
                ServiceHandler.concatOrNotFound(fabricHandler, engineHandler), RequestLimits.MAX_REQUEST_BYTES);
    }
}
