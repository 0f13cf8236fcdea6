/**
 * The local KV engine: worker contexts, registration, save and the asynchronous load pipeline over the block store,
 * behind the Engine gRPC service. Its API takes and returns domain records ({@link
 * io.pegaflow.fabric.engine.ContextRegistration}, {@link io.pegaflow.fabric.engine.SaveBlocks}, {@link
 * io.pegaflow.fabric.engine.LoadBlocks}, ...), never generated proto classes; {@code fabric.grpc} maps them.
 *
 * <p>Jobs: {@link io.pegaflow.fabric.engine.KvEngine} (facade, wiring), {@code RegistrationChecks} and {@code
 * CudaIpcPolicy} (what a registration may ask for), {@code RegionMapper} (one mapping per file or allocation), {@code
 * ContextRegistry} (contexts, namespace layouts, replacement), {@code SaveOperation}, {@code LoadPipeline} (flag →
 * pin → {@link io.pegaflow.fabric.engine.RemoteBlockSource} → copy → flag), {@code FlagFiles} (flag files mapped
 * once per context), {@code BoundedExecutor}, {@link io.pegaflow.fabric.engine.Limits} (the size of every string and
 * list, and how errors echo a caller's input). Lifetimes: a context lives while any of its Session streams is open
 * ({@link io.pegaflow.fabric.engine.KvEngine#attachSession}), one that never had a session until unused for {@code
 * sessionless-idle-ms} (the sweeper drops it), and a context whose shared-memory file shrank is dropped by the copy
 * that notices (docs/engine-api.md).
 *
 * <p>Threading: every public method returns at once and may run on a gRPC handler or actor thread; nothing blocking
 * runs there. Blocking work runs on the engine's own daemon threads, each set behind a bounded queue ({@link
 * io.pegaflow.fabric.engine.EngineSettings}): {@code pegaflow-copy-N} (save bookkeeping that may evict, copies,
 * sealing, flag writes), {@code pegaflow-mapping-N} (mmap of KV caches and flag files, CUDA IPC opening), {@code
 * pegaflow-cleanup-N} (unmapping, CUDA IPC closing), {@code pegaflow-store-sweeper} (lease expiry, stale partial
 * blocks, retries of deferred unmappings). A full queue refuses the request (RESOURCE_EXHAUSTED) with nothing held.
 * {@link io.pegaflow.store.BlockStore} is guarded by its own monitor; its critical sections on caller threads
 * (query, release, pinning for a load) are short bookkeeping that never evicts.
 */
package io.pegaflow.fabric.engine;
