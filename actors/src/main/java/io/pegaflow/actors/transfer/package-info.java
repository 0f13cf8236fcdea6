/**
 * Cross-node block transfers, scheduled and acknowledged by an actor: {@link
 * io.pegaflow.actors.transfer.TransferCoordinator} (one per node, a node-guardian child) serves leases on its blocks
 * to peers and fetches missing blocks from them over the {@link io.pegaflow.transport.Transport}.
 *
 * <p>Threading: the coordinator owns its state and never blocks; reservations that may evict run on a bounded store
 * executor and come back through {@code pipeToSelf}; the transport's completion is told to it from the transport's
 * I/O thread. Bytes never pass through the actor. Retries, the holder's lease confirmation and the shutdown drain are
 * messages too: nothing waits. {@link io.pegaflow.actors.transfer.TransferCounters} (one per node) is thread-safe.
 */
package io.pegaflow.actors.transfer;
