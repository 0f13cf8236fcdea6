/**
 * Starting and stopping one node: options, the local-address checks, the ActorSystem, gRPC and metrics servers.
 * Start-up runs on the main thread; everything after runs on Pekko's dispatchers.
 */
package io.pegaflow.fabric.node;
