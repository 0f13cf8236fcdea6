/**
 * The static cluster topology: a YAML file naming the cluster and, for every node, its addresses
 * (Pekko Artery, gRPC, metrics), GPUs, RDMA NICs, pool size and transport.
 *
 * <p>{@link io.pegaflow.config.TopologyLoader} reads the file and validates it by hand, so that one
 * {@link io.pegaflow.config.TopologyException} lists every problem with its path and line. What it
 * returns, {@link io.pegaflow.config.Topology} and the records inside it, are immutable,
 * thread-safe values; the loader and {@link io.pegaflow.config.ByteSize} are stateless and may be
 * called from any thread.
 *
 * <p>JDK and SnakeYAML (its composer only): this module sits below the actors and must never see Pekko or Kamon.
 */
package io.pegaflow.config;
