package io.pegaflow.store;

import java.util.concurrent.CompletableFuture;

/**
 * One block in the pool: its allocation, which slots have arrived or are being copied, pins (leases and loads that
 * need it to stay), and its places in the store's intrusive lists. Owned by {@link BlockStore}; touched only under its
 * lock.
 */
public final class BlockEntry {
    final BlockKey key;
    final NamespaceLayout layout;
    final long offset;
    final long bytes;
    /** The slab the block lives in, fixed by its allocation. */
    final int slab;
    /** The eviction list of the block's size class, fixed when the block is allocated. */
    final BlockStore.ClassLru classLru;

    private final long[] arrived;
    private final long[] inFlight;
    int arrivedCount;
    boolean sealed;
    boolean removed;
    /** A whole block arriving from another node: never in a save's way, never swept, sealed only by commit. */
    boolean incoming;

    int pins;
    long updatedNs;
    /** The last {@link BlockStore#pinForLoad} call that pinned it, to find in O(1) whether a lease covers that load. */
    long loadStamp;

    // Evictable (sealed, unpinned) blocks only: the LRU list of the size class, least recently used first.
    BlockEntry lruPrev;
    BlockEntry lruNext;
    // Evictable blocks only: the unordered list of the slab's evictable blocks, to empty a slab without a full walk.
    BlockEntry slabPrev;
    BlockEntry slabNext;
    // Sealed blocks only (pinned or not): the namespace's list, so clearing a namespace walks only its blocks.
    BlockStore.NamespaceBlocks namespaceBlocks;
    BlockEntry namespacePrev;
    BlockEntry namespaceNext;

    /** Completed when no slot is in flight any more; created only when a concurrent save waits for this block. */
    CompletableFuture<Void> landed;

    BlockEntry(BlockKey key, NamespaceLayout layout, long offset, int slab, BlockStore.ClassLru classLru, long nowNs) {
        this.key = key;
        this.layout = layout;
        this.offset = offset;
        this.bytes = layout.blockBytes();
        this.slab = slab;
        this.classLru = classLru;
        int words = (layout.slotCount() + 63) / 64;
        this.arrived = new long[words];
        this.inFlight = new long[words];
        this.updatedNs = nowNs;
    }

    /** Where the block starts in the pool (its slots follow one another). */
    public long offset() {
        return offset;
    }

    public BlockKey key() {
        return key;
    }

    /** The block's bytes: its layout's {@link NamespaceLayout#blockBytes()} (the pool slot may be larger). */
    public long lengthBytes() {
        return bytes;
    }

    boolean evictable() {
        return sealed && !removed && pins == 0;
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

    void markAllArrived() {
        for (int slot = 0; slot < layout.slotCount(); slot++) {
            markArrived(slot);
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
