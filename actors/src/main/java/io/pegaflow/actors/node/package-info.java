/**
 * The node's actor tree: {@link io.pegaflow.actors.node.NodeGuardian}, the parent of every actor the node runs.
 *
 * <p>Threading: an actor; its state is touched only while it handles a message, on Pekko's default dispatcher. It
 * never blocks: replies go straight back, and stopping a child only waits (as a message) for its termination.
 */
package io.pegaflow.actors.node;
