package io.pegaflow.store;

import io.pegaflow.store.pool.BlockPool;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.function.LongSupplier;

/**
 * The index of blocks in the pool, keyed by (namespace, hash): blocks being filled by saves, whole blocks arriving
 * from another node ({@link IncomingBlock}), sealed blocks visible to queries, pins (leases, loads in progress) that
 * keep blocks from eviction, and leases.
 *
 * <p>Eviction: every sealed, unpinned block sits in the LRU list of its pool size class (least recently used first)
 * and in its slab's list of evictable blocks. A block's place in its class list is set by its last use: a query hit,
 * or the end of its last pin (a lease released, consumed or expired, a load finished, a save naming it). Making room
 * evicts the least recently used blocks of the same class first and, only when that is not enough, empties whole
 * slabs of other classes whose every live block is evictable, those with the fewest live blocks first. It evicts only
 * when that is sure to succeed, never a pinned block, and does work proportional to the blocks it evicts (plus one
 * pass over the slabs, not the blocks, when other classes' slabs are needed).
 *
 * <p>Pools: the pool may have several partitions ({@link BlockPool#partitions()}), one per NUMA node on a node whose
 * GPUs sit on several; this class calls them pools. A save names the pool it prefers (its GPU's local one,
 * {@link #reserveForSave(NamespaceLayout, int[], HashList, int[], int)}); its new blocks go there, and making room
 * there evicts only that pool's blocks, by the rules above applied within the pool. Only when the preferred pool
 * cannot make room for all of them even after eviction do the rest go to the other pools (in index order, each
 * evicting within itself as needed), counted in {@link StoreCounters#remotePoolBlocks()}; only when all pools
 * together cannot hold them is the save refused ({@link PoolFullException}, nothing changed). A block is one
 * contiguous piece of one pool; queries, loads, leases and transfers find it wherever it is. With one pool all of this
 * is the behaviour above.
 *
 * <p>Leases are random non-zero 64-bit ids from a {@link SecureRandom}, bound to the namespace they were taken in.
 *
 * <p>Events: with a {@link StoreListener} set, every change of the sealed set is recorded under the lock, in order,
 * and handed to the listener in batches by one daemon thread ({@code pegaflow-store-events}) outside the lock. Without
 * one, nothing is recorded.
 *
 * <p>Threading: every method is a short critical section under this object's monitor (bookkeeping only; copies
 * happen outside it, on pinned blocks). Lease ids are drawn before taking the lock. {@link #close()} stops the event
 * thread; the pool belongs to the caller and stays open.
 */
public final class BlockStore implements AutoCloseable {
    private static final System.Logger log = System.getLogger(BlockStore.class.getName());
    static final String EVENT_THREAD_NAME = "pegaflow-store-events";

    private final BlockPool pool;
    private final LongSupplier clockNs;
    private final long partialTimeoutNs;
    private final HashMap<BlockKey, BlockEntry> index = new HashMap<>();
    /** The one lookup key, used under the lock: lookups allocate nothing. */
    private final BlockKey.Probe probe = new BlockKey.Probe();
    /** Scratch of {@link #firstOccurrences}, reused under the lock: an open-addressing table of index + 1. */
    private int[] dedupTable = new int[0];
    /** Scratch of {@link #firstOccurrences}: each hash's first occurrence and its hash code. */
    private int[] dedupFirst = new int[0];

    private int[] dedupCodes = new int[0];
    /** One eviction list per pool size class (few: one per block size in use), looked up by a linear scan. */
    private final ArrayList<ClassLru> classes = new ArrayList<>();
    /** Sealed, unpinned blocks per slab, and the head of each slab's list of them. */
    private final int[] evictableInSlab;

    private final BlockEntry[] slabEvictableHead;
    private final HashMap<String, NamespaceBlocks> namespaces = new HashMap<>();
    /** Blocks of saves not sealed yet, so the sweeper looks at these only, not the whole index. */
    private final LinkedHashSet<BlockEntry> unsealed = new LinkedHashSet<>();

    private int incomingCount;
    private int sealedCount;

    private final HashMap<Long, Lease> leases = new HashMap<>();
    private final SecureRandom leaseIds = new SecureRandom();
    private long loadStamps;
    private final StoreCounters counters = new StoreCounters();

    private StoreListener listener = StoreListener.NONE;
    private ArrayList<StoreEvent> pendingEvents = new ArrayList<>();
    private boolean eventThreadWaiting;
    private Thread eventThread;
    private boolean closed;

    record Lease(long id, String namespace, BlockEntry[] entries, long expiresNs) {}

    /** The evictable blocks of one size class in one pool, least recently used at the head. */
    static final class ClassLru {
        final long sizeClassBytes;
        final int pool;
        BlockEntry head;
        BlockEntry tail;
        int count;

        ClassLru(long sizeClassBytes, int pool) {
            this.sizeClassBytes = sizeClassBytes;
            this.pool = pool;
        }
    }

    /** A save or incoming block with no preferred pool: the one with the most room for its size goes first. */
    public static final int ANY_POOL = -1;

    /** The sealed blocks of one namespace, pinned or not, in no particular order. */
    static final class NamespaceBlocks {
        final String namespace;
        BlockEntry head;
        int count;

        NamespaceBlocks(String namespace) {
            this.namespace = namespace;
        }
    }

    /** The slots one save request copies into one block (the per-block view of a {@link SaveReservation}). */
    public record SaveTarget(BlockEntry entry, int blockId, int[] slots) {}

    /** A store with no listener (no events recorded); see {@link #setListener}. */
    public BlockStore(BlockPool pool, long partialTimeoutNs, LongSupplier clockNs) {
        this(pool, partialTimeoutNs, clockNs, StoreListener.NONE);
    }

    /**
     * @param partialTimeoutNs how long a block a save is filling may go without a new slot before {@link #sweep} drops
     *     it
     * @param clockNs the clock for lease expiry and partial timeouts
     * @param listener receives seal and removal events ({@link StoreListener#NONE}: none recorded)
     */
    public BlockStore(BlockPool pool, long partialTimeoutNs, LongSupplier clockNs, StoreListener listener) {
        this.pool = Objects.requireNonNull(pool, "pool");
        this.partialTimeoutNs = partialTimeoutNs;
        this.clockNs = Objects.requireNonNull(clockNs, "clockNs");
        this.evictableInSlab = new int[pool.slabCount()];
        this.slabEvictableHead = new BlockEntry[pool.slabCount()];
        setListener(listener);
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

    /** Blocks not sealed yet: those saves are filling plus incoming blocks reserved and not yet committed. */
    public synchronized int inFlightBlocks() {
        return unsealed.size() + incomingCount;
    }

    /** Incoming blocks reserved and not yet committed or aborted. */
    public synchronized int incomingBlocks() {
        return incomingCount;
    }

    public synchronized int activeLeases() {
        return leases.size();
    }

    /** Pool figures read together, so used + free never disagree in one sample. */
    public synchronized PoolSnapshot poolSnapshot() {
        return new PoolSnapshot(pool.capacityBytes(), pool.usedBytes(), pool.largestFreeBytes());
    }

    /** Each pool's figures (one per {@link BlockPool#partitions() partition}), read together. */
    public synchronized List<PoolSnapshot> poolSnapshots() {
        List<PoolSnapshot> each = new ArrayList<>(pool.partitions());
        for (int p = 0; p < pool.partitions(); p++) {
            each.add(new PoolSnapshot(
                    pool.partitionCapacityBytes(p), pool.partitionUsedBytes(p), pool.largestFreeBytes(p)));
        }
        return each;
    }

    /** The pool (partition) a block at {@code offset} lies in. */
    public int poolOf(long offset) {
        return pool.partitionOfSlab(pool.slabOf(offset));
    }

    // ---- events ----

    /**
     * Sets who receives {@link StoreEvent}s from now on; {@link StoreListener#NONE} stops recording them. Events
     * recorded but not yet delivered go to whichever listener is set when they are delivered. Starts the event thread
     * on the first real listener.
     *
     * @throws IllegalStateException after {@link #close()}
     */
    public synchronized void setListener(StoreListener listener) {
        Objects.requireNonNull(listener, "listener");
        if (closed) {
            throw new IllegalStateException("block store is closed");
        }
        this.listener = listener;
        if (listener != StoreListener.NONE && eventThread == null) {
            eventThread = new Thread(this::deliverEvents, EVENT_THREAD_NAME);
            eventThread.setDaemon(true);
            eventThread.start();
        }
    }

    /**
     * Stops event delivery: events already recorded are still delivered, then the event thread ends (waited for up to
     * 10 s, unless called from the listener itself). Later changes record no events; everything else keeps working.
     * The pool is not closed (its owner closes it). Idempotent.
     */
    @Override
    public void close() {
        Thread thread;
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            thread = eventThread;
            notifyAll();
        }
        if (thread != null && thread != Thread.currentThread()) {
            try {
                thread.join(10_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private void emit(StoreEvent.Kind kind, BlockEntry entry) {
        if (listener == StoreListener.NONE || closed) {
            return;
        }
        pendingEvents.add(new StoreEvent(kind, entry.key, entry.bytes));
        if (eventThreadWaiting) {
            eventThreadWaiting = false;
            notifyAll();
        }
    }

    /** The event thread: takes every recorded event as one batch under the lock, delivers it outside. */
    private void deliverEvents() {
        while (true) {
            List<StoreEvent> batch;
            StoreListener target;
            synchronized (this) {
                while (pendingEvents.isEmpty() && !closed) {
                    eventThreadWaiting = true;
                    try {
                        wait();
                    } catch (InterruptedException e) {
                        // not used to stop the thread: close() does that
                    }
                }
                eventThreadWaiting = false;
                if (pendingEvents.isEmpty()) {
                    return; // closed and drained
                }
                batch = Collections.unmodifiableList(pendingEvents);
                pendingEvents = new ArrayList<>();
                target = listener;
            }
            try {
                target.onEvents(batch);
            } catch (RuntimeException | Error e) {
                counters.listenerFailures++;
                log.log(System.Logger.Level.WARNING, "store listener failed on a batch of " + batch.size(), e);
                if (e instanceof VirtualMachineError vme) {
                    throw vme;
                }
            }
        }
    }

    // ---- save ----

    /** As {@link #reserveForSave(NamespaceLayout, int[], HashList, int[])} with the hashes as arrays (tests). */
    public SaveReservation reserveForSave(
            NamespaceLayout layout, int[] blockIds, byte[][] hashes, int[] slotsPerBlock) {
        return reserveForSave(layout, blockIds, HashList.of(hashes), slotsPerBlock);
    }

    /**
     * A save's fast path: whether every block of {@code hashes} is already sealed in {@code namespace}, in which case
     * {@link #reserveForSave} would reserve nothing and the save has nothing to do. The sealed blocks looked at count
     * as used, as they do in {@link #reserveForSave} (that path moves them to the most recently used end too).
     * Allocates nothing; never evicts.
     */
    public synchronized boolean touchIfAllSealed(String namespace, HashList hashes) {
        int n = hashes.size();
        for (int i = 0; i < n; i++) {
            BlockEntry entry = index.get(probe.set(namespace, hashes, i));
            if (entry == null || !entry.sealed) {
                return false;
            }
            touch(entry);
        }
        return n > 0;
    }

    /**
     * Reserves pool space and marks slots in flight for one save. Blocks already sealed, incoming blocks (another
     * node's copy is arriving: the save leaves them to it; if that transfer is aborted the block is simply missing, as
     * after an eviction), and slots already present or being copied by another request, are left out. Either every
     * needed block is allocated (evicting as the class documentation says) or nothing changes and
     * {@link PoolFullException} is thrown. Sealed blocks the request names count as used (they move to the most
     * recently used end). Allocates per request, not per block, except the entries of blocks new to the store: a save
     * of sealed blocks allocates one array.
     *
     * @param blockIds parallel to {@code hashes}
     * @param slotsPerBlock the slot indices this request fills in each block
     * @return targets to copy (pinned until {@link #completeSave})
     */
    public SaveReservation reserveForSave(
            NamespaceLayout layout, int[] blockIds, HashList hashes, int[] slotsPerBlock) {
        return reserveForSave(layout, blockIds, hashes, slotsPerBlock, ANY_POOL);
    }

    /**
     * As {@link #reserveForSave(NamespaceLayout, int[], HashList, int[])}, placing new blocks in pool {@code
     * preferredPool} first (see the class documentation for when they go elsewhere).
     *
     * @param preferredPool a pool index in [0, {@link BlockPool#partitions()}), or {@link #ANY_POOL}
     */
    public synchronized SaveReservation reserveForSave(
            NamespaceLayout layout, int[] blockIds, HashList hashes, int[] slotsPerBlock, int preferredPool) {
        checkPool(preferredPool);
        if (blockIds.length != hashes.size()) {
            throw new IllegalArgumentException(blockIds.length + " block ids but " + hashes.size() + " hashes");
        }
        long now = clockNs.getAsLong();
        int n = blockIds.length;
        String namespace = layout.namespace();
        int[] first = firstOccurrences(hashes);
        BlockEntry[] found = new BlockEntry[n];
        int newBlocks = 0;
        for (int i = 0; i < n; i++) {
            if (first[i] == i) {
                found[i] = index.get(probe.set(namespace, hashes, i, dedupCodes[i]));
                if (found[i] == null) {
                    newBlocks++;
                }
            }
        }
        long blockBytes = layout.blockBytes();
        // Blocks of this request already in the index must survive the eviction that makes room for the rest.
        for (BlockEntry existing : found) {
            if (existing != null) {
                pin(existing);
            }
        }
        boolean room;
        int preferred = preferredPool == ANY_POOL ? roomiestPool(blockBytes) : preferredPool;
        try {
            room = newBlocks == 0 || ensureRoom(blockBytes, newBlocks, preferred);
        } finally {
            for (BlockEntry existing : found) {
                if (existing != null) {
                    unpin(existing);
                }
            }
        }
        if (!room) {
            counters.saveRejectedFull++;
            throw poolFull(newBlocks, blockBytes);
        }
        SaveReservation reservation = new SaveReservation(n);
        for (int i = 0; i < n; i++) {
            if (first[i] != i) {
                continue; // the same hash twice in one request: copy it once
            }
            BlockEntry entry = found[i];
            if (entry == null) {
                entry = allocateEntry(new BlockKey(namespace, hashes, i), layout, now, preferred);
                if (preferredPool != ANY_POOL && entry.classLru.pool != preferredPool) {
                    counters.remotePoolBlocks++;
                }
                unsealed.add(entry);
            } else if (entry.sealed || entry.incoming) {
                continue;
            }
            int[] elsewhere = slotsInFlightElsewhere(entry, slotsPerBlock);
            if (elsewhere.length > 0) {
                if (entry.landed == null) {
                    entry.landed = new CompletableFuture<>();
                }
                reservation.addOther(new SaveTarget(entry, blockIds[i], elsewhere), entry.landed);
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
            reservation.add(entry, blockIds[i], todo);
        }
        return reservation;
    }

    /**
     * For each hash, the index of its first occurrence in the list (itself when it is the first); also leaves each
     * hash's {@link HashList#hashCodeOf} in {@code dedupCodes}. Uses and returns reused scratch arrays (valid until the
     * next call, under the lock).
     */
    private int[] firstOccurrences(HashList hashes) {
        int n = hashes.size();
        int capacity = Integer.highestOneBit(Math.max(8, 2 * n) - 1) << 1; // a power of two >= 2n
        if (dedupTable.length < capacity) {
            dedupTable = new int[capacity];
        } else {
            Arrays.fill(dedupTable, 0, capacity, 0);
        }
        if (dedupFirst.length < n) {
            dedupFirst = new int[n];
            dedupCodes = new int[n];
        }
        int mask = capacity - 1;
        for (int i = 0; i < n; i++) {
            int code = hashes.hashCodeOf(i);
            dedupCodes[i] = code;
            int at = (code ^ (code >>> 16)) * 0x9E3779B9 & mask;
            while (true) {
                int held = dedupTable[at];
                if (held == 0) {
                    dedupTable[at] = i + 1;
                    dedupFirst[i] = i;
                    break;
                }
                int j = held - 1;
                if (dedupCodes[j] == code && hashes.sameHash(i, j)) {
                    dedupFirst[i] = j;
                    break;
                }
                at = (at + 1) & mask;
            }
        }
        return dedupFirst;
    }

    private PoolFullException poolFull(int blocks, long blockBytes) {
        StringBuilder each = new StringBuilder();
        if (pool.partitions() > 1) {
            each.append("; per pool");
            for (int p = 0; p < pool.partitions(); p++) {
                each.append(p == 0 ? " " : ", ")
                        .append(p)
                        .append(": ")
                        .append(pool.partitionUsedBytes(p))
                        .append(" of ")
                        .append(pool.partitionCapacityBytes(p));
            }
        }
        return new PoolFullException("pool cannot hold "
                + blocks
                + " more blocks of "
                + blockBytes
                + " bytes even after evicting unleased blocks (capacity "
                + pool.capacityBytes()
                + ", used "
                + pool.usedBytes()
                + each
                + ")");
    }

    private void checkPool(int preferredPool) {
        if (preferredPool != ANY_POOL && (preferredPool < 0 || preferredPool >= pool.partitions())) {
            throw new IllegalArgumentException(
                    "pool " + preferredPool + " must be in [0, " + pool.partitions() + ") or ANY_POOL");
        }
    }

    /** The pool with the most free slots for {@code blockBytes} now (the first on a tie). */
    private int roomiestPool(long blockBytes) {
        int best = 0;
        for (int p = 1; p < pool.partitions(); p++) {
            if (pool.freeSlotsFor(blockBytes, p) > pool.freeSlotsFor(blockBytes, best)) {
                best = p;
            }
        }
        return best;
    }

    private static final int[] NO_SLOTS = new int[0];

    private static int[] slotsInFlightElsewhere(BlockEntry entry, int[] slots) {
        int n = 0;
        for (int slot : slots) {
            if (entry.isInFlight(slot) && !entry.hasArrived(slot)) {
                n++;
            }
        }
        if (n == 0) {
            return NO_SLOTS;
        }
        int[] elsewhere = new int[n];
        int j = 0;
        for (int slot : slots) {
            if (entry.isInFlight(slot) && !entry.hasArrived(slot)) {
                elsewhere[j++] = slot;
            }
        }
        return elsewhere;
    }

    /**
     * True if every slot the reservation waits for ({@link SaveReservation#othersTargets}) has arrived and those
     * blocks are still in the pool.
     */
    public synchronized boolean othersArrived(SaveReservation reservation) {
        for (SaveTarget target : reservation.othersTargets()) {
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

    /** The slots still to copy: {@code slots} itself when all are (the common case: no allocation). */
    private static int[] slotsToCopy(BlockEntry entry, int[] slots) {
        int n = 0;
        for (int slot : slots) {
            if (!entry.hasArrived(slot) && !entry.isInFlight(slot)) {
                n++;
            }
        }
        if (n == slots.length) {
            return slots;
        }
        if (n == 0) {
            return NO_SLOTS;
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
     * slot arrived (one {@link StoreEvent.Kind#SEALED} event each). Call it once per reservation.
     *
     * @return how many blocks this call sealed
     */
    public int completeSave(SaveReservation reservation, boolean copied) {
        if (reservation.count() == 0) {
            return 0;
        }
        List<CompletableFuture<Void>> landed = new ArrayList<>(0);
        int sealed = completeSaveLocked(reservation, copied, landed);
        // Waiting saves continue on this thread: complete their futures outside the store's lock.
        landed.forEach(f -> f.complete(null));
        return sealed;
    }

    private synchronized int completeSaveLocked(
            SaveReservation reservation, boolean copied, List<CompletableFuture<Void>> landed) {
        long now = clockNs.getAsLong();
        int sealedNow = 0;
        for (int t = 0; t < reservation.count(); t++) {
            BlockEntry entry = reservation.entry(t);
            for (int slot : reservation.slots(t)) {
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
                unsealed.remove(entry);
                seal(entry);
                sealedNow++;
            } else if (!copied && entry.arrivedCount == 0 && !entry.anyInFlight() && entry.pins == 0) {
                removeUnsealed(entry);
            }
        }
        return sealedNow;
    }

    // ---- incoming blocks (cross-node transfers) ----

    /**
     * Reserves a whole block for bytes arriving from elsewhere, evicting as the class documentation says if needed.
     * The block is invisible to {@link #query}, {@link #pinForLoad}, {@link #isSealed} and saves (which leave it out)
     * until {@link #commitIncoming} seals it. An incoming block has no timeout and is never swept: the transport
     * must commit or abort it (e.g. abort when its transfer fails or times out).
     *
     * @return empty when the block is already sealed, being filled by a save, or already incoming
     * @throws PoolFullException when there is no room for it even after eviction (nothing changes)
     * @throws IllegalArgumentException when the layout's block does not fit a slab of the pool
     */
    public synchronized Optional<IncomingBlock> reserveIncoming(NamespaceLayout layout, byte[] hash) {
        BlockKey key = new BlockKey(layout.namespace(), hash);
        if (index.containsKey(key)) {
            return Optional.empty();
        }
        int preferred = roomiestPool(layout.blockBytes());
        if (!ensureRoom(layout.blockBytes(), 1, preferred)) {
            counters.incomingRejectedFull++;
            throw poolFull(1, layout.blockBytes());
        }
        BlockEntry entry = allocateEntry(key, layout, clockNs.getAsLong(), preferred);
        entry.incoming = true;
        incomingCount++;
        return Optional.of(new IncomingBlock(this, entry));
    }

    /**
     * Seals an incoming block whose bytes have all been written: it becomes visible and evictable, and one
     * {@link StoreEvent.Kind#SEALED} event is recorded.
     *
     * @throws IllegalStateException if it was committed or aborted already (nothing changes)
     * @throws IllegalArgumentException if it comes from another store
     */
    public synchronized void commitIncoming(IncomingBlock block) {
        BlockEntry entry = checkReserved(block, "commit");
        block.state = IncomingBlock.State.COMMITTED;
        entry.incoming = false;
        incomingCount--;
        entry.markAllArrived();
        entry.updatedNs = clockNs.getAsLong();
        seal(entry);
        counters.incomingCommitted++;
    }

    /**
     * Frees an incoming block; nothing of it was ever visible and no event is recorded.
     *
     * @throws IllegalStateException if it was committed or aborted already (nothing changes)
     * @throws IllegalArgumentException if it comes from another store
     */
    public synchronized void abortIncoming(IncomingBlock block) {
        BlockEntry entry = checkReserved(block, "abort");
        block.state = IncomingBlock.State.ABORTED;
        incomingCount--;
        index.remove(entry.key);
        pool.free(entry.offset);
        entry.removed = true;
        counters.incomingAborted++;
    }

    private BlockEntry checkReserved(IncomingBlock block, String what) {
        Objects.requireNonNull(block, "block");
        if (block.store != this) {
            throw new IllegalArgumentException("cannot " + what + " " + block + ": it was reserved in another store");
        }
        if (block.state != IncomingBlock.State.RESERVED) {
            throw new IllegalStateException("cannot " + what + " " + block + ": it was "
                    + block.state.name().toLowerCase() + " already");
        }
        return block.entry;
    }

    // ---- query and leases ----

    /**
     * Length of the contiguous prefix of {@code hashes} sealed in the pool; the hits count as used. With {@code
     * leaseTtlMs > 0} and at least one hit, leases the prefix in {@code namespace}.
     */
    public QueryResult query(String namespace, byte[][] hashes, long leaseTtlMs) {
        return query(namespace, HashList.of(hashes), leaseTtlMs);
    }

    /** As {@link #query(String, byte[][], long)}; allocates per request, not per hash. */
    public QueryResult query(String namespace, HashList hashes, long leaseTtlMs) {
        long candidate = leaseTtlMs > 0 ? leaseIds.nextLong() : 0;
        return queryLocked(namespace, hashes, leaseTtlMs, candidate);
    }

    private synchronized QueryResult queryLocked(String namespace, HashList hashes, long leaseTtlMs, long leaseId) {
        // Look every hit up first, then touch or pin them: the lookups do not wait on the list updates. A fresh
        // (young) array: filling a long-lived one would dirty a card per store for the GC to refine.
        int n = hashes.size();
        BlockEntry[] found = new BlockEntry[n];
        int hits = 0;
        for (int i = 0; i < n; i++) {
            BlockEntry entry = index.get(probe.set(namespace, hashes, i));
            if (entry == null || !entry.sealed) {
                break;
            }
            found[hits++] = entry;
        }
        counters.hits += hits;
        counters.misses += n - hits;
        if (leaseTtlMs <= 0 || hits == 0) {
            for (int i = 0; i < hits; i++) {
                touch(found[i]);
            }
            return new QueryResult(hits, null);
        }
        // Leased: pinned now, the blocks leave their LRU lists and come back as used when the lease ends.
        BlockEntry[] leased = hits == found.length ? found : Arrays.copyOf(found, hits);
        for (BlockEntry entry : leased) {
            pin(entry);
        }
        while (leaseId == 0 || leases.containsKey(leaseId)) {
            leaseId = leaseIds.nextLong(); // 0 is "no lease"; a live id is never handed out twice
        }
        leases.put(leaseId, new Lease(leaseId, namespace, leased, clockNs.getAsLong() + leaseTtlMs * 1_000_000));
        counters.leasesCreated++;
        return new QueryResult(hits, new LeaseGrant(leaseId, namespace, hits, leaseTtlMs));
    }

    /**
     * Ends a lease given its id alone, whatever namespace it was taken in: for the scheduler, which got the id from
     * its own query (ids are unguessable, so holding one is the right to release it). Prefer {@link #release(long,
     * String)} where the namespace is known.
     *
     * @return false if it is unknown (never existed, expired, consumed or released)
     */
    public synchronized boolean release(long leaseId) {
        Lease lease = leases.remove(leaseId);
        if (lease == null) {
            return false;
        }
        endLease(lease);
        counters.leasesReleased++;
        return true;
    }

    /**
     * Ends a lease taken in {@code namespace}.
     *
     * @return false if it is unknown or was taken in another namespace (then it is left untouched)
     */
    public synchronized boolean release(long leaseId, String namespace) {
        Lease lease = leases.get(leaseId);
        if (lease == null || !lease.namespace().equals(namespace)) {
            return false;
        }
        leases.remove(leaseId);
        endLease(lease);
        counters.leasesReleased++;
        return true;
    }

    /**
     * The blocks a live lease taken in {@code namespace} holds, in the order of the query that took it, for a remote
     * reader to fetch while the lease keeps them in place.
     *
     * @return empty if the lease is unknown, past its expiry (even if not swept yet) or of another namespace
     */
    public synchronized Optional<List<BlockDescriptor>> leasedBlocks(long leaseId, String namespace) {
        Lease lease = leases.get(leaseId);
        if (lease == null || !lease.namespace().equals(namespace) || lease.expiresNs() <= clockNs.getAsLong()) {
            return Optional.empty();
        }
        List<BlockDescriptor> blocks = new ArrayList<>(lease.entries().length);
        for (BlockEntry entry : lease.entries()) {
            blocks.add(new BlockDescriptor(entry.key, entry.offset, entry.bytes));
        }
        return Optional.of(Collections.unmodifiableList(blocks));
    }

    /**
     * Where a sealed block lies, without pinning or touching it: the answer holds only while something else (a lease,
     * a load) keeps the block in place.
     *
     * @return empty unless the block is sealed
     */
    public synchronized Optional<BlockDescriptor> describeSealed(String namespace, byte[] hash) {
        BlockEntry entry = index.get(probe.set(namespace, hash));
        if (entry == null || !entry.sealed) {
            return Optional.empty();
        }
        return Optional.of(new BlockDescriptor(entry.key, entry.offset, entry.bytes));
    }

    // ---- load ----

    /**
     * Pins every sealed block among {@code hashes} of {@code namespace} for a load; a missing block gets null. Then,
     * if {@code leaseId} is non-zero, consumes (ends) that lease when, and only when, it is live, was taken in {@code
     * namespace}, and at least one block it holds is among the blocks this call pinned; any other lease (of another
     * namespace, or holding none of this load's blocks) is left untouched. The load's pins are taken before the lease
     * ends, so its blocks never become evictable in between.
     */
    public BlockEntry[] pinForLoad(String namespace, byte[][] hashes, long leaseId) {
        return pinForLoad(namespace, HashList.of(hashes), leaseId);
    }

    /** As {@link #pinForLoad(String, byte[][], long)}; allocates the returned array only. */
    public synchronized BlockEntry[] pinForLoad(String namespace, HashList hashes, long leaseId) {
        long stamp = ++loadStamps;
        BlockEntry[] entries = new BlockEntry[hashes.size()];
        for (int i = 0; i < entries.length; i++) {
            BlockEntry entry = index.get(probe.set(namespace, hashes, i));
            if (entry != null && entry.sealed) {
                pin(entry);
                entry.loadStamp = stamp;
                entries[i] = entry;
            }
        }
        if (leaseId != 0) {
            Lease lease = leases.get(leaseId);
            if (lease != null && lease.namespace().equals(namespace) && covers(lease, stamp)) {
                leases.remove(leaseId);
                endLease(lease);
                counters.leasesReleased++;
            }
        }
        return entries;
    }

    private static boolean covers(Lease lease, long loadStamp) {
        for (BlockEntry entry : lease.entries()) {
            if (entry.loadStamp == loadStamp) {
                return true;
            }
        }
        return false;
    }

    public synchronized void unpinAll(BlockEntry[] entries) {
        for (BlockEntry entry : entries) {
            if (entry != null) {
                unpin(entry);
            }
        }
    }

    // ---- housekeeping ----

    /**
     * Expires leases and drops blocks that saves were filling and that stopped receiving slots (never visible: no
     * event). Incoming blocks are not swept. Called periodically.
     */
    public synchronized void sweep() {
        long now = clockNs.getAsLong();
        Iterator<Map.Entry<Long, Lease>> it = leases.entrySet().iterator();
        while (it.hasNext()) {
            Lease lease = it.next().getValue();
            if (lease.expiresNs() <= now) {
                it.remove();
                endLease(lease);
                counters.leasesExpired++;
            }
        }
        if (unsealed.isEmpty()) {
            return;
        }
        List<BlockEntry> stale = new ArrayList<>();
        for (BlockEntry entry : unsealed) {
            if (entry.pins == 0 && !entry.anyInFlight() && now - entry.updatedNs >= partialTimeoutNs) {
                stale.add(entry);
            }
        }
        for (BlockEntry entry : stale) {
            removeUnsealed(entry);
            counters.partialDropped++;
        }
    }

    /**
     * Removes every sealed, unpinned block of {@code namespace} (one {@link StoreEvent.Kind#CLEARED} event each).
     * Pinned blocks (leased, being loaded) are kept and counted; blocks still being filled and incoming blocks are not
     * touched. Walks the namespace's sealed blocks only.
     */
    public synchronized ClearResult clearNamespace(String namespace) {
        NamespaceBlocks blocks = namespaces.get(namespace);
        if (blocks == null) {
            return new ClearResult(0, 0);
        }
        int cleared = 0;
        int kept = 0;
        for (BlockEntry entry = blocks.head; entry != null; ) {
            BlockEntry next = entry.namespaceNext;
            if (entry.pins == 0) {
                removeSealed(entry, StoreEvent.Kind.CLEARED);
                cleared++;
            } else {
                kept++;
            }
            entry = next;
        }
        counters.cleared += cleared;
        return new ClearResult(cleared, kept);
    }

    /** True if the block is sealed (visible to queries). */
    public synchronized boolean isSealed(String namespace, byte[] hash) {
        BlockEntry entry = index.get(probe.set(namespace, hash));
        return entry != null && entry.sealed;
    }

    // ---- internals: entries ----

    /** Allocates in {@code preferred} if it has a free slot, else in the first other pool that has (ensureRoom made it). */
    private BlockEntry allocateEntry(BlockKey key, NamespaceLayout layout, long now, int preferred) {
        long blockBytes = layout.blockBytes();
        long offset = pool.allocate(blockBytes, preferred);
        for (int p = 0; offset < 0 && p < pool.partitions(); p++) {
            if (p != preferred) {
                offset = pool.allocate(blockBytes, p);
            }
        }
        if (offset < 0) {
            throw new IllegalStateException("pool refused an allocation that ensureRoom promised");
        }
        int slab = pool.slabOf(offset);
        BlockEntry entry = new BlockEntry(
                key, layout, offset, slab, classLru(pool.sizeClassBytes(blockBytes), pool.partitionOfSlab(slab)), now);
        index.put(key, entry);
        return entry;
    }

    private ClassLru classLru(long sizeClassBytes, int poolIndex) {
        ClassLru found = findClassLru(sizeClassBytes, poolIndex);
        if (found != null) {
            return found;
        }
        ClassLru c = new ClassLru(sizeClassBytes, poolIndex);
        classes.add(c);
        return c;
    }

    private ClassLru findClassLru(long sizeClassBytes, int poolIndex) {
        for (int i = 0; i < classes.size(); i++) {
            ClassLru c = classes.get(i);
            if (c.sizeClassBytes == sizeClassBytes && c.pool == poolIndex) {
                return c;
            }
        }
        return null;
    }

    /** Makes a complete block visible: counted, in its namespace's list, evictable unless pinned, SEALED recorded. */
    private void seal(BlockEntry entry) {
        entry.sealed = true;
        sealedCount++;
        counters.insertions++;
        NamespaceBlocks blocks = namespaces.computeIfAbsent(entry.key.namespace(), NamespaceBlocks::new);
        entry.namespaceBlocks = blocks;
        entry.namespacePrev = null;
        entry.namespaceNext = blocks.head;
        if (blocks.head != null) {
            blocks.head.namespacePrev = entry;
        }
        blocks.head = entry;
        blocks.count++;
        if (entry.pins == 0) {
            makeEvictable(entry);
        }
        emit(StoreEvent.Kind.SEALED, entry);
    }

    /** Takes a sealed, unpinned block out of the store and frees its memory. */
    private void removeSealed(BlockEntry entry, StoreEvent.Kind why) {
        makeUnevictable(entry);
        index.remove(entry.key);
        NamespaceBlocks blocks = entry.namespaceBlocks;
        if (entry.namespacePrev != null) {
            entry.namespacePrev.namespaceNext = entry.namespaceNext;
        } else {
            blocks.head = entry.namespaceNext;
        }
        if (entry.namespaceNext != null) {
            entry.namespaceNext.namespacePrev = entry.namespacePrev;
        }
        entry.namespacePrev = null;
        entry.namespaceNext = null;
        if (--blocks.count == 0) {
            namespaces.remove(blocks.namespace);
        }
        pool.free(entry.offset);
        entry.removed = true;
        sealedCount--;
        emit(why, entry);
    }

    private void removeUnsealed(BlockEntry entry) {
        index.remove(entry.key);
        pool.free(entry.offset);
        entry.removed = true;
        unsealed.remove(entry);
    }

    private void endLease(Lease lease) {
        for (BlockEntry entry : lease.entries()) {
            unpin(entry);
        }
    }

    private void pin(BlockEntry entry) {
        if (entry.pins++ == 0 && entry.sealed && !entry.removed) {
            makeUnevictable(entry);
        }
    }

    private void unpin(BlockEntry entry) {
        if (--entry.pins == 0 && entry.sealed && !entry.removed) {
            makeEvictable(entry); // at the most recently used end: the end of a pin is a use
        }
    }

    /** A use of a sealed block: moves it to the most recently used end of its class list if it is there. */
    private void touch(BlockEntry entry) {
        ClassLru lru = entry.classLru;
        if (entry.pins != 0 || entry == lru.tail) {
            return;
        }
        // Unlink (it is not the tail, so it has a successor) and append; the count stays.
        BlockEntry next = entry.lruNext;
        if (entry.lruPrev != null) {
            entry.lruPrev.lruNext = next;
        } else {
            lru.head = next;
        }
        next.lruPrev = entry.lruPrev;
        entry.lruPrev = lru.tail;
        entry.lruNext = null;
        lru.tail.lruNext = entry;
        lru.tail = entry;
    }

    // ---- internals: eviction ----

    /**
     * Makes room for {@code count} blocks of {@code blockBytes}, evicting only if that is sure to succeed: first the
     * least recently used unpinned blocks of the same size class, then every block of slabs of other classes whose
     * live blocks are all evictable (a slab changes class only once it is empty), the fewest-blocks slabs first and
     * only as many slabs as needed.
     */
    /**
     * Makes room for {@code count} blocks of {@code blockBytes} in pool {@code preferred} ({@link #ensureRoomIn}); when
     * it cannot make room for all of them, makes room in it for as many as it can and for the rest in the other pools,
     * in index order. Evicts nothing unless the pools together are sure to make room for all.
     */
    private boolean ensureRoom(long blockBytes, int count, int preferred) {
        if (ensureRoomIn(blockBytes, count, preferred)) {
            return true;
        }
        int pools = pool.partitions();
        if (pools == 1) {
            return false;
        }
        long total = 0;
        long[] obtainable = new long[pools];
        for (int p = 0; p < pools; p++) {
            obtainable[p] = obtainable(blockBytes, p);
            total += obtainable[p];
        }
        if (total < count) {
            return false;
        }
        long missing = count;
        for (int i = -1; i < pools && missing > 0; i++) {
            int p = i < 0 ? preferred : i;
            if (i == preferred || obtainable[p] == 0) {
                continue;
            }
            int here = (int) Math.min(missing, obtainable[p]);
            if (!ensureRoomIn(blockBytes, here, p)) {
                return false; // obtainable() promised it: cannot happen under the lock
            }
            missing -= here;
        }
        return true;
    }

    /** How many blocks of {@code blockBytes} pool {@code p} could take after evicting all it may; changes nothing. */
    private long obtainable(long blockBytes, int p) {
        long sizeClass = pool.sizeClassBytes(blockBytes);
        ClassLru same = findClassLru(sizeClass, p);
        return pool.freeSlotsFor(blockBytes, p)
                + (same == null ? 0 : same.count)
                + (long) drainableSlabs(sizeClass, p).length * pool.slotsPerSlab(blockBytes);
    }

    /**
     * Makes room for {@code count} blocks of {@code blockBytes} in pool {@code p}, evicting only its blocks and only if
     * that is sure to succeed: first the least recently used unpinned blocks of the same size class, then every block
     * of slabs of other classes whose live blocks are all evictable (a slab changes class only once it is empty), the
     * fewest-blocks slabs first and only as many slabs as needed.
     */
    private boolean ensureRoomIn(long blockBytes, int count, int p) {
        long free = pool.freeSlotsFor(blockBytes, p);
        if (free >= count) {
            return true;
        }
        ClassLru same = findClassLru(pool.sizeClassBytes(blockBytes), p);
        long sameEvictable = same == null ? 0 : same.count;
        if (free + sameEvictable >= count) {
            while (pool.freeSlotsFor(blockBytes, p) < count) {
                evict(same.head); // each frees one slot of the class
            }
            return true;
        }
        long sizeClass = pool.sizeClassBytes(blockBytes);
        int slotsPerSlab = pool.slotsPerSlab(blockBytes);
        long[] drainable = drainableSlabs(sizeClass, p); // live blocks << 32 | slab, sorted: fewest blocks first
        if (free + sameEvictable + (long) drainable.length * slotsPerSlab < count) {
            return false;
        }
        while (same != null && same.head != null) {
            evict(same.head);
        }
        long missing = count - pool.freeSlotsFor(blockBytes, p);
        long slabsNeeded = (missing + slotsPerSlab - 1) / slotsPerSlab;
        for (int i = 0; i < slabsNeeded; i++) {
            int slab = (int) drainable[i];
            while (slabEvictableHead[slab] != null) {
                evict(slabEvictableHead[slab]);
            }
        }
        return pool.freeSlotsFor(blockBytes, p) >= count;
    }

    /** Slabs of pool {@code p} of other classes whose every live block could be evicted now, fewest live first. */
    private long[] drainableSlabs(long sizeClass, int p) {
        int n = 0;
        int first = pool.firstSlab(p);
        int end = first + pool.slabsIn(p);
        long[] found = new long[end - first];
        for (int slab = first; slab < end; slab++) {
            long slabClass = pool.slabClassBytes(slab);
            int live = pool.slabLiveBlocks(slab);
            if (slabClass != 0 && slabClass != sizeClass && live > 0 && evictableInSlab[slab] == live) {
                found[n++] = ((long) live << 32) | slab;
            }
        }
        long[] drainable = Arrays.copyOf(found, n);
        Arrays.sort(drainable);
        return drainable;
    }

    private void evict(BlockEntry entry) {
        removeSealed(entry, StoreEvent.Kind.EVICTED);
        counters.evictions++;
    }

    private void makeEvictable(BlockEntry entry) {
        lruAppend(entry.classLru, entry);
        entry.slabPrev = null;
        entry.slabNext = slabEvictableHead[entry.slab];
        if (entry.slabNext != null) {
            entry.slabNext.slabPrev = entry;
        }
        slabEvictableHead[entry.slab] = entry;
        evictableInSlab[entry.slab]++;
    }

    private void makeUnevictable(BlockEntry entry) {
        lruUnlink(entry.classLru, entry);
        if (entry.slabPrev != null) {
            entry.slabPrev.slabNext = entry.slabNext;
        } else {
            slabEvictableHead[entry.slab] = entry.slabNext;
        }
        if (entry.slabNext != null) {
            entry.slabNext.slabPrev = entry.slabPrev;
        }
        entry.slabPrev = null;
        entry.slabNext = null;
        evictableInSlab[entry.slab]--;
    }

    private static void lruAppend(ClassLru lru, BlockEntry entry) {
        entry.lruPrev = lru.tail;
        entry.lruNext = null;
        if (lru.tail != null) {
            lru.tail.lruNext = entry;
        } else {
            lru.head = entry;
        }
        lru.tail = entry;
        lru.count++;
    }

    private static void lruUnlink(ClassLru lru, BlockEntry entry) {
        if (entry.lruPrev != null) {
            entry.lruPrev.lruNext = entry.lruNext;
        } else {
            lru.head = entry.lruNext;
        }
        if (entry.lruNext != null) {
            entry.lruNext.lruPrev = entry.lruPrev;
        } else {
            lru.tail = entry.lruPrev;
        }
        entry.lruPrev = null;
        entry.lruNext = null;
        lru.count--;
    }
}
