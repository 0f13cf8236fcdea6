/**
 * Moving KV bytes between a worker's memory and the node's pool: the {@link io.pegaflow.gpu.CopyEngine} interface
 * (batches of runs, {@link io.pegaflow.gpu.CopyBatch}, over one or several segments per side), worker memory mapped
 * into the node ({@link io.pegaflow.gpu.MappedRegion}: a shared-memory file or a CUDA IPC allocation), the host
 * implementation ({@code memcpy}) and, in {@code io.pegaflow.gpu.cuda}, the CUDA driver through FFM and the CUDA
 * engine.
 *
 * <p>Copy engines are thread-safe; a {@link io.pegaflow.gpu.CopyBatch} is owned by one thread at a time. {@link
 * io.pegaflow.gpu.SharedMemoryFile} opens a worker's file once without following links (libc's {@code openat} through
 * FFM, {@code Posix}, the binding layer: stateless, a per-thread {@code fstat} buffer) and is thread-safe once mapped.
 */
package io.pegaflow.gpu;
