package io.pegaflow.transport;

import java.util.concurrent.atomic.AtomicLongArray;

/**
 * A latency histogram with power-of-two buckets in nanoseconds, single writer: bucket {@code i} counts latencies in
 * {@code [2^i, 2^(i+1))} ns (bucket 0 also takes 0). Recording is two plain array operations and an ordered store, no
 * allocation, no lock; any thread may read a {@link #copy()} while the owner records (a reader may see a bucket one
 * increment behind, never a torn value).
 *
 * <p>The node samples it into a Kamon histogram by recording each bucket's count delta at the bucket's lower bound.
 */
public final class LatencyHistogram {

    /** One bucket per possible bit length of a non-negative long. */
    public static final int BUCKET_COUNT = 64;

    private final AtomicLongArray buckets = new AtomicLongArray(BUCKET_COUNT);

    /** Records one latency; only the owning thread may call this. Negative values count as 0. */
    public void record(long latencyNs) {
        int bucket = bucketOf(latencyNs);
        buckets.lazySet(bucket, buckets.get(bucket) + 1);
    }

    /** A copy of the bucket counts. */
    public long[] copy() {
        long[] out = new long[BUCKET_COUNT];
        for (int i = 0; i < BUCKET_COUNT; i++) {
            out[i] = buckets.get(i);
        }
        return out;
    }

    /** The bucket a latency falls in. */
    public static int bucketOf(long latencyNs) {
        return latencyNs <= 1 ? 0 : 63 - Long.numberOfLeadingZeros(latencyNs);
    }

    /** The smallest latency bucket {@code i} holds (0 for bucket 0). */
    public static long bucketLowerBoundNs(int bucket) {
        return bucket == 0 ? 0 : 1L << bucket;
    }

    /**
     * The smallest bucket lower bound at or above the {@code quantile} of {@code buckets} (e.g. 0.99), as an upper
     * estimate; 0 when empty.
     */
    public static long quantileUpperBoundNs(long[] buckets, double quantile) {
        long total = 0;
        for (long count : buckets) {
            total += count;
        }
        if (total == 0) {
            return 0;
        }
        long rank = (long) Math.ceil(quantile * total);
        long seen = 0;
        for (int i = 0; i < buckets.length; i++) {
            seen += buckets[i];
            if (seen >= rank) {
                return i >= 62 ? Long.MAX_VALUE : 1L << (i + 1);
            }
        }
        return Long.MAX_VALUE;
    }
}
