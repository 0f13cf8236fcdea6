package io.pegaflow.store;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * The block hashes of one request as one byte array and the end of each hash in it (struct of arrays): reading a
 * request's hashes allocates two arrays, not one per block. Hash {@code i} is {@code data()[start(i), end(i))}.
 * Immutable by contract: the arrays are shared, not copied, so the creator must not change them afterwards.
 */
public final class HashList {
    private static final HashList EMPTY = new HashList(new byte[0], new int[1]);

    private final byte[] data;
    /** {@code ends[0] == 0}; hash i spans {@code [ends[i], ends[i + 1])}. */
    private final int[] ends;

    private HashList(byte[] data, int[] ends) {
        this.data = data;
        this.ends = ends;
    }

    /**
     * Hashes of {@code hashBytes} each, back to back in {@code data} (shared, not copied).
     *
     * @throws IllegalArgumentException when {@code hashBytes} is not positive or does not divide the data's length
     */
    public static HashList packed(byte[] data, int hashBytes) {
        if (data.length == 0) {
            return EMPTY;
        }
        if (hashBytes <= 0 || data.length % hashBytes != 0) {
            throw new IllegalArgumentException(
                    data.length + " bytes are not a whole number of hashes of " + hashBytes + " bytes");
        }
        int n = data.length / hashBytes;
        int[] ends = new int[n + 1];
        for (int i = 1; i <= n; i++) {
            ends[i] = i * hashBytes;
        }
        return new HashList(data, ends);
    }

    /** The hashes copied into one array (any lengths, empty ones included). */
    public static HashList of(byte[]... hashes) {
        if (hashes.length == 0) {
            return EMPTY;
        }
        int[] ends = new int[hashes.length + 1];
        long total = 0;
        for (int i = 0; i < hashes.length; i++) {
            total += hashes[i].length;
            if (total > Integer.MAX_VALUE - 16) {
                throw new IllegalArgumentException("hashes: more than 2 GiB in all");
            }
            ends[i + 1] = (int) total;
        }
        byte[] data = new byte[(int) total];
        for (int i = 0; i < hashes.length; i++) {
            System.arraycopy(hashes[i], 0, data, ends[i], hashes[i].length);
        }
        return new HashList(data, ends);
    }

    public int size() {
        return ends.length - 1;
    }

    /** The shared backing array (read only). */
    public byte[] data() {
        return data;
    }

    public int start(int i) {
        return ends[i];
    }

    public int end(int i) {
        return ends[i + 1];
    }

    public int length(int i) {
        return ends[i + 1] - ends[i];
    }

    /** Hash {@code i} as a fresh array (allocates: not for per-block use on the hot path). */
    public byte[] copy(int i) {
        return Arrays.copyOfRange(data, ends[i], ends[i + 1]);
    }

    /** Hashes {@code [from, to)} as fresh arrays (allocates). */
    public byte[][] copies(int from, int to) {
        byte[][] out = new byte[to - from][];
        for (int i = from; i < to; i++) {
            out[i - from] = copy(i);
        }
        return out;
    }

    /** Hash {@code i}'s hash code: the one {@link BlockKey} has for the same bytes (see {@link #hashCode}). */
    public int hashCodeOf(int i) {
        return hashCode(data, ends[i], ends[i + 1]);
    }

    /** True when hashes {@code i} and {@code j} hold the same bytes. */
    public boolean sameHash(int i, int j) {
        return Arrays.equals(data, ends[i], ends[i + 1], data, ends[j], ends[j + 1]);
    }

    /**
     * The hash code of {@code a[from, to)}, eight bytes at a time (block hashes are sha256 digests: 4 steps, where
     * {@link Arrays#hashCode(byte[])}'s byte-at-a-time loop took 32 and showed in the save profile).
     */
    static int hashCode(byte[] a, int from, int to) {
        long h = to - from;
        int k = from;
        for (; k + Long.BYTES <= to; k += Long.BYTES) {
            h = Long.rotateLeft((h ^ (long) LONGS.get(a, k)) * MIX, 29);
        }
        for (; k < to; k++) {
            h = Long.rotateLeft((h ^ (a[k] & 0xFF)) * MIX, 29);
        }
        h *= MIX;
        return (int) (h ^ (h >>> 32));
    }

    private static final long MIX = 0x9E3779B97F4A7C15L;
    private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

    @Override
    public String toString() {
        return "HashList(" + size() + " hashes, " + data.length + " bytes)";
    }
}
