package io.pegaflow.bench.directory;

import io.pegaflow.actors.directory.BlockRange;
import io.pegaflow.actors.directory.FingerprintTable;
import io.pegaflow.actors.directory.Fingerprints;
import io.pegaflow.actors.directory.RangeState;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.util.Arrays;
import java.util.HashMap;
import java.util.SplittableRandom;

/**
 * Directory bytes per block entry: fills the real per-range state ({@link RangeState}, what each {@code BlockRange}
 * entity holds) of every range on one node — the worst case, all ranges hosted by one node — with N distinct blocks
 * held by 1–3 of 3 nodes (70% one holder, 25% two, 5% three), published the way the entities receive them (batches
 * of 8,192 per range), then reports bytes per entry from the tables' arrays and from the heap after a full GC. Also
 * times lookups of present and absent blocks on the filled state, and (optionally) what a {@code HashMap<Long, Long>}
 * costs per entry in the same JVM.
 *
 * <pre>
 * java -Xms6g -Xmx6g -cp bench/target/classes:$(cat bench/target/classpath.txt) \
 *     io.pegaflow.bench.directory.DirectoryMemoryBench [entries,...] [ranges] [--hashmap]
 * </pre>
 */
public final class DirectoryMemoryBench {
    private static final int NODES = 3;
    private static final int BATCH = 8_192;
    private static final long[] NONE = new long[0];

    private DirectoryMemoryBench() {}

    public static void main(String[] args) {
        long[] sizes = args.length > 0
                ? Arrays.stream(args[0].split(",")).mapToLong(Long::parseLong).toArray()
                : new long[] {10_000_000};
        int ranges = args.length > 1 ? Integer.parseInt(args[1]) : 256;
        boolean hashMap = Arrays.asList(args).contains("--hashmap");
        System.out.printf(
                "java %s, %s, %d cores, max heap %d MiB%n",
                System.getProperty("java.version"),
                System.getProperty("java.vm.name"),
                Runtime.getRuntime().availableProcessors(),
                Runtime.getRuntime().maxMemory() >> 20);
        System.out.println(
                "| entries | ranges | table bytes/entry | heap bytes/entry | range load min–max | largest array KiB "
                        + "| fill ns/entry | lookup ns (present) | lookup ns (absent) |");
        System.out.println("|---|---|---|---|---|---|---|---|---|");
        for (long n : sizes) {
            measure(n, ranges);
        }
        if (hashMap) {
            for (long n : sizes) {
                measureHashMap(n);
            }
        }
    }

    private static void measure(long entries, int ranges) {
        long before = usedHeapAfterGc();
        long t0 = System.nanoTime();
        RangeState[] states = new RangeState[ranges];
        long now = System.nanoTime();
        for (int r = 0; r < ranges; r++) {
            states[r] = new RangeState(r, ranges, NODES, 10_000_000_000L, 1_000_000);
            states[r].membershipKnown();
            for (int node = 0; node < NODES; node++) {
                states[r].memberPresent(node, node + 1, true, now);
                states[r].requested(node, 1, now);
                states[r].onHoldings(new BlockRange.Command.Holdings(node, node + 1, 1, 0, 0, true, NONE), now);
            }
        }
        long[][][] batch = new long[NODES][ranges][BATCH];
        int[][] fill = new int[NODES][ranges];
        long[][] seq = new long[NODES][ranges];
        SplittableRandom random = new SplittableRandom(42);
        for (long i = 0; i < entries; i++) {
            long fp = random.nextLong();
            if (fp == 0) {
                fp = 1;
            }
            int r = Fingerprints.rangeOf(fp, ranges);
            int holders = holdersOf(random.nextInt(100));
            int first = random.nextInt(NODES);
            for (int h = 0; h < holders; h++) {
                int node = (first + h) % NODES;
                batch[node][r][fill[node][r]++] = fp;
                if (fill[node][r] == BATCH) {
                    publish(states[r], node, ++seq[node][r], batch[node][r], BATCH);
                    fill[node][r] = 0;
                }
            }
        }
        for (int node = 0; node < NODES; node++) {
            for (int r = 0; r < ranges; r++) {
                if (fill[node][r] > 0) {
                    publish(states[r], node, ++seq[node][r], batch[node][r], fill[node][r]);
                }
            }
        }
        long fillNanos = System.nanoTime() - t0;
        batch = null;
        long after = usedHeapAfterGc();

        long count = 0;
        long arrays = 0;
        double minLoad = 1;
        double maxLoad = 0;
        long largest = 0;
        for (RangeState s : states) {
            largest = Math.max(largest, s.largestArrayBytes());
            count += s.entries();
            arrays += s.tableBytes();
            double load = (double) s.entries() / s.tableCapacity();
            minLoad = Math.min(minLoad, load);
            maxLoad = Math.max(maxLoad, load);
        }
        if (count < entries * 0.999) {
            throw new IllegalStateException("filled " + count + " of " + entries + " entries");
        }
        double[] lookups = lookupNanos(states, ranges, entries);
        System.out.printf(
                "| %,d | %d | %.1f | %.1f | %.2f–%.2f | %,d | %.0f | %.0f | %.0f |%n",
                count,
                ranges,
                (double) arrays / count,
                (double) (after - before) / count,
                minLoad,
                maxLoad,
                largest >> 10,
                (double) fillNanos / entries,
                lookups[0],
                lookups[1]);
        keep(states);
    }

    /** Mean nanoseconds per lookup, in batches of 1,000 like a locate: present blocks, then absent ones. */
    private static double[] lookupNanos(RangeState[] states, int ranges, long entries) {
        int n = 1_000_000;
        long[] present = new long[n];
        SplittableRandom again = new SplittableRandom(42); // the fill's sequence: the first n are present
        for (int i = 0; i < n && i < entries; i++) {
            long fp = again.nextLong();
            present[i] = fp == 0 ? 1 : fp;
            again.nextInt(100);
            again.nextInt(NODES);
        }
        long[] absent =
                new SplittableRandom(7).longs(n).map(fp -> fp == 0 ? 1 : fp).toArray();
        double[] out = new double[2];
        for (int round = 0; round < 2; round++) { // first round warms up
            out[0] = timeLookups(states, ranges, present);
            out[1] = timeLookups(states, ranges, absent);
        }
        return out;
    }

    private static double timeLookups(RangeState[] states, int ranges, long[] fps) {
        long[] one = new long[1];
        long[] mask = new long[1];
        long sink = 0;
        long t0 = System.nanoTime();
        for (long fp : fps) {
            one[0] = fp;
            states[Fingerprints.rangeOf(fp, ranges)].lookup(one, mask);
            sink += mask[0];
        }
        long nanos = System.nanoTime() - t0;
        if (sink == 42) {
            System.out.print("");
        }
        return (double) nanos / fps.length;
    }

    private static void measureHashMap(long entries) {
        long before = usedHeapAfterGc();
        HashMap<Long, Long> map = new HashMap<>();
        SplittableRandom random = new SplittableRandom(42);
        for (long i = 0; i < entries; i++) {
            map.put(random.nextLong(), (long) (1 + random.nextInt(7)));
        }
        long after = usedHeapAfterGc();
        System.out.printf(
                "HashMap<Long, Long> for comparison: %,d entries, %.1f heap bytes/entry%n",
                map.size(), (double) (after - before) / map.size());
        keep(map);
    }

    private static void publish(RangeState state, int node, long seq, long[] fps, int count) {
        state.onPublish(
                new BlockRange.Command.Publish(node, node + 1, seq, Arrays.copyOf(fps, count), NONE),
                System.nanoTime());
    }

    private static int holdersOf(int percent) {
        return percent < 70 ? 1 : percent < 95 ? 2 : 3;
    }

    private static long usedHeapAfterGc() {
        MemoryMXBean memory = ManagementFactory.getMemoryMXBean();
        for (int i = 0; i < 4; i++) {
            System.gc();
        }
        return memory.getHeapMemoryUsage().getUsed();
    }

    private static volatile Object kept;

    /** Keeps {@code o} reachable until after the heap was measured. */
    private static void keep(Object o) {
        kept = o;
        kept = null;
    }

    static {
        // Class loaded, so its own allocation is outside the measurement.
        new FingerprintTable(1);
    }
}
