/**
 * The node's block store: block keys and namespace layouts, the index of blocks in the pool (blocks being filled,
 * incoming blocks, sealed blocks, per-class LRU eviction, pins, leases), block descriptors for transports, and seal and
 * removal events for the block directory. JDK only: no gRPC, no actors, no metrics library.
 *
 * <p>Threading: {@link io.pegaflow.store.BlockStore} is guarded by its own monitor; every critical section is short
 * bookkeeping (no copies, no I/O). Copies run outside the lock, on blocks pinned (or reserved as incoming) for their
 * duration. Events are recorded under the lock and delivered to the {@link io.pegaflow.store.StoreListener} by the
 * store's one daemon thread, {@code pegaflow-store-events}, outside the lock. Records here are immutable values.
 */
package io.pegaflow.store;
