package io.pegaflow.store;

/**
 * One block in the pool: its allocation, which slots have arrived or are being copied, pins (leases and loads that
 * need it to stay), and its place in the LRU list once sealed. Owned by {@link BlockStore}; touched only under its
 * lock.
 */
public final class BlockEntry {
    final BlockKey key;
    final NamespaceLayout layout;
    final long offset;
    final long bytes;
    private final long[] arrived;
    private final long[] inFlight;
    int arrivedCount;
    boolean sealed;
    boolean removed;
    int pins;
    long updatedNs;
    BlockEntry lruPrev;
    BlockEntry lruNext;
    /** Completed when no slot is in flight any more; created only when a concurrent save waits for this block. */
    java.util.concurrent.CompletableFuture<Void> landed;

    /** Where the block starts in the pool (its slots follow one another). */
    public long offset() {
        return offset;
    }

    BlockEntry(BlockKey key, NamespaceLayout layout, long offset, long nowNs) {
        this.key = key;
        this.layout = layout;
        this.offset = offset;
        this.bytes = layout.blockBytes();
        int words = (layout.slotCount() + 63) / 64;
        this.arrived = new long[words];
        this.inFlight = new long[words];
        this.updatedNs = nowNs;
    }

    boolean hasArrived(int slot) {
        return (arrived[slot >>> 6] & (1L << slot)) != 0;
    }

    boolean isInFlight(int slot) {
        return (inFlight[slot >>> 6] & (1L << slot)) != 0;
    }

    void markInFlight(int slot) {
        inFlight[slot >>> 6] |= 1L << slot;
    }

    void clearInFlight(int slot) {
        inFlight[slot >>> 6] &= ~(1L << slot);
    }

    void markArrived(int slot) {
        if (!hasArrived(slot)) {
            arrived[slot >>> 6] |= 1L << slot;
            arrivedCount++;
        }
    }

    boolean anyInFlight() {
        for (long word : inFlight) {
            if (word != 0) {
                return true;
            }
        }
        return false;
    }

    boolean complete() {
        return arrivedCount == layout.slotCount();
    }
}
