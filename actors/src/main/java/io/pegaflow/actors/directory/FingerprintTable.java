package io.pegaflow.actors.directory;

/**
 * A map from non-zero fingerprint to non-zero {@code long} (a holder bitmask, or a count) in one interleaved
 * {@code long[]}: slot {@code i} is {@code [2i]} key, {@code [2i+1]} value, so a probe reads key and value from the
 * same cache line. 16 bytes per slot, no objects per entry.
 *
 * <p>Open addressing with linear probing; a key's home slot is its fingerprint remixed and scaled onto the capacity
 * (any capacity, not only powers of two: that is what keeps memory per entry bounded). Key 0 marks an empty slot; a
 * value that becomes 0 deletes the entry, by backward shift (no tombstones, so probe lengths never degrade after
 * churn).
 *
 * <p>Sizing: grows by {@value #GROWTH}× when the load passes {@value #MAX_LOAD}, so after growing the load is about
 * 0.54 and between growths it stays in [0.54, 0.75]: 21–30 bytes per entry. Shrinks to load 0.5 when deletions bring
 * it under {@value #MIN_LOAD}.
 *
 * <p>Not thread-safe: one owner (an actor, or code holding a lock); {@link #getRacy} alone may race it, for a reader
 * that validates its read.
 */
public final class FingerprintTable {
    static final double MAX_LOAD = 0.75;
    static final double GROWTH = 1.4;
    static final double MIN_LOAD = 0.2;
    private static final int MIN_CAPACITY = 8;
    private static final long SPREAD = 0x9E3779B97F4A7C15L;

    private long[] slots;
    private int capacity;
    private int size;
    private int growAt;
    private int shrinkAt;

    public FingerprintTable() {
        this(0);
    }

    /** A table that holds {@code expectedEntries} without growing. */
    public FingerprintTable(int expectedEntries) {
        if (expectedEntries < 0) {
            throw new IllegalArgumentException("expectedEntries must be >= 0, got " + expectedEntries);
        }
        allocate(capacityFor(expectedEntries, MAX_LOAD));
    }

    public int size() {
        return size;
    }

    public boolean isEmpty() {
        return size == 0;
    }

    /** Slots allocated (each 16 bytes). */
    public int capacity() {
        return capacity;
    }

    /** Bytes held by the table's array (header excluded). */
    public long arrayBytes() {
        return (long) slots.length * Long.BYTES;
    }

    /** The value of {@code key}, 0 when absent. */
    public long get(long key) {
        requireKey(key);
        long[] s = slots;
        for (int i = home(key); ; i = next(i)) {
            long k = s[2 * i];
            if (k == key) {
                return s[2 * i + 1];
            }
            if (k == 0) {
                return 0;
            }
        }
    }

    /**
     * The value of {@code key} as a thread racing the owner's writes sees it: never throws and always returns (the
     * capacity is taken from the array read, the probe stops after one lap), but the value means something only if
     * the caller then validates that no write overlapped the read (as {@link RangeState#readLookup} does).
     */
    long getRacy(long key) {
        long[] s = slots;
        int cap = s.length >>> 1;
        if (key == 0 || cap == 0) {
            return 0;
        }
        int i = home(key, cap);
        for (int probes = 0; probes < cap; probes++) {
            long k = s[2 * i];
            if (k == key) {
                return s[2 * i + 1];
            }
            if (k == 0) {
                return 0;
            }
            i = i + 1 == cap ? 0 : i + 1;
        }
        return 0;
    }

    /** Sets {@code key} to {@code value}; 0 removes it. Returns the previous value (0 when absent). */
    public long put(long key, long value) {
        requireKey(key);
        int i = find(key);
        long old = i >= 0 ? slots[2 * i + 1] : 0;
        store(i, key, value);
        return old;
    }

    /** {@code value(key) |= bits}. Returns the new value. */
    public long or(long key, long bits) {
        requireKey(key);
        int i = find(key);
        long updated = (i >= 0 ? slots[2 * i + 1] : 0) | bits;
        store(i, key, updated);
        return updated;
    }

    /** {@code value(key) &= ~bits}; the entry goes when no bit is left. Returns the new value. */
    public long andNot(long key, long bits) {
        requireKey(key);
        int i = find(key);
        if (i < 0) {
            return 0;
        }
        long updated = slots[2 * i + 1] & ~bits;
        store(i, key, updated);
        return updated;
    }

    /** {@code value(key) += delta}; the entry goes when the sum is 0. Returns the new value. */
    public long add(long key, long delta) {
        requireKey(key);
        int i = find(key);
        long updated = (i >= 0 ? slots[2 * i + 1] : 0) + delta;
        store(i, key, updated);
        return updated;
    }

    /** Removes {@code key}; returns its value, 0 when it was absent. */
    public long remove(long key) {
        return put(key, 0);
    }

    /**
     * Clears {@code bits} in every value, deleting the entries left without any (a node's holdings purged). One pass
     * over the slots; returns the number of entries deleted.
     */
    public int clearBits(long bits) {
        int deleted = 0;
        long[] s = slots;
        int i = 0;
        while (i < capacity) {
            if (s[2 * i] != 0 && (s[2 * i + 1] & bits) != 0) {
                long updated = s[2 * i + 1] & ~bits;
                if (updated == 0) {
                    // Backward shift may move a later key into slot i: look at slot i again. Keys that wrap around
                    // from the front land only in slots after i, or come from slots already visited (clearing those
                    // again is a no-op).
                    deleteAt(i);
                    deleted++;
                    continue;
                }
                s[2 * i + 1] = updated;
            }
            i++;
        }
        shrinkIfSparse();
        return deleted;
    }

    /** Keys in slot order. */
    public long[] keys() {
        long[] out = new long[size];
        int n = 0;
        for (int i = 0; i < capacity; i++) {
            long k = slots[2 * i];
            if (k != 0) {
                out[n++] = k;
            }
        }
        return out;
    }

    /** Visits every entry in slot order; the table must not change meanwhile. */
    public void forEach(EntryVisitor visitor) {
        for (int i = 0; i < capacity; i++) {
            long k = slots[2 * i];
            if (k != 0) {
                visitor.visit(k, slots[2 * i + 1]);
            }
        }
    }

    public void clear() {
        allocate(MIN_CAPACITY);
        size = 0;
    }

    /** One entry, for {@link #forEach}. */
    @FunctionalInterface
    public interface EntryVisitor {
        void visit(long key, long value);
    }

    private static void requireKey(long key) {
        if (key == 0) {
            throw new IllegalArgumentException("fingerprint 0 is reserved for empty slots");
        }
    }

    /** Slot of {@code key}, or {@code -(emptySlot + 1)} where it would go. */
    private int find(long key) {
        long[] s = slots;
        for (int i = home(key); ; i = next(i)) {
            long k = s[2 * i];
            if (k == key) {
                return i;
            }
            if (k == 0) {
                return -(i + 1);
            }
        }
    }

    /** Writes the result of an update found at {@code found} (a {@link #find} result). */
    private void store(int found, long key, long value) {
        if (found >= 0) {
            if (value != 0) {
                slots[2 * found + 1] = value;
            } else {
                deleteAt(found);
                shrinkIfSparse();
            }
            return;
        }
        if (value == 0) {
            return;
        }
        int empty = -found - 1;
        slots[2 * empty] = key;
        slots[2 * empty + 1] = value;
        if (++size > growAt) {
            resize(Math.max(capacity + 1, (int) Math.min(Integer.MAX_VALUE / 2, (long) (capacity * GROWTH))));
        }
    }

    /** Empties slot {@code hole} and shifts back the keys after it whose probe path crosses it. */
    private void deleteAt(int hole) {
        long[] s = slots;
        size--;
        int j = hole;
        while (true) {
            j = next(j);
            long k = s[2 * j];
            if (k == 0) {
                break;
            }
            int h = home(k);
            // k may move into the hole unless its home lies cyclically in (hole, j].
            boolean homeBetween = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
            if (!homeBetween) {
                s[2 * hole] = k;
                s[2 * hole + 1] = s[2 * j + 1];
                hole = j;
            }
        }
        s[2 * hole] = 0;
        s[2 * hole + 1] = 0;
    }

    private void shrinkIfSparse() {
        if (size < shrinkAt && capacity > MIN_CAPACITY) {
            resize(capacityFor(size, 0.5));
        }
    }

    private int home(long key) {
        return home(key, capacity);
    }

    private static int home(long key, int capacity) {
        return (int) Math.unsignedMultiplyHigh(key * SPREAD, capacity);
    }

    private int next(int i) {
        return i + 1 == capacity ? 0 : i + 1;
    }

    private static int capacityFor(int entries, double load) {
        long c = (long) Math.ceil(entries / load) + 1;
        if (c > Integer.MAX_VALUE / 2) {
            throw new IllegalStateException("fingerprint table cannot hold " + entries + " entries");
        }
        return (int) Math.max(MIN_CAPACITY, c);
    }

    private void allocate(int newCapacity) {
        slots = new long[2 * newCapacity];
        capacity = newCapacity;
        growAt = (int) (newCapacity * MAX_LOAD);
        shrinkAt = newCapacity > MIN_CAPACITY ? (int) (newCapacity * MIN_LOAD) : -1;
    }

    private void resize(int newCapacity) {
        long[] old = slots;
        int oldCapacity = capacity;
        allocate(newCapacity);
        for (int i = 0; i < oldCapacity; i++) {
            long k = old[2 * i];
            if (k != 0) {
                int j = home(k);
                while (slots[2 * j] != 0) {
                    j = next(j);
                }
                slots[2 * j] = k;
                slots[2 * j + 1] = old[2 * i + 1];
            }
        }
    }
}
