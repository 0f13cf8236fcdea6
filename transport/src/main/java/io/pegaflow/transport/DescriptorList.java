package io.pegaflow.transport;

import java.util.Arrays;
import java.util.Objects;

/**
 * A reusable list of transfer descriptors: (remote region, remote offset, local region, local offset, length) × N,
 * moved as one transfer. Primitive arrays inside, sized once: filling and submitting a list allocates nothing.
 *
 * <p>For a READ the bytes go from each remote range to its local range; for a WRITE the other way. The transport
 * copies the list when a transfer is submitted, so the caller may {@link #clear()} and refill it as soon as
 * {@code read}/{@code write} returns. Ranges are checked at submission, not here: a bad range is refused as
 * {@link TransferStatus#BAD_DESCRIPTOR} before anything moves.
 *
 * <p>Not thread-safe: one owner at a time.
 */
public final class DescriptorList {

    private final RemoteRegion[] remoteRegions;
    private final long[] remoteOffsets;
    private final LocalRegion[] localRegions;
    private final long[] localOffsets;
    private final long[] lengths;
    private int size;

    /** A list that holds up to {@code capacity} descriptors. */
    public DescriptorList(int capacity) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("capacity must be > 0, got " + capacity);
        }
        remoteRegions = new RemoteRegion[capacity];
        remoteOffsets = new long[capacity];
        localRegions = new LocalRegion[capacity];
        localOffsets = new long[capacity];
        lengths = new long[capacity];
    }

    /**
     * Appends one descriptor.
     *
     * @throws IllegalStateException when the list is full (its capacity is a caller's sizing decision)
     * @return this list
     */
    public DescriptorList add(
            RemoteRegion remote, long remoteOffset, LocalRegion local, long localOffset, long lengthBytes) {
        Objects.requireNonNull(remote, "remote");
        Objects.requireNonNull(local, "local");
        if (size == lengths.length) {
            throw new IllegalStateException("descriptor list is full (capacity " + lengths.length + ")");
        }
        remoteRegions[size] = remote;
        remoteOffsets[size] = remoteOffset;
        localRegions[size] = local;
        localOffsets[size] = localOffset;
        lengths[size] = lengthBytes;
        size++;
        return this;
    }

    /** Empties the list (keeps its capacity); drops the region references so they do not linger. */
    public DescriptorList clear() {
        Arrays.fill(remoteRegions, 0, size, null);
        Arrays.fill(localRegions, 0, size, null);
        size = 0;
        return this;
    }

    public int size() {
        return size;
    }

    public int capacity() {
        return lengths.length;
    }

    public boolean isEmpty() {
        return size == 0;
    }

    public RemoteRegion remoteRegion(int index) {
        return remoteRegions[checkIndex(index)];
    }

    public long remoteOffset(int index) {
        return remoteOffsets[checkIndex(index)];
    }

    public LocalRegion localRegion(int index) {
        return localRegions[checkIndex(index)];
    }

    public long localOffset(int index) {
        return localOffsets[checkIndex(index)];
    }

    public long lengthBytes(int index) {
        return lengths[checkIndex(index)];
    }

    /** The sum of all lengths. */
    public long totalBytes() {
        long total = 0;
        for (int i = 0; i < size; i++) {
            total += lengths[i];
        }
        return total;
    }

    private int checkIndex(int index) {
        return Objects.checkIndex(index, size);
    }
}
