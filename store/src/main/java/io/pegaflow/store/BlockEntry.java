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

    /** One bit per slot: words {@code [0, words)} say arrived, {@code [words, 2 words)} in flight (one array). */
    private final long[] bits;

    private final int words;
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

    // Blocks of saves not sealed yet only: the store's list of them, oldest first, for the sweeper.
    BlockEntry unsealedPrev;
    BlockEntry unsealedNext;
    boolean listedUnsealed;

    /** Completed when no slot is in flight any more; created only when a concurrent save waits for this block. */
    CompletableFuture<Void> landed;

    BlockEntry(BlockKey key, NamespaceLayout layout, long offset, int slab, BlockStore.ClassLru classLru, long nowNs) {
        this.key = key;
        this.layout = layout;
        this.offset = offset;
        this.bytes = layout.blockBytes();
        this.slab = slab;
        this.classLru = classLru;
        this.words = (layout.slotCount() + 63) / 64;
        this.bits = new long[2 * words];
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

    /** Words of a slot mask for this block's layout (see {@link #markInFlight(long[])}). */
    int maskWords() {
        return words;
    }

    boolean hasArrived(int slot) {
        return (bits[checkedWord(slot)] & (1L << slot)) != 0;
    }

    boolean isInFlight(int slot) {
        return (bits[words + checkedWord(slot)] & (1L << slot)) != 0;
    }

    void markInFlight(int slot) {
        bits[words + checkedWord(slot)] |= 1L << slot;
    }

    /** Marks every slot of {@code mask} (one bit per slot, {@link #maskWords()} words or more) in flight. */
    void markInFlight(long[] mask) {
        for (int w = 0; w < words; w++) {
            bits[words + w] |= mask[w];
        }
    }

    /** The slots of {@code mask} are no longer in flight and, if {@code copied}, have arrived. */
    void endCopy(long[] mask, boolean copied) {
        for (int w = 0; w < words; w++) {
            bits[words + w] &= ~mask[w];
            if (copied) {
                long added = mask[w] & ~bits[w];
                bits[w] |= added;
                arrivedCount += Long.bitCount(added);
            }
        }
    }

    void markArrived(int slot) {
        if (!hasArrived(slot)) {
            bits[checkedWord(slot)] |= 1L << slot;
            arrivedCount++;
        }
    }

    private int checkedWord(int slot) {
        int word = slot >>> 6;
        if (word >= words) {
            throw new ArrayIndexOutOfBoundsException("slot " + slot + " of a block of " + layout.slotCount());
        }
        return word;
    }

    void markAllArrived() {
        for (int slot = 0; slot < layout.slotCount(); slot++) {
            markArrived(slot);
        }
    }

    boolean anyInFlight() {
        for (int w = words; w < 2 * words; w++) {
            if (bits[w] != 0) {
                return true;
            }
        }
        return false;
    }

    boolean complete() {
        return arrivedCount == layout.slotCount();
    }
}
