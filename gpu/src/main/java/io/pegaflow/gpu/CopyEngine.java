package io.pegaflow.gpu;

import java.lang.foreign.MemorySegment;
import java.util.Optional;

/**
 * Copies batches of byte runs between a worker's memory and the pool. One interface for the host stand-in and the
 * CUDA engine so the block store runs unchanged on both; every log line and metric names the engine that ran.
 */
public interface CopyEngine extends AutoCloseable {
  /** "host" or "cuda": reported by Health and tagged on metrics. */
  String name();

  /**
   * Copies every run of {@code batch} from {@code src} to {@code dst} and returns when the bytes have landed.
   *
   * @throws IndexOutOfBoundsException if a run falls outside either segment (nothing is copied then)
   */
  void copy(MemorySegment src, MemorySegment dst, CopyBatch batch);

  /** The GPU this engine serves as a canonical UUID ({@code GPU-xxxxxxxx-...}); empty for an engine without one. */
  default Optional<String> deviceUuid() {
    return Optional.empty();
  }

  /**
   * Opens a worker's CUDA allocation from its 64-byte {@code cudaIpcMemHandle_t}; an allocation already open in this
   * process is shared (each call returns its own reference; close each one).
   *
   * @param allocationSizeBytes the bytes the worker says the allocation holds (checked against the driver)
   * @throws UnsupportedOperationException from an engine without a GPU
   * @throws IllegalArgumentException if the handle or size is wrong (the message names which)
   */
  default MappedRegion openCudaIpc(byte[] ipcHandle, long allocationSizeBytes) {
    throw new UnsupportedOperationException("the " + name() + " copy engine cannot open CUDA IPC handles");
  }

  @Override
  default void close() {}
}
