package io.pegaflow.actors.directory;

import java.time.Duration;
import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;

/**
 * The node-side way to ask the directory where blocks live, for the fabric's gRPC handlers and the transfer
 * coordinator. Groups the hashes by range, asks every range concerned at once (the sharding ask pattern), and
 * assembles holders per hash, the prefix available in the cluster, and whether the answer is complete.
 *
 * <p>Thread-safe and non-blocking: {@link #locate} returns at once; the stage completes on a Pekko thread (within
 * {@code timeout}, plus scheduling), never exceptionally for a range that did not answer — that range's hashes come
 * back without holders and {@code complete = false}.
 */
public final class DirectoryClient {
    private final DirectoryNodes nodes;
    private final RangeRefs ranges;
    private final int maxPerMessage;

    DirectoryClient(DirectoryNodes nodes, RangeRefs ranges, int maxPerMessage) {
        this.nodes = nodes;
        this.ranges = ranges;
        this.maxPerMessage = maxPerMessage;
    }

    /**
     * Holders of each block {@code (namespace, hashes[i])}.
     *
     * @throws IllegalArgumentException naming the argument when {@code namespace}, {@code hashes}, an element of it or
     *     {@code timeout} is null or empty, or {@code timeout} is not positive
     */
    public CompletionStage<LocateResult> locate(String namespace, byte[][] hashes, Duration timeout) {
        if (namespace == null || namespace.isEmpty()) {
            throw new IllegalArgumentException("namespace must be a non-empty string");
        }
        if (hashes == null) {
            throw new IllegalArgumentException("hashes must not be null");
        }
        long seed = Fingerprints.namespaceSeed(namespace);
        long[] fps = new long[hashes.length];
        for (int i = 0; i < hashes.length; i++) {
            if (hashes[i] == null || hashes[i].length == 0) {
                throw new IllegalArgumentException("hashes[" + i + "] must be a non-empty byte string");
            }
            fps[i] = Fingerprints.of(seed, hashes[i]);
        }
        return locate(fps, timeout);
    }

    /**
     * Holders of each fingerprint ({@link Fingerprints#of}).
     *
     * @throws IllegalArgumentException when a fingerprint is 0 or {@code timeout} is not positive
     */
    public CompletionStage<LocateResult> locate(long[] fingerprints, Duration timeout) {
        Objects.requireNonNull(fingerprints, "fingerprints");
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout must be > 0, got " + timeout);
        }
        int n = fingerprints.length;
        if (n == 0) {
            return CompletableFuture.completedFuture(new LocateResult(new long[0], 0, true, nodes.ids()));
        }
        int rangeCount = ranges.rangeCount();
        int[] rangeOf = new int[n];
        int[] count = new int[rangeCount];
        for (int i = 0; i < n; i++) {
            if (fingerprints[i] == 0) {
                throw new IllegalArgumentException("fingerprints[" + i + "] is 0 (reserved)");
            }
            rangeOf[i] = Fingerprints.rangeOf(fingerprints[i], rangeCount);
            count[rangeOf[i]]++;
        }
        // Positions of each range's fingerprints, ranges in order (a counting sort).
        int[] start = new int[rangeCount + 1];
        for (int r = 0; r < rangeCount; r++) {
            start[r + 1] = start[r] + count[r];
        }
        int[] order = new int[n];
        int[] fill = Arrays.copyOf(start, rangeCount);
        for (int i = 0; i < n; i++) {
            order[fill[rangeOf[i]]++] = i;
        }
        int asks = 0;
        for (int r = 0; r < rangeCount; r++) {
            asks += (count[r] + maxPerMessage - 1) / maxPerMessage;
        }
        int[] askFrom = new int[asks];
        int[] askTo = new int[asks];
        @SuppressWarnings("unchecked")
        CompletableFuture<BlockRange.LookupReply>[] replies = new CompletableFuture[asks];
        int a = 0;
        for (int r = 0; r < rangeCount; r++) {
            for (int from = start[r]; from < start[r + 1]; from += maxPerMessage) {
                int to = Math.min(start[r + 1], from + maxPerMessage);
                long[] batch = new long[to - from];
                for (int k = from; k < to; k++) {
                    batch[k - from] = fingerprints[order[k]];
                }
                askFrom[a] = from;
                askTo[a] = to;
                replies[a] = ranges.get(r)
                        .<BlockRange.LookupReply>ask(replyTo -> new BlockRange.Lookup(batch, replyTo), timeout)
                        .toCompletableFuture()
                        .exceptionally(failure -> null);
                a++;
            }
        }
        return CompletableFuture.allOf(replies).thenApply(done -> assemble(n, order, askFrom, askTo, replies));
    }

    private LocateResult assemble(
            int n, int[] order, int[] askFrom, int[] askTo, CompletableFuture<BlockRange.LookupReply>[] replies) {
        long[] masks = new long[n];
        boolean complete = true;
        for (int a = 0; a < replies.length; a++) {
            BlockRange.LookupReply reply = replies[a].join();
            int expected = askTo[a] - askFrom[a];
            if (reply == null || reply.holderMasks().length != expected) {
                complete = false;
                continue;
            }
            complete &= reply.complete();
            for (int k = 0; k < expected; k++) {
                masks[order[askFrom[a] + k]] = reply.holderMasks()[k];
            }
        }
        int prefix = 0;
        while (prefix < n && masks[prefix] != 0) {
            prefix++;
        }
        return new LocateResult(masks, prefix, complete, nodes.ids());
    }
}
