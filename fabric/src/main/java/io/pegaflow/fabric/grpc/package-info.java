/**
 * gRPC service implementations and the proto ↔ domain mapping ({@link io.pegaflow.fabric.grpc.EngineProtoMapper}):
 * the only fabric package besides node wiring that sees generated proto classes. {@link
 * io.pegaflow.fabric.grpc.NodeGrpcServer} serves both services on grpc-java's Netty server ({@link
 * io.pegaflow.fabric.grpc.NodeServices} binds each proto method to its {@code *GrpcImpl} handler, {@code NodeCalls}
 * parses requests and sends replies) behind our error mapping ({@code GrpcErrors}: bytes that do not decode are
 * INVALID_ARGUMENT, no stack trace per request, descriptions cut to 1 KiB) and the 4 MiB request limit ({@code
 * RequestLimits}). Handlers run on the Netty event loop (the server's executor is direct): they never block; the
 * engine completes their stages from its own threads, and the reply is sent from the completing thread. Streams are
 * Pekko sources run on the ActorSystem's materializer and bridged with flow control ({@code CallSubscriber}).
 * Everything here is stateless or thread-safe ({@code RateLimitedLog} is lock-free).
 * {@code Locate} completes from the directory client's ask stages; {@link io.pegaflow.fabric.grpc.LocationWatch} is
 * fed on the store's event thread and offers to each watcher's bounded queue without blocking.
 */
package io.pegaflow.fabric.grpc;
