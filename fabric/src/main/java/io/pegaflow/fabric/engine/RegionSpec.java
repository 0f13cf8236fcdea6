package io.pegaflow.fabric.engine;

/** Where a layer's memory lives: a shared-memory file the node maps, or a CUDA allocation it opens by IPC handle. */
public sealed interface RegionSpec {
    /** Where the layer's block 0 starts in the file or allocation (unsigned). */
    long offsetBytes();

    /** A file under the node's shared-memory directory; an empty path means the request named none. */
    record SharedMemory(String path, long offsetBytes) implements RegionSpec {}

    /** A worker's CUDA allocation: its 64-byte {@code cudaIpcMemHandle_t} and size. */
    record CudaIpc(byte[] ipcHandle, long allocationSizeBytes, long offsetBytes) implements RegionSpec {}
}
