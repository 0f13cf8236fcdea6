/**
 * Moving KV bytes between a worker's memory and the node's pool: the {@link io.pegaflow.gpu.CopyEngine} interface,
 * its host-memory implementation ({@code memcpy} over mapped shared-memory files) and, from issue [3 of 7], the CUDA
 * driver through FFM.
 *
 * <p>Copy engines are thread-safe; a {@link io.pegaflow.gpu.CopyBatch} is owned by one thread at a time.
 */
package io.pegaflow.gpu;
