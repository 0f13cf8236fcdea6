package io.pegaflow.actors.directory;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Objects;

/**
 * The directory key of a block: a 64-bit fingerprint of (namespace, hash), and the range that owns it.
 *
 * <p>The function is fixed: the same bytes give the same fingerprint on every JVM and every release that speaks the
 * same directory protocol (words are read little-endian, the namespace as UTF-8; nothing depends on
 * {@code String.hashCode} or on the platform). Changing it is a wire-incompatible change: the golden values in the
 * test pin it.
 *
 * <p>Fingerprint collisions. Two different blocks share a fingerprint with probability 2<sup>-64</sup> per pair, so
 * among {@code n} blocks in the cluster some pair collides with probability about n²/2<sup>65</sup> (10 million
 * blocks: 2.7·10<sup>-6</sup>; a billion: 2.7·10<sup>-2</sup>), and a lookup of a block that nobody holds hits some
 * present entry with probability about n/2<sup>64</sup> (10 million: 5·10<sup>-13</sup>). A collision merges two
 * blocks' holder sets, so the directory can name a node for a block it does not hold; that node then reports the
 * block absent when asked for a lease, and the reader treats it as a miss (recompute). The reverse cannot happen: a
 * node publishes a removal only when it holds no block with that fingerprint any more ({@link DirectoryPublisher}
 * counts them), so a collision never hides a holder.
 *
 * <p>The value 0 is never returned (it marks an empty slot in {@link FingerprintTable}); the one input in 2<sup>64</sup>
 * that would hash to 0 is mapped to 1.
 */
public final class Fingerprints {
    private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

    private static final long SEED = 0x7065676166_6c6f77L; // "pegaflow"
    private static final long P1 = 0x9E3779B185EBCA87L;
    private static final long P2 = 0xC2B2AE3D27D4EB4FL;
    private static final long P3 = 0x165667B19E3779F9L;
    private static final long P4 = 0x27D4EB2F165667C5L;

    private Fingerprints() {}

    /** The fingerprint of block {@code hash} in {@code namespace}. */
    public static long of(String namespace, byte[] hash) {
        return of(namespaceSeed(namespace), hash);
    }

    /**
     * The per-namespace seed: compute it once per request and use {@link #of(long, byte[])} for each hash, so a batch
     * of hashes does not re-encode the namespace.
     */
    public static long namespaceSeed(String namespace) {
        byte[] bytes = namespace.getBytes(StandardCharsets.UTF_8);
        return hash(SEED, bytes, 0, bytes.length);
    }

    /** The fingerprint of {@code hash} under a seed from {@link #namespaceSeed}. */
    public static long of(long namespaceSeed, byte[] hash) {
        return of(namespaceSeed, hash, 0, hash.length);
    }

    /**
     * The fingerprint of the hash {@code data[offset, offset + length)} under a seed from {@link #namespaceSeed}: the
     * same value as {@link #of(long, byte[])} of a copy of those bytes, for hashes packed back to back.
     */
    public static long of(long namespaceSeed, byte[] data, int offset, int length) {
        Objects.checkFromIndexSize(offset, length, data.length);
        long h = hash(namespaceSeed, data, offset, length);
        return h == 0 ? 1 : h;
    }

    /**
     * The range of {@code fingerprint} among {@code rangeCount} ranges: the fingerprint scaled onto {@code [0,
     * rangeCount)} (its high bits decide), so every range gets an equal share and any count works, not only powers of
     * two.
     */
    public static int rangeOf(long fingerprint, int rangeCount) {
        return (int) Math.unsignedMultiplyHigh(fingerprint, rangeCount);
    }

    private static long hash(long seed, byte[] bytes, int offset, int length) {
        long h = seed ^ (length * P1);
        int i = 0;
        for (; i + Long.BYTES <= length; i += Long.BYTES) {
            long word = (long) LONGS.get(bytes, offset + i);
            h = Long.rotateLeft(h ^ scramble(word), 27) * P1 + P4;
        }
        if (i < length) {
            long tail = 0;
            for (int shift = 0; i < length; i++, shift += 8) {
                tail |= (bytes[offset + i] & 0xFFL) << shift;
            }
            h = Long.rotateLeft(h ^ scramble(tail), 23) * P2 + P3;
        }
        return avalanche(h);
    }

    private static long scramble(long word) {
        return Long.rotateLeft(word * P2, 31) * P1;
    }

    /** Final mix: every input bit flips each output bit with probability about 1/2. */
    private static long avalanche(long h) {
        h ^= h >>> 33;
        h *= P2;
        h ^= h >>> 29;
        h *= P3;
        h ^= h >>> 32;
        return h;
    }
}
