/**
 * The node's block store: block keys and namespace layouts, the index of blocks in the pool (in-flight, sealed, LRU,
 * pins, leases). JDK only: no gRPC, no actors, no metrics library.
 *
 * <p>Threading: {@link io.pegaflow.store.BlockStore} is guarded by its own monitor; every critical section is short
 * bookkeeping (no copies, no I/O). Copies run outside the lock, on blocks pinned for their duration.
 */
package io.pegaflow.store;
