package io.pegaflow.gpu;

import java.lang.foreign.MemorySegment;

/** The copy engine without a GPU: {@code memcpy} between mapped host memory segments. */
public final class HostCopyEngine implements CopyEngine {
  @Override
  public String name() {
    return "host";
  }

  @Override
  public void copy(MemorySegment src, MemorySegment dst, CopyBatch batch) {
    // Check every run first so a bad batch copies nothing.
    for (int i = 0; i < batch.runCount(); i++) {
      checkRange("source", src, batch.srcOffset(i), batch.length(i));
      checkRange("destination", dst, batch.dstOffset(i), batch.length(i));
    }
    for (int i = 0; i < batch.runCount(); i++) {
      MemorySegment.copy(src, batch.srcOffset(i), dst, batch.dstOffset(i), batch.length(i));
    }
  }

  private static void checkRange(String what, MemorySegment segment, long offset, long length) {
    if (offset < 0 || length < 0 || offset > segment.byteSize() - length) {
      throw new IndexOutOfBoundsException(
          what + " run [" + offset + ", +" + length + ") outside a segment of " + segment.byteSize() + " bytes");
    }
  }
}
