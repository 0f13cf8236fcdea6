package io.pegaflow.gpu;

import java.util.Arrays;

/**
 * A list of copy runs (source offset, destination offset, length), kept in one primitive array so that building a
 * batch of thousands of runs allocates nothing per run. Adjacent runs are merged as they are added.
 */
public final class CopyBatch {
  private long[] runs;
  private int count;
  private long totalBytes;

  public CopyBatch(int initialRuns) {
    runs = new long[Math.max(1, initialRuns) * 3];
  }

  /** Adds a run, merging it into the previous one when both ranges continue it exactly. */
  public void add(long srcOffset, long dstOffset, long lengthBytes) {
    if (lengthBytes <= 0) {
      throw new IllegalArgumentException("run length must be positive, got " + lengthBytes);
    }
    totalBytes += lengthBytes;
    if (count > 0) {
      int last = (count - 1) * 3;
      if (runs[last] + runs[last + 2] == srcOffset && runs[last + 1] + runs[last + 2] == dstOffset) {
        runs[last + 2] += lengthBytes;
        return;
      }
    }
    if ((count + 1) * 3 > runs.length) {
      runs = Arrays.copyOf(runs, runs.length * 2);
    }
    int at = count * 3;
    runs[at] = srcOffset;
    runs[at + 1] = dstOffset;
    runs[at + 2] = lengthBytes;
    count++;
  }

  public int runCount() {
    return count;
  }

  public long totalBytes() {
    return totalBytes;
  }

  public long srcOffset(int run) {
    return runs[run * 3];
  }

  public long dstOffset(int run) {
    return runs[run * 3 + 1];
  }

  public long length(int run) {
    return runs[run * 3 + 2];
  }

  public void clear() {
    count = 0;
    totalBytes = 0;
  }
}
