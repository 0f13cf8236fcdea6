package io.pegaflow.gpu.cuda;

import io.pegaflow.gpu.CopyBatch;
import java.util.Arrays;

/**
 * Turns a {@link CopyBatch} into what the GPU executes: kernel descriptors (src, dst, length triples, in the layout
 * of the kernels' {@code struct Run}) and, for {@link CudaCopyMode#STAGED}, per-chunk DMA ranges between the host
 * side and a staging ring. Pure arithmetic over absolute addresses; reused per lane, so planning a batch allocates
 * nothing once the arrays have grown to the batch size.
 *
 * <p>Staged, host to device (load): for chunk {@code c} the DMAs copy host ranges into staging buffer {@code c %
 * ring}, then the kernel descriptors of {@code c} copy from that buffer to the GPU blocks. Device to host (save):
 * the kernel gathers into the buffer, the DMAs copy the buffer out to the host. Adjacent host ranges within a
 * chunk merge into one DMA. Each piece lands in the buffer at the same address mod 16 as its GPU side, so the
 * kernel can use 16-byte vectors.
 *
 * <p>Not thread-safe: owned by one lane.
 */
final class CopyPlan {
  /** Kernel descriptors: src, dst, length. */
  long[] desc = new long[3 * 1024];

  int descCount;
  /** DMA ranges: dst, src, length. */
  long[] dma = new long[3 * 256];

  int dmaCount;
  /** Chunk c owns descriptors [chunkDesc[c], chunkDesc[c+1]) and DMAs [chunkDma[c], chunkDma[c+1]). */
  int[] chunkDesc = new int[64];

  int[] chunkDma = new int[64];
  int chunkCount;

  void clear() {
    descCount = 0;
    dmaCount = 0;
    chunkCount = 0;
  }

  /** One descriptor per piece of at most {@code pieceBytes} of every run. */
  void planDirect(CopyBatch batch, long srcBase, long dstBase, long pieceBytes) {
    clear();
    for (int i = 0; i < batch.runCount(); i++) {
      long src = srcBase + batch.srcOffset(i);
      long dst = dstBase + batch.dstOffset(i);
      long len = batch.length(i);
      for (long off = 0; off < len; off += pieceBytes) {
        addDesc(src + off, dst + off, Math.min(pieceBytes, len - off));
      }
    }
  }

  /**
   * Plans a staged copy.
   *
   * @param hostToDevice true: src is host memory and dst GPU memory (load); false: the reverse (save)
   * @param staging device addresses of the ring's buffers, each {@code chunkBytes} long
   */
  void planStaged(
      CopyBatch batch,
      long srcBase,
      long dstBase,
      boolean hostToDevice,
      long[] staging,
      long chunkBytes,
      long pieceBytes) {
    clear();
    long pos = 0;
    startChunk();
    for (int i = 0; i < batch.runCount(); i++) {
      long src = srcBase + batch.srcOffset(i);
      long dst = dstBase + batch.dstOffset(i);
      long len = batch.length(i);
      long host = hostToDevice ? src : dst;
      long gpu = hostToDevice ? dst : src;
      long off = 0;
      while (off < len) {
        long base = staging[(chunkCount - 1) % staging.length];
        long pad = ((gpu + off) - (base + pos)) & 15;
        if (pos + pad >= chunkBytes) {
          pos = 0;
          startChunk();
          continue;
        }
        pos += pad;
        long take = Math.min(Math.min(len - off, chunkBytes - pos), pieceBytes);
        long stage = base + pos;
        if (hostToDevice) {
          addDesc(stage, gpu + off, take);
          addDma(stage, host + off, take);
        } else {
          addDesc(gpu + off, stage, take);
          addDma(host + off, stage, take);
        }
        pos += take;
        off += take;
        if (pos == chunkBytes) {
          pos = 0;
          startChunk();
        }
      }
    }
    // Drop a trailing empty chunk; close the last one.
    if (chunkCount > 0 && chunkDesc[chunkCount - 1] == descCount) {
      chunkCount--;
    }
    ensureChunks(chunkCount + 1);
    chunkDesc[chunkCount] = descCount;
    chunkDma[chunkCount] = dmaCount;
  }

  private void startChunk() {
    if (chunkCount > 0 && chunkDesc[chunkCount - 1] == descCount) {
      return; // the previous chunk is still empty: reuse it
    }
    ensureChunks(chunkCount + 2);
    chunkDesc[chunkCount] = descCount;
    chunkDma[chunkCount] = dmaCount;
    chunkCount++;
  }

  private void ensureChunks(int n) {
    if (n > chunkDesc.length) {
      chunkDesc = Arrays.copyOf(chunkDesc, Math.max(n, chunkDesc.length * 2));
      chunkDma = Arrays.copyOf(chunkDma, Math.max(n, chunkDma.length * 2));
    }
  }

  private void addDesc(long src, long dst, long len) {
    if ((descCount + 1) * 3 > desc.length) {
      desc = Arrays.copyOf(desc, desc.length * 2);
    }
    int at = descCount * 3;
    desc[at] = src;
    desc[at + 1] = dst;
    desc[at + 2] = len;
    descCount++;
  }

  private void addDma(long dst, long src, long len) {
    int first = chunkDma[chunkCount - 1];
    if (dmaCount > first) {
      int last = (dmaCount - 1) * 3;
      if (dma[last] + dma[last + 2] == dst && dma[last + 1] + dma[last + 2] == src) {
        dma[last + 2] += len;
        return;
      }
    }
    if ((dmaCount + 1) * 3 > dma.length) {
      dma = Arrays.copyOf(dma, dma.length * 2);
    }
    int at = dmaCount * 3;
    dma[at] = dst;
    dma[at + 1] = src;
    dma[at + 2] = len;
    dmaCount++;
  }
}
