/**
 * gRPC service implementations and the proto ↔ domain mapping ({@link io.pegaflow.fabric.grpc.EngineProtoMapper}):
 * the only fabric package besides node wiring that sees generated proto classes. {@link
 * io.pegaflow.fabric.grpc.NodeGrpcHandler} puts both services behind our error handler ({@code GrpcErrors}: bytes
 * that do not decode are INVALID_ARGUMENT, no stack trace per request, descriptions cut to 1 KiB) and the 4 MiB
 * request limit ({@code RequestLimits}). Handlers run on Pekko HTTP's dispatcher (the ActorSystem's, shared with
 * actors): they never block; the engine completes their stages from its own threads. Everything here is stateless
 * or thread-safe ({@code RateLimitedLog} is lock-free).
 * {@code Locate} completes from the directory client's ask stages; {@link io.pegaflow.fabric.grpc.LocationWatch} is
 * fed on the store's event thread and offers to each watcher's bounded queue without blocking.
 */
package io.pegaflow.fabric.grpc;
