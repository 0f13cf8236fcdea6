/**
 * Starting and stopping one node: options, the local-address checks, the ActorSystem, gRPC and metrics servers.
 * Start-up runs on the main thread (the pinned pool's start also on its {@code pegaflow-host-populate-N} and {@code
 * pegaflow-host-register-N} threads, joined before it returns); everything after runs on Pekko's dispatchers. {@code
 * DeviceSelection} and {@code GpuNumaNodes} are immutable / stateless; {@code PinnedPool} and {@code GpuBackend} are
 * closed once, after the engine that copies through them.
 */
package io.pegaflow.fabric.node;
