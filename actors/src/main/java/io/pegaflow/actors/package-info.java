/**
 * Control plane on Pekko typed: cluster membership from the static topology, the node guardian that owns the node's
 * actors ({@code node}), and (later) the sharded block directory and transfer coordination. Actors here never touch
 * KV bytes and never block on I/O.
 */
package io.pegaflow.actors;
