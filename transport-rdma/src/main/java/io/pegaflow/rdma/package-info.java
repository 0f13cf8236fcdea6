/**
 * The non-actor data path between nodes: libibverbs through FFM, and a TCP transport with the same semantics.
 *
 * <p>Filled in by a later issue; nothing here yet.
 */
package io.pegaflow.rdma;
