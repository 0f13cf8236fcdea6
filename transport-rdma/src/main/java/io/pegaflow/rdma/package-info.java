/**
 * The RDMA data path between nodes: libibverbs through FFM ({@code io.pegaflow.rdma.verbs}), implementing the
 * transport SPI of {@code io.pegaflow.transport}.
 *
 * <p>Public API: {@link io.pegaflow.rdma.RdmaProbe} (what RDMA the machine has and what is wrong with a
 * configuration: {@code ./pegaflow rdma-check}), {@link io.pegaflow.rdma.RdmaSettings} / {@link io.pegaflow.rdma.RdmaNic}
 * (NICs, queue pairs per peer, depths), {@link io.pegaflow.rdma.RdmaTransports#create} (the factory) and
 * {@link io.pegaflow.rdma.RdmaTransport}.
 *
 * <p>Threading: the probe and the factory are control-path calls, thread-safe, that may block (they open devices).
 * The transport's threading is described on {@link io.pegaflow.rdma.RdmaTransport}.
 */
package io.pegaflow.rdma;
