package io.pegaflow.actors.directory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class FingerprintTableTest {

    @Test
    void shouldBehaveLikeAMapUnderRandomChurn() {
        SplittableRandom random = new SplittableRandom(42);
        FingerprintTable table = new FingerprintTable();
        Map<Long, Long> model = new HashMap<>();
        List<Long> keys = new ArrayList<>();
        for (int i = 0; i < 3_000; i++) {
            keys.add(random.nextLong() | 1);
        }
        // Keys that share a home slot region: small values collide after scaling.
        for (long k = 1; k <= 200; k++) {
            keys.add(k);
        }
        for (int step = 0; step < 200_000; step++) {
            long key = keys.get(random.nextInt(keys.size()));
            long bits = 1L << random.nextInt(4);
            switch (random.nextInt(5)) {
                case 0 -> {
                    long updated = table.or(key, bits);
                    model.merge(key, bits, (a, b) -> a | b);
                    assertEquals(model.get(key), updated);
                }
                case 1 -> {
                    long updated = table.andNot(key, bits);
                    Long old = model.get(key);
                    long expected = old == null ? 0 : old & ~bits;
                    if (expected == 0) {
                        model.remove(key);
                    } else {
                        model.put(key, expected);
                    }
                    assertEquals(expected, updated);
                }
                case 2 -> assertEquals(model.getOrDefault(key, 0L), table.get(key));
                case 3 -> {
                    long old = table.remove(key);
                    Long expected = model.remove(key);
                    assertEquals(expected == null ? 0 : expected, old);
                }
                default -> {
                    if (step % 5_000 == 0) {
                        long clear = 1L << random.nextInt(4);
                        table.clearBits(clear);
                        model.replaceAll((k, v) -> v & ~clear);
                        model.values().removeIf(v -> v == 0);
                    }
                }
            }
            if (step % 10_000 == 0) {
                assertSame(model, table);
            }
        }
        assertSame(model, table);
    }

    @Test
    void shouldClearABitEverywhereAndDeleteEntriesLeftEmpty() {
        FingerprintTable table = new FingerprintTable();
        for (long k = 1; k <= 10_000; k++) {
            table.or(k * 0x9E3779B97F4A7C15L | 1, k % 3 == 0 ? 0b11 : 0b01);
        }
        int deleted = table.clearBits(0b01);
        assertEquals(10_000 - 3_333, deleted);
        assertEquals(3_333, table.size());
        table.forEach((k, v) -> assertEquals(0b10, v));
    }

    @Test
    void shouldCountUpAndDownAndForgetAtZero() {
        FingerprintTable table = new FingerprintTable();
        assertEquals(1, table.add(7, 1));
        assertEquals(2, table.add(7, 1));
        assertEquals(1, table.add(7, -1));
        assertEquals(0, table.add(7, -1));
        assertEquals(0, table.size());
    }

    @Test
    void shouldStayWithin32BytesPerEntryOnceGrown() {
        FingerprintTable table = new FingerprintTable();
        SplittableRandom random = new SplittableRandom(7);
        double worst = 0;
        for (int i = 1; i <= 500_000; i++) {
            table.or(random.nextLong() | 1, 1);
            if (i >= 1_000) {
                worst = Math.max(worst, (double) table.arrayBytes() / table.size());
            }
        }
        assertTrue(worst <= 32.0, "worst bytes per entry " + worst);
    }

    @Test
    void shouldShrinkAfterMostEntriesGo() {
        FingerprintTable table = new FingerprintTable();
        for (long k = 1; k <= 100_000; k++) {
            table.or(k, 1);
        }
        int grown = table.capacity();
        for (long k = 1; k <= 99_000; k++) {
            table.andNot(k, 1);
        }
        assertEquals(1_000, table.size());
        assertTrue(table.capacity() < grown / 10, "capacity " + table.capacity() + " after shrinking from " + grown);
        for (long k = 99_001; k <= 100_000; k++) {
            assertEquals(1, table.get(k));
        }
    }

    @Test
    void shouldRefuseTheReservedKeyZero() {
        FingerprintTable table = new FingerprintTable();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> table.or(0, 1));
        assertTrue(e.getMessage().contains("0"));
        assertEquals(0, table.size());
    }

    private static void assertSame(Map<Long, Long> model, FingerprintTable table) {
        assertEquals(model.size(), table.size());
        for (Map.Entry<Long, Long> e : model.entrySet()) {
            assertEquals(e.getValue(), table.get(e.getKey()), "key " + e.getKey());
        }
        Map<Long, Long> seen = new HashMap<>();
        table.forEach(seen::put);
        assertEquals(model, seen);
    }
}
