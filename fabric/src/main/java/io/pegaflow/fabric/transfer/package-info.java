/**
 * The node's side of cross-node transfers: the transport started from the topology ({@link
 * io.pegaflow.fabric.transfer.NodeTransport}) and the load pipeline's remote stage through the transfer coordinator
 * ({@link io.pegaflow.fabric.transfer.CoordinatorBlockSource}).
 *
 * <p>Threading: {@code NodeTransport.start} and {@code close} run on the node's start and stop threads (they may
 * block briefly: binding, joining the transport's threads); {@code CoordinatorBlockSource} is thread-safe and never
 * blocks (an ask, then a short store call on the thread that completes it).
 */
package io.pegaflow.fabric.transfer;
