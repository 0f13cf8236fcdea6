/**
 * The RDMA data path between nodes: libibverbs through FFM, implementing the transport SPI of
 * {@code io.pegaflow.transport} (the TCP transport lives in {@code io.pegaflow.transport.tcp}).
 *
 * <p>Filled in by a later issue; nothing here yet.
 */
package io.pegaflow.rdma;
