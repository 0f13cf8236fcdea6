package io.pegaflow.transport.tcp;

import java.nio.ByteBuffer;

/**
 * One thread's reusable {@link ByteBuffer} views of registered regions, so that socket reads and writes go straight
 * into and out of region memory (no intermediate copy) without allocating per block. A region is viewed as 1 GiB
 * chunks (a ByteBuffer holds at most 2 GiB); each view is made once per (thread, registration) and then only has its
 * position and limit moved.
 *
 * <p>Confined to its thread: the views are mutable cursors.
 */
final class RegionViews {

    static final long CHUNK_BYTES = 1L << 30;

    private final TcpRegion[] owners = new TcpRegion[RegionTable.MAX_REGIONS];
    private final ByteBuffer[][] chunks = new ByteBuffer[RegionTable.MAX_REGIONS][];

    /**
     * A view of {@code [offset, offset + length)} of {@code region}, or of its first part when the range crosses a
     * chunk boundary: {@code remaining()} says how much it covers. Valid until the next call on this thread.
     */
    ByteBuffer view(TcpRegion region, long offset, long length) {
        ByteBuffer[] regionChunks = chunksOf(region);
        int chunk = (int) (offset / CHUNK_BYTES);
        int position = (int) (offset % CHUNK_BYTES);
        ByteBuffer view = regionChunks[chunk];
        long span = Math.min(length, view.capacity() - position);
        view.limit(position + (int) span).position(position);
        return view;
    }

    private ByteBuffer[] chunksOf(TcpRegion region) {
        int id = region.regionId();
        if (owners[id] != region) {
            long size = region.segment().byteSize();
            int count = (int) ((size + CHUNK_BYTES - 1) / CHUNK_BYTES);
            ByteBuffer[] made = new ByteBuffer[count];
            for (int c = 0; c < count; c++) {
                long start = c * CHUNK_BYTES;
                made[c] = region.segment()
                        .asSlice(start, Math.min(CHUNK_BYTES, size - start))
                        .asByteBuffer();
            }
            chunks[id] = made;
            owners[id] = region;
        }
        return chunks[id];
    }
}
