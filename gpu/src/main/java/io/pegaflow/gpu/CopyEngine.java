package io.pegaflow.gpu;

import java.lang.foreign.MemorySegment;

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

  @Override
  default void close() {}
}
