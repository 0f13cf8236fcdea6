package io.pegaflow.actors.directory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class FingerprintsTest {

    @Test
    void shouldGiveTheSameFingerprintOnEveryJvm() {
        // Pinned values: a change here is a wire-incompatible change of the directory protocol.
        assertEquals(GOLDEN_1, Fingerprints.of("m", new byte[] {1}));
        assertEquals(GOLDEN_32, Fingerprints.of("llama-3.1-8b/bf16/tp1", ascending(32)));
        assertEquals(GOLDEN_13, Fingerprints.of("ns", ascending(13)));
        assertEquals(GOLDEN_RANGE, Fingerprints.rangeOf(GOLDEN_32, 256));
    }

    @Test
    void shouldGiveAHashReadInPlaceTheFingerprintOfItsCopy() {
        byte[] packed = new byte[3 + 32 + 13];
        System.arraycopy(ascending(32), 0, packed, 3, 32);
        System.arraycopy(ascending(13), 0, packed, 35, 13);
        assertEquals(GOLDEN_32, Fingerprints.of(Fingerprints.namespaceSeed("llama-3.1-8b/bf16/tp1"), packed, 3, 32));
        assertEquals(GOLDEN_13, Fingerprints.of(Fingerprints.namespaceSeed("ns"), packed, 35, 13));
        assertThrows(
                IndexOutOfBoundsException.class,
                () -> Fingerprints.of(Fingerprints.namespaceSeed("ns"), packed, 40, 9));
    }

    @Test
    void shouldSeparateNamespacesAndHashes() {
        byte[] hash = ascending(32);
        assertNotEquals(Fingerprints.of("a", hash), Fingerprints.of("b", hash));
        byte[] other = ascending(32);
        other[31] ^= 1;
        assertNotEquals(Fingerprints.of("a", hash), Fingerprints.of("a", other));
        // Namespace and hash bytes do not slide into each other.
        assertNotEquals(
                Fingerprints.of("ab", "c".getBytes(StandardCharsets.UTF_8)),
                Fingerprints.of("a", "bc".getBytes(StandardCharsets.UTF_8)));
        assertEquals(Fingerprints.of("a", hash), Fingerprints.of(Fingerprints.namespaceSeed("a"), hash.clone()));
    }

    @Test
    void shouldSpreadBlocksEvenlyOverRanges() {
        SplittableRandom random = new SplittableRandom(1);
        int ranges = 256;
        int[] counts = new int[ranges];
        int n = 256_000;
        long seed = Fingerprints.namespaceSeed("ns");
        byte[] hash = new byte[32];
        Set<Long> seen = new HashSet<>();
        for (int i = 0; i < n; i++) {
            for (int b = 0; b < 32; b += 8) {
                long v = random.nextLong();
                for (int k = 0; k < 8; k++) {
                    hash[b + k] = (byte) (v >>> (8 * k));
                }
            }
            long fp = Fingerprints.of(seed, hash);
            assertNotEquals(0, fp);
            seen.add(fp);
            counts[Fingerprints.rangeOf(fp, ranges)]++;
        }
        assertEquals(n, seen.size());
        double expected = (double) n / ranges;
        double chi2 = 0;
        for (int c : counts) {
            chi2 += (c - expected) * (c - expected) / expected;
        }
        // 255 degrees of freedom: the 99.9th percentile is about 330.
        assertTrue(chi2 < 330, "chi-square " + chi2);
    }

    @Test
    void shouldMapEveryFingerprintIntoTheRangeCount() {
        for (int ranges : new int[] {1, 3, 7, 256, 1000}) {
            assertEquals(0, Fingerprints.rangeOf(0, ranges));
            assertEquals(ranges - 1, Fingerprints.rangeOf(-1L, ranges));
            assertEquals(ranges - 1, Fingerprints.rangeOf(Long.MIN_VALUE + Long.MAX_VALUE, ranges));
        }
    }

    private static byte[] ascending(int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) i;
        }
        return b;
    }

    private static final long GOLDEN_1 = 7221719251219714000L;
    private static final long GOLDEN_32 = 2742049572099646332L;
    private static final long GOLDEN_13 = 2420215213146800827L;
    private static final int GOLDEN_RANGE = 38;
}
