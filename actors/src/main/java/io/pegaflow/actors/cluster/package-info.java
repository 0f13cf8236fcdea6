/**
 * Cluster membership: Pekko settings derived from the topology, and read-only views of the member list.
 *
 * <p>Immutable values and static functions; safe from any thread.
 */
package io.pegaflow.actors.cluster;
