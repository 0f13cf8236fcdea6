/** gRPC service implementations. Handlers run on Pekko HTTP's dispatcher: they never block. */
package io.pegaflow.fabric.grpc;
