/**
 * The CUDA driver through FFM, safe wrappers: {@link io.pegaflow.gpu.cuda.CudaProbe} (can CUDA be used here, and
 * if not, why), {@link io.pegaflow.gpu.cuda.CudaDevice} (a GPU by index or UUID, its primary context, CUDA IPC
 * mappings and the registry of GPU-reachable memory), {@link io.pegaflow.gpu.cuda.PinnedHostMemory} (the pool),
 * {@link io.pegaflow.gpu.cuda.DeviceBuffer}, and {@link io.pegaflow.gpu.cuda.CudaCopyEngine} with its copy kernels
 * (PTX resources, built from the {@code .cu} source beside them).
 *
 * <p>Threading: {@code CudaDevice}, {@code CudaCopyEngine} and the memory objects are thread-safe. Each copy lane
 * (streams, events, staging and descriptor buffers) is owned by one agent thread of the engine; callers reach the
 * agents through {@link io.pegaflow.gpu.cuda.LaneDispatcher} (a bounded queue whose admission and close share one
 * lock: a copy is run, refused as full, or refused as closed, never stranded). Control-path failures throw
 * {@link io.pegaflow.gpu.cuda.CudaException}.
 */
package io.pegaflow.gpu.cuda;
