/**
 * The transport SPI: what the node's data path between nodes offers to the transfer coordinator, whatever moves the
 * bytes (TCP here, RDMA verbs in {@code transport-rdma}).
 *
 * <p>Model: local memory is registered once ({@link io.pegaflow.transport.LocalRegion}); peers name it by plain values
 * ({@link io.pegaflow.transport.RemoteRegion}: node, region id, base, length, key); a transfer is one
 * {@link io.pegaflow.transport.DescriptorList} moved by a one-sided READ or WRITE over a long-lived connection to one
 * peer of a static list, and reports one completion with a {@link io.pegaflow.transport.TransferStatus} and a byte
 * count. Expected outcomes (back-pressure, not connected, closed, remote error, timeout) are values, never exceptions.
 *
 * <p>Threading: {@link io.pegaflow.transport.Transport} is thread-safe; submissions, cancels, state queries and
 * snapshots never block and never do I/O on the caller's thread, so an actor may call them. Completions run on the
 * transport's own threads ({@link io.pegaflow.transport.CompletionHandler}: must not block, must not call into an
 * actor synchronously). {@link io.pegaflow.transport.DescriptorList} is single-owner;
 * {@link io.pegaflow.transport.PeerCounters} and {@link io.pegaflow.transport.LatencyHistogram} are single-writer
 * counters that any thread may read. No Pekko, no Kamon, no logging library: JDK only (lifecycle events go to
 * {@link java.lang.System.Logger}).
 */
package io.pegaflow.transport;
