package io.pegaflow.fabric.grpc;

import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.stream.Materializer;

/**
 * The node's gRPC server: grpc-java's Netty server with the Engine and Fabric services ({@link NodeServices}).
 *
 * <p>Executor: direct, so a call's listener runs on the Netty event loop that read it. The handlers only parse the
 * request, check it and hand the work to the engine's threads (or answer from memory), so a thread hop per call
 * (grpc-java's default cached pool) would add a wake-up and nothing else; the cost is that a handler that blocked
 * would stall every connection on its event loop, which is why nothing in {@code EngineGrpcImpl} or {@code
 * FabricGrpcImpl} may block (EngineGrpcImplThreadTest checks where the blocking work runs).
 *
 * <p>Limits: a message longer than {@link RequestLimits#TRANSPORT_MAX_BYTES} is refused from its length prefix;
 * {@link NodeCalls} refuses the rest over {@link RequestLimits#MAX_REQUEST_BYTES} with our reason. Deadlines are
 * grpc-java's: a call past its deadline is cancelled (its stream stops, a late unary reply is dropped).
 *
 * <p>Stopping: {@link #stopAccepting} (new calls refused, calls in flight go on), then {@link #drain} (waits for them
 * on a virtual thread, then cancels what is left, streams included).
 */
public final class NodeGrpcServer {
    private final Server server;

    private NodeGrpcServer(Server server) {
        this.server = server;
    }

    /** Listens on {@code host:port} (0: any free port); throws when it cannot bind. */
    public static NodeGrpcServer start(
            String host, int port, FabricGrpcImpl fabric, EngineGrpcImpl engine, Materializer materializer)
            throws IOException {
        Server server = NettyServerBuilder.forAddress(new InetSocketAddress(host, port))
                .directExecutor()
                .maxInboundMessageSize(RequestLimits.TRANSPORT_MAX_BYTES)
                .addService(NodeServices.fabric(fabric, materializer))
                .addService(NodeServices.engine(engine, materializer))
                .build();
        server.start();
        return new NodeGrpcServer(server);
    }

    /** The port it listens on. */
    public int port() {
        return server.getPort();
    }

    /** Refuses new calls from now on; calls in flight continue. */
    public CompletionStage<Void> stopAccepting() {
        server.shutdown();
        return CompletableFuture.completedFuture(null);
    }

    /** Waits up to {@code timeout} for the calls in flight, then cancels the rest; completes once the server is down. */
    public CompletionStage<Void> drain(Duration timeout) {
        CompletableFuture<Void> done = new CompletableFuture<>();
        Thread.ofVirtual().name("pegaflow-grpc-drain").start(() -> {
            try {
                server.shutdown();
                if (!server.awaitTermination(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                    server.shutdownNow();
                    server.awaitTermination(1, TimeUnit.SECONDS);
                }
                done.complete(null);
            } catch (InterruptedException e) {
                server.shutdownNow();
                Thread.currentThread().interrupt();
                done.complete(null);
            }
        });
        return done;
    }
}
