/**
 * The node's side of cross-node transfers: the transport started from the topology ({@link
 * io.pegaflow.fabric.transfer.NodeTransport}) and the load pipeline's remote stage through the transfer coordinator
 * ({@link io.pegaflow.fabric.transfer.CoordinatorBlockSource}), and the shutdown drain ({@link
 * io.pegaflow.fabric.transfer.TransferDrain}).
 *
 * <p>Threading: {@code NodeTransport.start} and {@code close} run on the node's start and stop threads (they may
 * block briefly: binding, joining the transport's threads); {@code CoordinatorBlockSource} is thread-safe and never
 * blocks (an ask, then a short store call on the thread that completes it); {@code TransferDrain} runs on the
 * shutdown thread and blocks it, bounded (twice its timeout at most), until the coordinator has aborted what it fetched.
 */
package io.pegaflow.fabric.transfer;
