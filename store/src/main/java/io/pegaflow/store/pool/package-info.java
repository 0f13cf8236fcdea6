/**
 * The block pool: one large off-heap region carved into fixed-size slabs, each slab serving one block size class, with
 * O(1) allocation and free that create no objects in steady state.
 *
 * <p>Threading: not thread-safe. The owner (the local block store) calls every method under its own lock; the pool
 * takes no locks and publishes nothing. {@link io.pegaflow.store.pool.BlockPool#close()} must happen after the data
 * path has stopped touching the memory (copies and RDMA transfers finished).
 */
package io.pegaflow.store.pool;
