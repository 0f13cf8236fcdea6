package io.pegaflow.store.pool;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Objects;

/**
 * One large off-heap region carved into fixed-size slabs; each slab serves one block size class at a time. Allocation
 * and free are O(1) and create no objects in steady state: objects are made only when a size class is first seen (its
 * table entry) and when a slab first serves a class with more slots than it has served before (its slot arrays, kept
 * for later use).
 *
 * <p>Block sizes are rounded up to {@link #ALIGNMENT}; that rounded size is the block's size class. Every block offset
 * is a multiple of {@link #ALIGNMENT} (slabs are multiples of it, and so are the slots inside a slab), so blocks are
 * page-aligned for DMA and RDMA when the pool's base address is.
 *
 * <p>Book-keeping, all primitive arrays: a stack of free slabs; per slab its class, used count, a free-slot stack, a
 * bump index (slots never handed out since the slab joined its class, so taking a slab costs O(1), not O(slots)) and
 * a bitset of live slots (double frees and foreign offsets are detected in O(1)); per class an intrusive doubly linked
 * list of the slabs that have a free slot and the number of those free slots. Class lookup is a small open-addressing
 * map from {@code size / ALIGNMENT}. When a slab's last block is freed the slab goes back to the free-slab stack, so
 * any class can take it.
 *
 * <p>Partitions: a pool may be split into a few partitions of whole slabs, each a contiguous range of the region
 * ({@link #partitionOffset}), with free slabs and per-class free-slot lists of their own, so that an owner can place a
 * block in the partition it wants ({@link #allocate(long, int)}) and count what is free there. The node uses one
 * partition per NUMA node, each bound to its node's memory. A block never straddles two partitions. With one
 * partition (the default) everything is as before.
 *
 * <p>Not thread-safe: see the package documentation.
 */
public final class BlockPool implements AutoCloseable {
    /** Every block offset, slab size and size class is a multiple of this (4 KiB). */
    public static final long ALIGNMENT = 4096;

    /** Smallest slab {@link #defaultSlabBytes} chooses for pools of at least this size (4 MiB). */
    public static final long MIN_DEFAULT_SLAB_BYTES = 4L << 20;

    /** Largest slab {@link #defaultSlabBytes} chooses (256 MiB). */
    public static final long MAX_DEFAULT_SLAB_BYTES = 256L << 20;

    private static final int ALIGNMENT_SHIFT = Long.numberOfTrailingZeros(ALIGNMENT);
    private static final int NONE = -1;
    private static final int INITIAL_CLASSES = 8;

    private final MemorySegment memory;
    private final Arena arena; // null when the memory belongs to the caller
    private final long slabBytes;
    private final int slabCount;
    private final long capacityBytes;
    private final int partitions;
    /** Slabs of each partition but the last, which also takes the remainder. */
    private final int partitionSlabs;

    /** Per partition p, a stack of its free slabs at [firstSlab(p), firstSlab(p) + freeSlabTop[p]). */
    private final int[] freeSlabs;

    private final int[] freeSlabTop;
    private int freeSlabTotal;
    private final long[] partitionUsedBytes;

    private final int[] slabClass; // class index, NONE when the slab is free
    private final int[] slabUsed;
    private final int[] slabBump;
    private final int[] slabFreeTop;
    private final int[][] slabFreeSlots;
    private final long[][] slabLive;
    private final int[] slabNext;
    private final int[] slabPrev;

    private int classCount;
    private long[] classBytes = new long[INITIAL_CLASSES];
    private int[] classSlotsPerSlab = new int[INITIAL_CLASSES];
    /** Per class and partition (index class * partitions + partition): the first slab with a free slot, or NONE. */
    private int[] classHead;
    /** Per class and partition: free slots in the slabs on that list. */
    private long[] classFreeSlots;

    private int[] mapKeys = new int[2 * INITIAL_CLASSES]; // size / ALIGNMENT, 0 = empty
    private int[] mapClasses = new int[2 * INITIAL_CLASSES];

    private long usedBytes;
    private boolean closed;

    private BlockPool(MemorySegment memory, long slabBytes, int slabCount, int partitions, Arena arena) {
        if (partitions < 1 || partitions > slabCount) {
            throw new IllegalArgumentException(
                    "partitions " + partitions + " must be in [1, " + slabCount + "] (the pool's slabs)");
        }
        this.slabBytes = slabBytes;
        this.slabCount = slabCount;
        this.capacityBytes = slabBytes * slabCount;
        this.memory = memory.asSlice(0, capacityBytes);
        this.arena = arena;
        this.partitions = partitions;
        this.partitionSlabs = slabCount / partitions;
        this.freeSlabs = new int[slabCount];
        this.freeSlabTop = new int[partitions];
        this.partitionUsedBytes = new long[partitions];
        for (int p = 0; p < partitions; p++) {
            int first = firstSlab(p);
            int n = slabsIn(p);
            for (int i = 0; i < n; i++) {
                freeSlabs[first + i] = first + n - 1 - i; // the partition's first slab is taken first
            }
            freeSlabTop[p] = n;
        }
        this.freeSlabTotal = slabCount;
        this.classHead = new int[INITIAL_CLASSES * partitions];
        this.classFreeSlots = new long[INITIAL_CLASSES * partitions];
        this.slabClass = new int[slabCount];
        Arrays.fill(slabClass, NONE);
        this.slabUsed = new int[slabCount];
        this.slabBump = new int[slabCount];
        this.slabFreeTop = new int[slabCount];
        this.slabFreeSlots = new int[slabCount][];
        this.slabLive = new long[slabCount][];
        this.slabNext = new int[slabCount];
        this.slabPrev = new int[slabCount];
    }

    /**
     * A pool of plain off-heap memory ({@link Arena#ofShared()}, 4 KiB-aligned), freed by {@link #close()}. The slab
     * size is {@link #defaultSlabBytes(long)}; the capacity is rounded down to a whole number of slabs. (Not named
     * {@code allocate}: that is the instance method {@link #allocate(long)}, with the same signature.)
     *
     * @param capacityBytes at least {@link #ALIGNMENT}
     */
    public static BlockPool allocateOffHeap(long capacityBytes) {
        long slab = defaultSlabBytes(capacityBytes);
        int slabs = slabCount(capacityBytes, slab);
        Arena arena = Arena.ofShared();
        try {
            MemorySegment memory = arena.allocate(slab * slabs, ALIGNMENT);
            return new BlockPool(memory, slab, slabs, 1, arena);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /**
     * A pool over memory owned by the caller (later: CUDA-pinned host memory); {@link #close()} does not free it. Only
     * the first {@code memory.byteSize() / slabBytes} whole slabs are used.
     *
     * @param memory a native, writable segment whose address is a multiple of {@link #ALIGNMENT}
     * @param slabBytes a positive multiple of {@link #ALIGNMENT}, at most {@code memory.byteSize()}
     */
    public static BlockPool wrap(MemorySegment memory, long slabBytes) {
        return wrap(memory, slabBytes, 1);
    }

    /**
     * As {@link #wrap(MemorySegment, long)}, split into {@code partitions} partitions of whole slabs: partition p
     * starts at {@code p * (slabs / partitions) * slabBytes} and the last takes the remainder
     * ({@link #partitionRanges} gives the same split before the pool exists, e.g. to bind each range to a NUMA node).
     *
     * @param partitions in [1, the number of whole slabs]
     */
    public static BlockPool wrap(MemorySegment memory, long slabBytes, int partitions) {
        Objects.requireNonNull(memory, "memory");
        if (!memory.isNative()) {
            throw new IllegalArgumentException("memory must be a native segment (off-heap), got a heap segment");
        }
        if (memory.isReadOnly()) {
            throw new IllegalArgumentException("memory must be writable, got a read-only segment");
        }
        if (memory.address() % ALIGNMENT != 0) {
            throw new IllegalArgumentException(
                    "memory address 0x" + Long.toHexString(memory.address()) + " must be a multiple of " + ALIGNMENT);
        }
        if (slabBytes <= 0 || slabBytes % ALIGNMENT != 0 || slabBytes > memory.byteSize()) {
            throw new IllegalArgumentException("slabBytes "
                    + slabBytes
                    + " must be a positive multiple of "
                    + ALIGNMENT
                    + " and at most the memory size "
                    + memory.byteSize());
        }
        return new BlockPool(memory, slabBytes, slabCount(memory.byteSize(), slabBytes), partitions, null);
    }

    /**
     * The byte ranges {@link #wrap(MemorySegment, long, int)} gives each partition of a region of {@code bytes}:
     * {@code [offset, length]} pairs, the last running to the end of the whole slabs.
     */
    public static long[][] partitionRanges(long bytes, long slabBytes, int partitions) {
        int slabs = slabCount(bytes, slabBytes);
        if (partitions < 1 || partitions > slabs) {
            throw new IllegalArgumentException(
                    "partitions " + partitions + " must be in [1, " + slabs + "] (whole slabs of " + slabBytes + ")");
        }
        int per = slabs / partitions;
        long[][] ranges = new long[partitions][];
        for (int p = 0; p < partitions; p++) {
            int n = p == partitions - 1 ? slabs - p * per : per;
            ranges[p] = new long[] {(long) p * per * slabBytes, (long) n * slabBytes};
        }
        return ranges;
    }

    /** Whole slabs in {@code bytes}; slab ids and slots per slab are ints. */
    private static int slabCount(long bytes, long slabBytes) {
        long slabs = bytes / slabBytes;
        if (slabs > Integer.MAX_VALUE || slabBytes / ALIGNMENT > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(
                    "slabBytes " + slabBytes + " over " + bytes + " bytes: slab or slot counts exceed 2^31-1");
        }
        return (int) slabs;
    }

    /**
     * The slab size {@link #allocateOffHeap(long)} uses: {@code capacityBytes / 16} clamped to [4 MiB, 256 MiB], rounded
     * down to {@link #ALIGNMENT}; a capacity below 4 MiB gives one slab of the whole capacity rounded down to
     * {@link #ALIGNMENT}.
     *
     * @param capacityBytes at least {@link #ALIGNMENT}
     */
    public static long defaultSlabBytes(long capacityBytes) {
        if (capacityBytes < ALIGNMENT) {
            throw new IllegalArgumentException("capacityBytes " + capacityBytes + " must be at least " + ALIGNMENT);
        }
        if (capacityBytes < MIN_DEFAULT_SLAB_BYTES) {
            return capacityBytes & -ALIGNMENT;
        }
        return Math.clamp(capacityBytes / 16, MIN_DEFAULT_SLAB_BYTES, MAX_DEFAULT_SLAB_BYTES) & -ALIGNMENT;
    }

    /**
     * Allocates one block of at least {@code blockBytes} (rounded up to {@link #ALIGNMENT}).
     *
     * @param blockBytes in [1, {@link #slabBytes()}]
     * @return the block's offset in {@link #memory()}, or -1 if no slot of that size class and no free slab is left
     * @throws IllegalArgumentException if {@code blockBytes} is out of range
     */
    public long allocate(long blockBytes) {
        ensureOpen();
        int c = classOf(blockBytes);
        for (int p = 0; p < partitions; p++) {
            if (classHead[c * partitions + p] != NONE || freeSlabTop[p] > 0) {
                return allocateIn(c, p);
            }
        }
        return -1;
    }

    /**
     * Allocates one block of at least {@code blockBytes} in partition {@code partition} only.
     *
     * @return the block's offset in {@link #memory()}, or -1 if that partition has no room for it
     * @throws IllegalArgumentException if {@code blockBytes} or {@code partition} is out of range
     */
    public long allocate(long blockBytes, int partition) {
        ensureOpen();
        checkPartition(partition);
        return allocateIn(classOf(blockBytes), partition);
    }

    private long allocateIn(int c, int p) {
        int h = c * partitions + p;
        int slab = classHead[h];
        if (slab == NONE) {
            if (freeSlabTop[p] == 0) {
                return -1;
            }
            slab = freeSlabs[firstSlab(p) + --freeSlabTop[p]];
            freeSlabTotal--;
            assignSlab(slab, c);
        }
        int slot = slabFreeTop[slab] > 0 ? slabFreeSlots[slab][--slabFreeTop[slab]] : slabBump[slab]++;
        slabLive[slab][slot >>> 6] |= 1L << slot;
        long size = classBytes[c];
        usedBytes += size;
        partitionUsedBytes[p] += size;
        classFreeSlots[h]--;
        if (++slabUsed[slab] == classSlotsPerSlab[c]) {
            unlink(slab, c);
        }
        return slab * slabBytes + slot * size;
    }

    /**
     * Frees a block returned by {@link #allocate(long)}. An offset that is not a live allocation (freed already, never
     * handed out, not at a block start, misaligned, out of range) is rejected and leaves the pool unchanged.
     *
     * @throws IllegalArgumentException if {@code offset} is not a live allocation
     */
    public void free(long offset) {
        ensureOpen();
        long ref = liveBlock(offset);
        int slab = (int) (ref >>> 32);
        int slot = (int) ref;
        int c = slabClass[slab];
        int p = partitionOfSlab(slab);
        int h = c * partitions + p;
        int slotsPerSlab = classSlotsPerSlab[c];
        slabLive[slab][slot >>> 6] &= ~(1L << slot);
        usedBytes -= classBytes[c];
        partitionUsedBytes[p] -= classBytes[c];
        int usedBefore = slabUsed[slab]--;
        if (usedBefore == 1) {
            // the slab is empty: give it back so that any class can take it
            if (usedBefore != slotsPerSlab) {
                unlink(slab, c);
            }
            classFreeSlots[h] -= slotsPerSlab - 1;
            slabClass[slab] = NONE;
            freeSlabs[firstSlab(p) + freeSlabTop[p]++] = slab;
            freeSlabTotal++;
        } else {
            slabFreeSlots[slab][slabFreeTop[slab]++] = slot;
            classFreeSlots[h]++;
            if (usedBefore == slotsPerSlab) {
                linkFirst(slab, c);
            }
        }
    }

    /**
     * Whether {@code count} allocations of {@code blockBytes} would all succeed now; changes nothing.
     *
     * @param blockBytes in [1, {@link #slabBytes()}]
     * @param count at least 0
     */
    public boolean canAllocate(long blockBytes, int count) {
        if (count < 0) {
            throw new IllegalArgumentException("count " + count + " must be at least 0");
        }
        return freeSlotsFor(blockBytes) >= count;
    }

    /**
     * How many blocks of {@code blockBytes} fit now: the free slots in the slabs of that size class plus the free slabs
     * times the slots per slab (capped at {@link Integer#MAX_VALUE}). Changes nothing.
     *
     * @param blockBytes in [1, {@link #slabBytes()}]
     */
    public int freeSlotsFor(long blockBytes) {
        long free = 0;
        for (int p = 0; p < partitions; p++) {
            free += freeSlotsFor(blockBytes, p);
        }
        return (int) Math.min(free, Integer.MAX_VALUE);
    }

    /** As {@link #freeSlotsFor(long)}, in partition {@code partition} only. */
    public int freeSlotsFor(long blockBytes, int partition) {
        checkPartition(partition);
        long size = sizeClass(blockBytes);
        int c = findClass((int) (size >>> ALIGNMENT_SHIFT));
        long free = (long) freeSlabTop[partition] * (slabBytes / size)
                + (c == NONE ? 0 : classFreeSlots[c * partitions + partition]);
        return (int) Math.min(free, Integer.MAX_VALUE);
    }

    /** The whole pool: {@link #capacityBytes()} bytes starting at offset 0. */
    public MemorySegment memory() {
        return memory;
    }

    /**
     * A slice of a live block. The slice stays addressable after {@link #free(long)} (it is a view, not a lease); it
     * stops being addressable when a pool from {@link #allocateOffHeap(long)} is closed.
     *
     * @param offset a live allocation's offset
     * @param lengthBytes in [0, the block's size class]
     * @throws IllegalArgumentException if {@code offset} is not a live allocation
     * @throws IndexOutOfBoundsException if {@code lengthBytes} does not fit the block
     */
    public MemorySegment block(long offset, long lengthBytes) {
        ensureOpen();
        long ref = liveBlock(offset);
        long size = classBytes[slabClass[(int) (ref >>> 32)]];
        if (lengthBytes < 0 || lengthBytes > size) {
            throw new IndexOutOfBoundsException(
                    "lengthBytes " + lengthBytes + " must be in [0, " + size + "] for the block at offset " + offset);
        }
        return memory.asSlice(offset, lengthBytes);
    }

    /** Usable bytes: {@link #slabCount()} times {@link #slabBytes()}. */
    public long capacityBytes() {
        return capacityBytes;
    }

    /** Sum of the size classes of the live allocations. */
    public long usedBytes() {
        return usedBytes;
    }

    /**
     * The biggest block allocatable now: {@link #slabBytes()} if a slab is free, else the biggest size class with a free
     * slot, else 0. O(size classes).
     */
    public long largestFreeBytes() {
        long largest = 0;
        for (int p = 0; p < partitions; p++) {
            largest = Math.max(largest, largestFreeBytes(p));
        }
        return largest;
    }

    /** As {@link #largestFreeBytes()}, in partition {@code partition} only. */
    public long largestFreeBytes(int partition) {
        checkPartition(partition);
        if (freeSlabTop[partition] > 0) {
            return slabBytes;
        }
        long largest = 0;
        for (int c = 0; c < classCount; c++) {
            if (classFreeSlots[c * partitions + partition] > 0) {
                largest = Math.max(largest, classBytes[c]);
            }
        }
        return largest;
    }

    // ---- partitions ----

    /** How many partitions the pool has (1 unless made by {@link #wrap(MemorySegment, long, int)}). */
    public int partitions() {
        return partitions;
    }

    /** Where partition {@code partition} starts in {@link #memory()}. */
    public long partitionOffset(int partition) {
        checkPartition(partition);
        return firstSlab(partition) * slabBytes;
    }

    /** Usable bytes of partition {@code partition}. */
    public long partitionCapacityBytes(int partition) {
        checkPartition(partition);
        return slabsIn(partition) * slabBytes;
    }

    /** Sum of the size classes of the live allocations in partition {@code partition}. */
    public long partitionUsedBytes(int partition) {
        checkPartition(partition);
        return partitionUsedBytes[partition];
    }

    /** The partition slab {@code slab} belongs to. */
    public int partitionOfSlab(int slab) {
        return Math.min(slab / partitionSlabs, partitions - 1);
    }

    /** The first slab of partition {@code partition}. */
    public int firstSlab(int partition) {
        return partition * partitionSlabs;
    }

    /** How many slabs partition {@code partition} has. */
    public int slabsIn(int partition) {
        return partition == partitions - 1 ? slabCount - partition * partitionSlabs : partitionSlabs;
    }

    private void checkPartition(int partition) {
        if (partition < 0 || partition >= partitions) {
            throw new IllegalArgumentException(
                    "partition " + partition + " must be in [0, " + partitions + ") (the pool's partitions)");
        }
    }

    public long slabBytes() {
        return slabBytes;
    }

    public int slabCount() {
        return slabCount;
    }

    public int freeSlabCount() {
        return freeSlabTotal;
    }

    // ---- slab facts, for an owner planning eviction across size classes ----

    /** The size class a block of {@code blockBytes} gets: rounded up to {@link #ALIGNMENT}. */
    public long sizeClassBytes(long blockBytes) {
        return sizeClass(blockBytes);
    }

    /** How many blocks of {@code blockBytes} one slab holds. */
    public int slotsPerSlab(long blockBytes) {
        return (int) (slabBytes / sizeClass(blockBytes));
    }

    /** The slab an allocation at {@code offset} lives in. */
    public int slabOf(long offset) {
        return (int) (offset / slabBytes);
    }

    /** Live blocks in slab {@code slab}. */
    public int slabLiveBlocks(int slab) {
        return slabUsed[slab];
    }

    /** The size class slab {@code slab} serves, or 0 when it is free. */
    public long slabClassBytes(int slab) {
        return slabClass[slab] == NONE ? 0 : classBytes[slabClass[slab]];
    }

    /**
     * Frees the memory of a pool from {@link #allocateOffHeap(long)} (every slice becomes unusable); wrapped memory stays
     * with its owner. Idempotent; afterwards allocate, free and block throw {@link IllegalStateException}.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (arena != null) {
            arena.close();
        }
    }

    @Override
    public String toString() {
        return "BlockPool[capacityBytes="
                + capacityBytes
                + ", slabBytes="
                + slabBytes
                + ", slabs="
                + slabCount
                + ", partitions="
                + partitions
                + ", freeSlabs="
                + freeSlabTotal
                + ", usedBytes="
                + usedBytes
                + ", sizeClasses="
                + classCount
                + "]";
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("block pool is closed");
        }
    }

    /** {@code blockBytes} rounded up to {@link #ALIGNMENT}, after checking the range. */
    private long sizeClass(long blockBytes) {
        if (blockBytes <= 0 || blockBytes > slabBytes) {
            throw new IllegalArgumentException("blockBytes " + blockBytes + " must be in [1, " + slabBytes + "]");
        }
        return (blockBytes + ALIGNMENT - 1) & -ALIGNMENT;
    }

    /** The slab index (high 32 bits) and slot (low 32 bits) of a live block, or an exception naming what is wrong. */
    private long liveBlock(long offset) {
        if (offset < 0 || offset >= capacityBytes) {
            throw new IllegalArgumentException(
                    "offset " + offset + " is not a live allocation: outside the pool [0, " + capacityBytes + ")");
        }
        if ((offset & (ALIGNMENT - 1)) != 0) {
            throw new IllegalArgumentException(
                    "offset " + offset + " is not a live allocation: not a multiple of " + ALIGNMENT);
        }
        int slab = (int) (offset / slabBytes);
        int c = slabClass[slab];
        if (c == NONE) {
            throw new IllegalArgumentException(
                    "offset " + offset + " is not a live allocation: slab " + slab + " is free");
        }
        long within = offset - slab * slabBytes;
        long size = classBytes[c];
        long slot = within / size;
        if (slot * size != within || slot >= classSlotsPerSlab[c]) {
            throw new IllegalArgumentException(
                    "offset " + offset + " is not a live allocation: not at the start of a " + size + "-byte block");
        }
        if ((slabLive[slab][(int) slot >>> 6] & (1L << slot)) == 0) {
            throw new IllegalArgumentException(
                    "offset " + offset + " is not a live allocation: freed already or never allocated (double free?)");
        }
        return ((long) slab << 32) | slot;
    }

    private void assignSlab(int slab, int c) {
        int slots = classSlotsPerSlab[c];
        if (slabFreeSlots[slab] == null || slabFreeSlots[slab].length < slots) {
            slabFreeSlots[slab] = new int[slots];
            slabLive[slab] = new long[(slots + 63) >>> 6];
        }
        slabClass[slab] = c;
        slabUsed[slab] = 0;
        slabBump[slab] = 0;
        slabFreeTop[slab] = 0;
        classFreeSlots[c * partitions + partitionOfSlab(slab)] += slots;
        linkFirst(slab, c);
    }

    private void linkFirst(int slab, int c) {
        int h = c * partitions + partitionOfSlab(slab);
        int head = classHead[h];
        slabPrev[slab] = NONE;
        slabNext[slab] = head;
        if (head != NONE) {
            slabPrev[head] = slab;
        }
        classHead[h] = slab;
    }

    private void unlink(int slab, int c) {
        int prev = slabPrev[slab];
        int next = slabNext[slab];
        if (prev == NONE) {
            classHead[c * partitions + partitionOfSlab(slab)] = next;
        } else {
            slabNext[prev] = next;
        }
        if (next != NONE) {
            slabPrev[next] = prev;
        }
        slabPrev[slab] = NONE;
        slabNext[slab] = NONE;
    }

    /** The class index for {@code blockBytes}, creating the class on its first use. */
    private int classOf(long blockBytes) {
        long size = sizeClass(blockBytes);
        int key = (int) (size >>> ALIGNMENT_SHIFT);
        int c = findClass(key);
        return c != NONE ? c : addClass(key, size);
    }

    private int findClass(int key) {
        int mask = mapKeys.length - 1;
        for (int i = mix(key) & mask; ; i = (i + 1) & mask) {
            int k = mapKeys[i];
            if (k == key) {
                return mapClasses[i];
            }
            if (k == 0) {
                return NONE;
            }
        }
    }

    private int addClass(int key, long size) {
        if (classCount == classBytes.length) {
            int n = classCount * 2;
            classBytes = Arrays.copyOf(classBytes, n);
            classSlotsPerSlab = Arrays.copyOf(classSlotsPerSlab, n);
            classHead = Arrays.copyOf(classHead, n * partitions);
            classFreeSlots = Arrays.copyOf(classFreeSlots, n * partitions);
        }
        int c = classCount++;
        classBytes[c] = size;
        classSlotsPerSlab[c] = (int) (slabBytes / size);
        for (int p = 0; p < partitions; p++) {
            classHead[c * partitions + p] = NONE;
            classFreeSlots[c * partitions + p] = 0;
        }
        if (2 * classCount > mapKeys.length) {
            int[] oldKeys = mapKeys;
            int[] oldClasses = mapClasses;
            mapKeys = new int[oldKeys.length * 2];
            mapClasses = new int[oldKeys.length * 2];
            for (int i = 0; i < oldKeys.length; i++) {
                if (oldKeys[i] != 0) {
                    put(oldKeys[i], oldClasses[i]);
                }
            }
        }
        put(key, c);
        return c;
    }

    private void put(int key, int c) {
        int mask = mapKeys.length - 1;
        int i = mix(key) & mask;
        while (mapKeys[i] != 0) {
            i = (i + 1) & mask;
        }
        mapKeys[i] = key;
        mapClasses[i] = c;
    }

    private static int mix(int key) {
        int h = key * 0x9E3779B9;
        return h ^ (h >>> 16);
    }
}
