package io.pegaflow.actors.directory;

/**
 * A range's fingerprint → holder-mask table, split by the fingerprint's low bits into {@value #PARTS}
 * {@link FingerprintTable}s. The split keeps each array small: G1 stores an array larger than half a heap region as a
 * "humongous" object rounded up to whole regions (a 2.8 MB table in 2 MB regions takes 4 MB), and a range of a node
 * holding tens of millions of entries would otherwise cross that line; it also makes growth copy 1/16 of the range at
 * a time, and spreads the parts over different points of their growth, so the memory per entry averages out instead
 * of every range jumping at once. Not thread-safe (one owner, the range entity), except {@link #getRacy}, which any
 * thread may call if it validates what it read (a {@link java.util.concurrent.locks.StampedLock} in {@link
 * RangeState}).
 */
final class HolderTable {
    static final int PARTS = 16;

    private final FingerprintTable[] parts = new FingerprintTable[PARTS];

    HolderTable() {
        for (int i = 0; i < PARTS; i++) {
            parts[i] = new FingerprintTable();
        }
    }

    private FingerprintTable part(long fp) {
        return parts[(int) (fp & (PARTS - 1))];
    }

    long get(long fp) {
        return part(fp).get(fp);
    }

    /** {@link FingerprintTable#getRacy}: for a reader racing the owner, whose result it validates itself. */
    long getRacy(long fp) {
        return part(fp).getRacy(fp);
    }

    long or(long fp, long bits) {
        return part(fp).or(fp, bits);
    }

    long andNot(long fp, long bits) {
        return part(fp).andNot(fp, bits);
    }

    /** Clears {@code bits} everywhere (a node purged); returns the entries deleted. */
    int clearBits(long bits) {
        int deleted = 0;
        for (FingerprintTable t : parts) {
            deleted += t.clearBits(bits);
        }
        return deleted;
    }

    int size() {
        int n = 0;
        for (FingerprintTable t : parts) {
            n += t.size();
        }
        return n;
    }

    long arrayBytes() {
        long n = 0;
        for (FingerprintTable t : parts) {
            n += t.arrayBytes();
        }
        return n;
    }

    long capacity() {
        long n = 0;
        for (FingerprintTable t : parts) {
            n += t.capacity();
        }
        return n;
    }

    /** Largest part's array in bytes (what G1 sees as one object). */
    long largestArrayBytes() {
        long max = 0;
        for (FingerprintTable t : parts) {
            max = Math.max(max, t.arrayBytes());
        }
        return max;
    }
}
