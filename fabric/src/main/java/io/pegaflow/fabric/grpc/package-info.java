/**
 * gRPC service implementations and the proto ↔ domain mapping ({@link io.pegaflow.fabric.grpc.EngineProtoMapper}):
 * the only fabric package besides node wiring that sees generated proto classes. Handlers run on Pekko HTTP's
 * dispatcher (the ActorSystem's, shared with actors): they never block; the engine completes their stages from its
 * own threads. {@code Locate} completes from the directory client's ask stages; {@link
 * io.pegaflow.fabric.grpc.LocationWatch} is fed on the store's event thread and offers to each watcher's bounded queue
 * without blocking.
 */
package io.pegaflow.fabric.grpc;
