package io.pegaflow.store;

import io.pegaflow.store.pool.BlockPool;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.LongSupplier;

/**
 * The index of blocks in the pool, keyed by (namespace, hash): in-flight blocks collecting slots, sealed blocks
 * visible to queries, an LRU list of sealed blocks, pins (leases, loads in progress) that keep blocks from eviction,
 * and leases. Every method is a short critical section under this object's monitor; copies happen outside it.
 */
public final class BlockStore {
    private final BlockPool pool;
    private final LongSupplier clockNs;
    private final long partialTimeoutNs;
    private final HashMap<BlockKey, BlockEntry> index = new HashMap<>();
    /** Sealed blocks with no pins, per pool size class: what eviction could free for a block of that class. */
    private final HashMap<Long, Integer> evictableByClass = new HashMap<>();
    /** Sealed blocks with no pins, per slab: a slab whose live blocks are all evictable can change class. */
    private final int[] evictableInSlab;

    private final HashMap<Long, Lease> leases = new HashMap<>();
    private final StoreCounters counters = new StoreCounters();
    private BlockEntry lruHead; // least recently used
    private BlockEntry lruTail;
    private long nextLeaseId = 1;
    private int sealedCount;
    /** Blocks not sealed yet, so the sweeper looks at these only, not the whole index. */
    private final java.util.LinkedHashSet<BlockEntry> unsealed = new java.util.LinkedHashSet<>();

    record Lease(long id, BlockEntry[] entries, long expiresNs) {}

    /** The slots one save request copies into one block. */
    public record SaveTarget(BlockEntry entry, int blockId, int[] slots) {}

    /**
     * What a save must do ({@code targets}) and what it must wait for: slots it names that another request is copying
     * ({@code othersTargets}, complete when {@code othersInFlight} are), so that its reply never runs ahead of them.
     */
    public record SaveReservation(
            List<SaveTarget> targets, List<SaveTarget> othersTargets, List<CompletableFuture<Void>> othersInFlight) {}

    public BlockStore(BlockPool pool, long partialTimeoutNs, LongSupplier clockNs) {
        this.pool = pool;
        this.partialTimeoutNs = partialTimeoutNs;
        this.clockNs = clockNs;
        this.evictableInSlab = new int[pool.slabCount()];
    }

    public BlockPool pool() {
        return pool;
    }

    public StoreCounters counters() {
        return counters;
    }

    public synchronized int sealedBlocks() {
        return sealedCount;
    }

    public synchronized int inFlightBlocks() {
        return unsealed.size();
    }

    public synchronized int activeLeases() {
        return leases.size();
    }

    /** Pool figures read together, so used + free never disagree in one sample. */
    public synchronized long[] poolSnapshot() {
        return new long[] {pool.capacityBytes(), pool.usedBytes(), pool.largestFreeBytes()};
    }

    // ---- save ----

    /**
     * Reserves pool space and marks slots in flight for one save. Blocks already sealed, and slots already present or
     * being copied by another request, are left out. Either every needed block is allocated (evicting least recently
     * used unpinned blocks of the same size) or nothing changes and RESOURCE_EXHAUSTED is thrown.
     *
     * @param slotsPerBlock the slot indices this request fills in each block
     * @return targets to copy (pinned until {@link #completeSave})
     */
    public synchronized SaveReservation reserveForSave(
            NamespaceLayout layout, int[] blockIds, byte[][] hashes, int[] slotsPerBlock) {
        long now = clockNs.getAsLong();
        BlockKey[] keys = new BlockKey[blockIds.length];
        int newBlocks = 0;
        // Each distinct key of the request, mapped to whether the loop below has planned it yet.
        HashMap<BlockKey, Boolean> seen = new HashMap<>();
        for (int i = 0; i < blockIds.length; i++) {
            keys[i] = new BlockKey(layout.namespace(), hashes[i]);
            if (seen.putIfAbsent(keys[i], Boolean.FALSE) == null && !index.containsKey(keys[i])) {
                newBlocks++;
            }
        }
        long blockBytes = layout.blockBytes();
        // Blocks of this request already in the index must survive the eviction that makes room for the rest.
        List<BlockEntry> protectedEntries = new ArrayList<>();
        for (BlockKey key : seen.keySet()) {
            BlockEntry existing = index.get(key);
            if (existing != null) {
                pin(existing);
                protectedEntries.add(existing);
            }
        }
        boolean room;
        try {
            room = newBlocks == 0 || ensureRoom(blockBytes, newBlocks);
        } finally {
            protectedEntries.forEach(this::unpin);
        }
        if (!room) {
            counters.saveRejectedFull++;
            throw new PoolFullException("pool cannot hold "
                    + newBlocks
                    + " more blocks of "
                    + blockBytes
                    + " bytes even after evicting unleased blocks (capacity "
                    + pool.capacityBytes()
                    + ", used "
                    + pool.usedBytes()
                    + ")");
        }
        List<SaveTarget> targets = new ArrayList<>();
        List<SaveTarget> othersTargets = new ArrayList<>();
        List<CompletableFuture<Void>> othersInFlight = new ArrayList<>();
        for (int i = 0; i < blockIds.length; i++) {
            if (seen.put(keys[i], Boolean.TRUE)) {
                continue; // the same hash twice in one request: copy it once
            }
            BlockEntry entry = index.get(keys[i]);
            if (entry == null) {
                long offset = pool.allocate(blockBytes);
                if (offset < 0) {
                    throw new IllegalStateException("pool refused an allocation that ensureRoom promised");
                }
                entry = new BlockEntry(keys[i], layout, offset, now);
                index.put(keys[i], entry);
                unsealed.add(entry);
            } else if (entry.sealed) {
                continue;
            }
            int[] elsewhere = slotsInFlightElsewhere(entry, slotsPerBlock);
            if (elsewhere.length > 0) {
                if (entry.landed == null) {
                    entry.landed = new CompletableFuture<>();
                }
                othersTargets.add(new SaveTarget(entry, blockIds[i], elsewhere));
                othersInFlight.add(entry.landed);
            }
            int[] todo = slotsToCopy(entry, slotsPerBlock);
            if (todo.length == 0) {
                continue;
            }
            for (int slot : todo) {
                entry.markInFlight(slot);
            }
            entry.pins++;
            entry.updatedNs = now;
            targets.add(new SaveTarget(entry, blockIds[i], todo));
        }
        return new SaveReservation(targets, othersTargets, othersInFlight);
    }

    private static int[] slotsInFlightElsewhere(BlockEntry entry, int[] slots) {
        return java.util.Arrays.stream(slots)
                .filter(slot -> entry.isInFlight(slot) && !entry.hasArrived(slot))
                .toArray();
    }

    /** True if every slot of every target has arrived (and the block is still in the pool). */
    public synchronized boolean allArrived(List<SaveTarget> targets) {
        for (SaveTarget target : targets) {
            if (target.entry().removed) {
                return false;
            }
            for (int slot : target.slots()) {
                if (!target.entry().hasArrived(slot)) {
                    return false;
                }
            }
        }
        return true;
    }

    private static int[] slotsToCopy(BlockEntry entry, int[] slots) {
        int n = 0;
        for (int slot : slots) {
            if (!entry.hasArrived(slot) && !entry.isInFlight(slot)) {
                n++;
            }
        }
        int[] todo = new int[n];
        int j = 0;
        for (int slot : slots) {
            if (!entry.hasArrived(slot) && !entry.isInFlight(slot)) {
                todo[j++] = slot;
            }
        }
        return todo;
    }

    /**
     * Ends a save: marks the copied slots arrived (or not, if the copy failed), unpins, and seals blocks whose last
     * slot arrived.
     *
     * @return how many blocks this call sealed
     */
    public int completeSave(List<SaveTarget> targets, boolean copied) {
        List<CompletableFuture<Void>> landed = new ArrayList<>();
        int sealed = completeSaveLocked(targets, copied, landed);
        // Waiting saves continue on this thread: complete their futures outside the store's lock.
        landed.forEach(f -> f.complete(null));
        return sealed;
    }

    private synchronized int completeSaveLocked(
            List<SaveTarget> targets, boolean copied, List<CompletableFuture<Void>> landed) {
        long now = clockNs.getAsLong();
        int sealedNow = 0;
        for (SaveTarget target : targets) {
            BlockEntry entry = target.entry();
            for (int slot : target.slots()) {
                entry.clearInFlight(slot);
                if (copied) {
                    entry.markArrived(slot);
                }
            }
            if (entry.landed != null && !entry.anyInFlight()) {
                landed.add(entry.landed);
                entry.landed = null;
            }
            entry.updatedNs = now;
            entry.pins--;
            if (entry.removed) {
                continue; // dropped as stale while copying (cannot happen while pinned, kept for safety)
            }
            if (copied && entry.complete()) {
                entry.sealed = true;
                unsealed.remove(entry);
                sealedCount++;
                counters.insertions++;
                lruAppend(entry);
                if (entry.pins == 0) {
                    adjustEvictable(entry, +1);
                }
                sealedNow++;
            } else if (!copied && entry.arrivedCount == 0 && !entry.anyInFlight() && entry.pins == 0) {
                removeInFlight(entry);
            }
        }
        return sealedNow;
    }

    // ---- query and leases ----

    /**
     * Length of the contiguous prefix of {@code hashes} sealed in the pool; touches the hits. With {@code leaseTtlMs
     * > 0} and at least one hit, leases the prefix.
     *
     * @return {hitCount, leaseId (0 = none), expiresInMs}
     */
    public synchronized long[] query(String namespace, byte[][] hashes, long leaseTtlMs) {
        int hits = 0;
        BlockEntry[] found = new BlockEntry[hashes.length];
        for (byte[] hash : hashes) {
            BlockEntry entry = index.get(BlockKey.lookup(namespace, hash));
            if (entry == null || !entry.sealed) {
                break;
            }
            found[hits++] = entry;
        }
        counters.hits += hits;
        counters.misses += hashes.length - hits;
        for (int i = 0; i < hits; i++) {
            lruTouch(found[i]);
        }
        if (leaseTtlMs <= 0 || hits == 0) {
            return new long[] {hits, 0, 0};
        }
        BlockEntry[] leased = java.util.Arrays.copyOf(found, hits);
        for (BlockEntry entry : leased) {
            pin(entry);
        }
        long id = nextLeaseId++;
        leases.put(id, new Lease(id, leased, clockNs.getAsLong() + leaseTtlMs * 1_000_000));
        counters.leasesCreated++;
        return new long[] {hits, id, leaseTtlMs};
    }

    /** Ends a lease; false if it is unknown (never existed, expired or released). */
    public synchronized boolean release(long leaseId) {
        Lease lease = leases.remove(leaseId);
        if (lease == null) {
            return false;
        }
        for (BlockEntry entry : lease.entries()) {
            unpin(entry);
        }
        counters.leasesReleased++;
        return true;
    }

    // ---- load ----

    /**
     * Pins every sealed block among {@code hashes} for a load; a missing block gets null. Consumes {@code leaseId}
     * (if it is known) after pinning, so the blocks never become evictable in between.
     */
    public synchronized BlockEntry[] pinForLoad(String namespace, byte[][] hashes, long leaseId) {
        BlockEntry[] entries = new BlockEntry[hashes.length];
        for (int i = 0; i < hashes.length; i++) {
            BlockEntry entry = index.get(BlockKey.lookup(namespace, hashes[i]));
            if (entry != null && entry.sealed) {
                pin(entry);
                lruTouch(entry);
                entries[i] = entry;
            }
        }
        if (leaseId != 0) {
            release(leaseId);
        }
        return entries;
    }

    public synchronized void unpinAll(BlockEntry[] entries) {
        for (BlockEntry entry : entries) {
            if (entry != null) {
                unpin(entry);
            }
        }
    }

    // ---- housekeeping ----

    /** Expires leases and drops partial blocks that stopped receiving slots. Called periodically. */
    public synchronized void sweep() {
        long now = clockNs.getAsLong();
        Iterator<Map.Entry<Long, Lease>> it = leases.entrySet().iterator();
        while (it.hasNext()) {
            Lease lease = it.next().getValue();
            if (lease.expiresNs() <= now) {
                it.remove();
                for (BlockEntry entry : lease.entries()) {
                    unpin(entry);
                }
                counters.leasesExpired++;
            }
        }
        if (unsealed.isEmpty()) {
            return;
        }
        List<BlockEntry> stale = new ArrayList<>();
        for (BlockEntry entry : unsealed) {
            if (!entry.sealed && entry.pins == 0 && !entry.anyInFlight() && now - entry.updatedNs >= partialTimeoutNs) {
                stale.add(entry);
            }
        }
        for (BlockEntry entry : stale) {
            removeInFlight(entry);
            counters.partialDropped++;
        }
    }

    /** True if the block is sealed (visible to queries). */
    public synchronized boolean isSealed(String namespace, byte[] hash) {
        BlockEntry entry = index.get(BlockKey.lookup(namespace, hash));
        return entry != null && entry.sealed;
    }

    // ---- internals ----

    /**
     * Makes room for {@code count} blocks of {@code blockBytes}, evicting only if that is sure to succeed: first the
     * least recently used unpinned blocks of the same size class, then blocks of other classes in slabs whose live
     * blocks are all evictable (a slab changes class only once it is empty).
     */
    private boolean ensureRoom(long blockBytes, int count) {
        long free = pool.freeSlotsFor(blockBytes);
        if (free >= count) {
            return true;
        }
        long sizeClass = pool.sizeClassBytes(blockBytes);
        long sameClass = evictableByClass.getOrDefault(sizeClass, 0);
        long drainableSlabs = 0;
        for (int slab = 0; slab < evictableInSlab.length; slab++) {
            if (drainable(slab, sizeClass)) {
                drainableSlabs++;
            }
        }
        if (free + sameClass + drainableSlabs * pool.slotsPerSlab(blockBytes) < count) {
            return false;
        }
        for (BlockEntry entry = lruHead; entry != null && pool.freeSlotsFor(blockBytes) < count; ) {
            BlockEntry next = entry.lruNext;
            if (entry.pins == 0 && pool.sizeClassBytes(entry.bytes) == sizeClass) {
                evict(entry);
            }
            entry = next;
        }
        long missing = count - pool.freeSlotsFor(blockBytes);
        if (missing > 0) {
            // Empty only as many slabs of other classes as needed, the ones holding the fewest blocks first: every
            // block in a chosen slab goes, blocks elsewhere stay.
            long slabsNeeded = (missing + pool.slotsPerSlab(blockBytes) - 1) / pool.slotsPerSlab(blockBytes);
            List<Integer> candidates = new ArrayList<>();
            for (int slab = 0; slab < evictableInSlab.length; slab++) {
                if (drainable(slab, sizeClass)) {
                    candidates.add(slab);
                }
            }
            candidates.sort(java.util.Comparator.comparingInt(pool::slabLiveBlocks));
            boolean[] chosen = new boolean[evictableInSlab.length];
            for (int i = 0; i < Math.min(slabsNeeded, candidates.size()); i++) {
                chosen[candidates.get(i)] = true;
            }
            for (BlockEntry entry = lruHead; entry != null; ) {
                BlockEntry next = entry.lruNext;
                if (entry.pins == 0 && chosen[pool.slabOf(entry.offset)]) {
                    evict(entry);
                }
                entry = next;
            }
        }
        return pool.freeSlotsFor(blockBytes) >= count;
    }

    /** A slab of another class whose every live block could be evicted now. */
    private boolean drainable(int slab, long sizeClass) {
        long slabClass = pool.slabClassBytes(slab);
        return slabClass != 0
                && slabClass != sizeClass
                && pool.slabLiveBlocks(slab) > 0
                && evictableInSlab[slab] == pool.slabLiveBlocks(slab);
    }

    private void evict(BlockEntry entry) {
        lruRemove(entry);
        index.remove(entry.key);
        adjustEvictable(entry, -1);
        pool.free(entry.offset);
        entry.removed = true;
        sealedCount--;
        counters.evictions++;
    }

    private void removeInFlight(BlockEntry entry) {
        index.remove(entry.key);
        pool.free(entry.offset);
        entry.removed = true;
        unsealed.remove(entry);
    }

    private void pin(BlockEntry entry) {
        if (entry.pins++ == 0 && entry.sealed) {
            adjustEvictable(entry, -1);
        }
    }

    private void unpin(BlockEntry entry) {
        if (--entry.pins == 0 && entry.sealed && !entry.removed) {
            adjustEvictable(entry, +1);
        }
    }

    private void adjustEvictable(BlockEntry entry, int delta) {
        evictableByClass.merge(pool.sizeClassBytes(entry.bytes), delta, Integer::sum);
        evictableInSlab[pool.slabOf(entry.offset)] += delta;
    }

    private void lruAppend(BlockEntry entry) {
        entry.lruPrev = lruTail;
        entry.lruNext = null;
        if (lruTail != null) {
            lruTail.lruNext = entry;
        } else {
            lruHead = entry;
        }
        lruTail = entry;
    }

    private void lruRemove(BlockEntry entry) {
        if (entry.lruPrev != null) {
            entry.lruPrev.lruNext = entry.lruNext;
        } else {
            lruHead = entry.lruNext;
        }
        if (entry.lruNext != null) {
            entry.lruNext.lruPrev = entry.lruPrev;
        } else {
            lruTail = entry.lruPrev;
        }
        entry.lruPrev = null;
        entry.lruNext = null;
    }

    private void lruTouch(BlockEntry entry) {
        if (entry.sealed && entry != lruTail) {
            lruRemove(entry);
            lruAppend(entry);
        }
    }
}
