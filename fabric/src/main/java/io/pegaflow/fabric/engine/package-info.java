/**
 * The local KV engine: worker contexts, the block store (index, LRU, leases, partial blocks) over the pool, and the
 * save/query/load operations behind the Engine gRPC service.
 *
 * <p>Threading: {@link io.pegaflow.store.BlockStore} is guarded by its own monitor and every critical
 * section is short bookkeeping (no copies, no I/O). Copies run on the engine's copy threads, outside the lock,
 * on blocks pinned for the duration. gRPC handlers never wait for a copy except Save, whose reply is the copy's
 * completion (delivered asynchronously).
 */
package io.pegaflow.fabric.engine;
