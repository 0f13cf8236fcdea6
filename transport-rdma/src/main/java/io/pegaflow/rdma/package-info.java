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
 * In the transport, each NIC's poller thread ({@link io.pegaflow.rdma.Nic}) alone posts to and polls its queue pairs
 * and CQ, and runs completion handlers; submitters only fill a preallocated slot ({@link io.pegaflow.rdma.Transfer})
 * and offer its parts to the pollers' queues. A transfer striped over several NICs completes on whichever poller
 * finishes its last part (atomic part count; the peer's counters are written under its lock). The connector thread
 * dials, and tears down connections only after the pollers have drained their queue pairs; one thread per side
 * channel reads announcements; one thread per inbound connection answers handshakes (its verbs under the lock that
 * closing it takes). {@code close()} ends the connector, the acceptor and the pollers before it frees any queue
 * pair, registration, CQ, PD or context; if one of them does not end in time it frees none.
 */
package io.pegaflow.rdma;
