package io.pegaflow.bench;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Arrays;
import java.util.function.ToLongFunction;

/**
 * The operations of {@link BlockStoreBenchmark} timed in thread CPU time rather than wall time, so that on a shared,
 * loaded machine the time the thread spends preempted is left out (JMH's wall-clock figures there vary by several
 * times between runs). 3 s of warm-up per operation, then 25 batches; prints the median and the fastest batch per
 * operation. Run: {@code java --enable-native-access=ALL-UNNAMED -cp bench/target/benchmarks.jar
 * io.pegaflow.bench.BlockStoreCpuTime}.
 */
public final class BlockStoreCpuTime {
    static final ThreadMXBean MX = ManagementFactory.getThreadMXBean();
    static long sink;

    private BlockStoreCpuTime() {}

    static void measure(String name, int batch, ToLongFunction<Void> op) {
        long end = System.nanoTime() + 3_000_000_000L; // warm-up 3 s of wall time
        while (System.nanoTime() < end) for (int i = 0; i < batch; i++) sink += op.applyAsLong(null);
        double[] perOp = new double[25];
        for (int r = 0; r < perOp.length; r++) {
            long t0 = MX.getCurrentThreadCpuTime();
            for (int i = 0; i < batch; i++) sink += op.applyAsLong(null);
            perOp[r] = (MX.getCurrentThreadCpuTime() - t0) / 1000.0 / batch;
        }
        Arrays.sort(perOp);
        System.out.printf(
                "%-48s median %9.3f us  min %9.3f us  (25 batches of %d)%n", name, perOp[12], perOp[0], batch);
    }

    public static void main(String[] args) {
        BlockStoreBenchmark b = new BlockStoreBenchmark();
        BlockStoreBenchmark.Store s = new BlockStoreBenchmark.Store();
        s.setUp();
        measure("plainHashMapLookups1000", 200, v -> b.plainHashMapLookups1000(s));
        measure("queryPrefix1000", 200, v -> b.queryPrefix1000(s));
        measure("queryPrefix1000WithLease", 200, v -> b.queryPrefix1000WithLease(s));
        measure("pinAndUnpin16ForLoad", 5000, v -> b.pinAndUnpin16ForLoad(s));
        measure("saveBookkeeping16WithEviction", 1000, v -> b.saveBookkeeping16WithEviction(s));
        s.tearDown();
        BlockStoreBenchmark.HalfLeased h = new BlockStoreBenchmark.HalfLeased();
        h.setUp();
        measure(
                "saveBookkeeping16WithEvictionPastLeasedBlocks",
                50,
                v -> b.saveBookkeeping16WithEvictionPastLeasedBlocks(h));
        h.tearDown();
    }
}
