package io.pegaflow.actors.directory;

import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * The node's outbox to the directory: takes the store's events in batches ({@link #publish}), never blocks and never
 * waits for the directory, and hands coalesced per-range {@link BlockRange.Command.Publish} batches to the flusher actor
 * ({@link #drain}).
 *
 * <p>Counting. The publisher counts, per fingerprint, how many of this node's sealed blocks have it; a change
 * reaches the directory only when the count moves between 0 and 1. So a fingerprint collision between two local
 * blocks never makes the directory forget a block the node still holds (see {@link Fingerprints}); and the counts are
 * exactly the node's holdings as published, so the publisher can serve as its {@link LocalHoldings}.
 *
 * <p>Coalescing and bounds. Changes wait in one table (fingerprint → +1 added / −1 removed) until the next flush; a
 * change and its reversal before a flush cancel out. At most {@code maxPending} fingerprints wait; a change beyond
 * that is dropped and counted ({@link #droppedChanges}), and the next flush to that range skips a sequence number, so
 * the range sees a gap and asks this node for its holdings again: a drop costs a resync, never a wrong directory.
 *
 * <p>Threads: {@link #publish} from any thread (callers are serialised by a short lock; hold no lock of yours that the
 * flusher could need); {@link #drain} from the flusher actor only; the counters and {@link #lastSequence} from any
 * thread.
 */
public final class DirectoryPublisher implements PublishSequence, LocalHoldings {
    private final int selfNode;
    private final long incarnation;
    private final int rangeCount;
    private final int maxPending;
    private final int flushThreshold;
    private final int maxPerMessage;

    private final Object lock = new Object();
    private final FingerprintTable[] held;
    private FingerprintTable pending = new FingerprintTable();
    private final boolean[] gap;

    private final AtomicLongArray lastSequence;
    private final AtomicBoolean flushRequested = new AtomicBoolean();
    private volatile Runnable flushSignal = () -> {};
    private final AtomicLong dropped = new AtomicLong();
    private final AtomicLong unmatchedRemovals = new AtomicLong();
    private final AtomicLong messages = new AtomicLong();
    private final AtomicLong changesSent = new AtomicLong();

    /**
     * @param selfNode this node's index ({@link DirectoryNodes})
     * @param incarnation this node's member uid ({@code Cluster.selfMember().uniqueAddress().longUid()})
     */
    public DirectoryPublisher(int selfNode, long incarnation, int rangeCount, DirectorySettings settings) {
        if (selfNode < 0 || selfNode >= DirectoryNodes.MAX_NODES) {
            throw new IllegalArgumentException("selfNode " + selfNode + " outside [0, 64)");
        }
        if (rangeCount < 1) {
            throw new IllegalArgumentException("rangeCount must be >= 1, got " + rangeCount);
        }
        this.selfNode = selfNode;
        this.incarnation = incarnation;
        this.rangeCount = rangeCount;
        this.maxPending = settings.maxPending();
        this.flushThreshold = settings.flushThreshold();
        this.maxPerMessage = settings.maxFingerprintsPerMessage();
        this.held = new FingerprintTable[rangeCount];
        for (int r = 0; r < rangeCount; r++) {
            held[r] = new FingerprintTable();
        }
        this.gap = new boolean[rangeCount];
        this.lastSequence = new AtomicLongArray(rangeCount);
    }

    public int selfNode() {
        return selfNode;
    }

    public long incarnation() {
        return incarnation;
    }

    /**
     * Takes one ordered batch of store events (in the store's order). Returns at once; the directory learns of them
     * at the next flush.
     */
    public <E> void publish(List<E> events, BlockChangeReader<? super E> reader) {
        int n = events.size();
        if (n == 0) {
            return;
        }
        long[] fps = new long[n];
        byte[] kinds = new byte[n];
        for (int i = 0; i < n; i++) {
            E event = events.get(i);
            BlockChangeReader.Change change = reader.change(event);
            if (change == BlockChangeReader.Change.NONE) {
                continue;
            }
            long fp = reader.fingerprint(event);
            if (fp == 0) {
                throw new IllegalArgumentException("fingerprint 0 for event " + i + " (" + event + "): "
                        + "use Fingerprints.of, which never returns 0");
            }
            fps[i] = fp;
            kinds[i] = (byte) (change == BlockChangeReader.Change.ADDED ? 1 : -1);
        }
        int waiting;
        synchronized (lock) {
            for (int i = 0; i < n; i++) {
                if (kinds[i] > 0) {
                    added(fps[i]);
                } else if (kinds[i] < 0) {
                    removed(fps[i]);
                }
            }
            waiting = pending.size();
        }
        signalIfFull(waiting);
    }

    /** Fingerprint form of {@link #publish}: {@code added} first, then {@code removed}. */
    public void publishFingerprints(long[] added, long[] removed) {
        for (long fp : added) {
            requireFingerprint(fp);
        }
        for (long fp : removed) {
            requireFingerprint(fp);
        }
        int waiting;
        synchronized (lock) {
            for (long fp : added) {
                added(fp);
            }
            for (long fp : removed) {
                removed(fp);
            }
            waiting = pending.size();
        }
        signalIfFull(waiting);
    }

    /** Where the sent batches go: the flusher tells each to its range's entity. */
    @FunctionalInterface
    public interface Sink {
        void send(int range, BlockRange.Command.Publish publish);
    }

    /**
     * Sends everything pending to {@code sink}, at most {@code maxFingerprintsPerMessage} fingerprints per message,
     * numbered per range. Flusher only.
     */
    public void drain(Sink sink) {
        FingerprintTable batch;
        boolean[] gaps = null;
        synchronized (lock) {
            flushRequested.set(false);
            batch = pending;
            if (!batch.isEmpty()) {
                pending = new FingerprintTable();
            }
            for (int r = 0; r < rangeCount; r++) {
                if (gap[r]) {
                    if (gaps == null) {
                        gaps = new boolean[rangeCount];
                    }
                    gaps[r] = true;
                    gap[r] = false;
                }
            }
        }
        if (batch.isEmpty() && gaps == null) {
            return;
        }
        int[] adds = new int[rangeCount];
        int[] removes = new int[rangeCount];
        batch.forEach((fp, change) -> {
            int r = Fingerprints.rangeOf(fp, rangeCount);
            if (change > 0) {
                adds[r]++;
            } else {
                removes[r]++;
            }
        });
        long[][] added = new long[rangeCount][];
        long[][] removed = new long[rangeCount][];
        for (int r = 0; r < rangeCount; r++) {
            added[r] = adds[r] == 0 ? EMPTY : new long[adds[r]];
            removed[r] = removes[r] == 0 ? EMPTY : new long[removes[r]];
        }
        int[] a = new int[rangeCount];
        int[] d = new int[rangeCount];
        batch.forEach((fp, change) -> {
            int r = Fingerprints.rangeOf(fp, rangeCount);
            if (change > 0) {
                added[r][a[r]++] = fp;
            } else {
                removed[r][d[r]++] = fp;
            }
        });
        for (int r = 0; r < rangeCount; r++) {
            boolean skip = gaps != null && gaps[r];
            if (added[r].length == 0 && removed[r].length == 0 && !skip) {
                continue;
            }
            sendRange(r, added[r], removed[r], skip, sink);
        }
    }

    private void sendRange(int range, long[] added, long[] removed, boolean skip, Sink sink) {
        long seq = lastSequence.get(range) + (skip ? 1 : 0);
        int total = added.length + removed.length;
        int offset = 0;
        do {
            int take = Math.min(maxPerMessage, total - offset);
            int addFrom = Math.min(offset, added.length);
            int addTo = Math.min(offset + take, added.length);
            int remFrom = Math.max(0, offset - added.length);
            int remTo = Math.max(0, offset + take - added.length);
            seq++;
            lastSequence.set(range, seq);
            BlockRange.Command.Publish p = new BlockRange.Command.Publish(
                    selfNode, incarnation, seq, slice(added, addFrom, addTo), slice(removed, remFrom, remTo));
            messages.incrementAndGet();
            changesSent.addAndGet(take);
            sink.send(range, p);
            offset += take;
        } while (offset < total);
    }

    /** Called (from a {@link #publish} thread) when enough changes are pending to flush before the interval ends. */
    public void onFlushNeeded(Runnable signal) {
        this.flushSignal = signal;
    }

    @Override
    public long lastSequence(int range) {
        return lastSequence.get(range);
    }

    /** This node's published holdings in {@code range}: exactly what the counts say it holds. */
    @Override
    public long[] fingerprintsInRange(int range, int rangeCount) {
        synchronized (lock) {
            if (rangeCount == this.rangeCount) {
                return held[range].keys();
            }
            long[] out = new long[0];
            int n = 0;
            for (FingerprintTable t : held) {
                long[] keys = t.keys();
                for (long fp : keys) {
                    if (Fingerprints.rangeOf(fp, rangeCount) == range) {
                        if (n == out.length) {
                            out = Arrays.copyOf(out, Math.max(16, 2 * n));
                        }
                        out[n++] = fp;
                    }
                }
            }
            return Arrays.copyOf(out, n);
        }
    }

    /** Changes dropped because {@code max-pending} fingerprints were already waiting (each healed by a resync). */
    public long droppedChanges() {
        return dropped.get();
    }

    /** Removals of a fingerprint this node had not published (a store event for a block never sealed here). */
    public long unmatchedRemovals() {
        return unmatchedRemovals.get();
    }

    /** Publish messages sent. */
    public long messagesSent() {
        return messages.get();
    }

    /** Fingerprint changes sent. */
    public long changesSent() {
        return changesSent.get();
    }

    /** Distinct fingerprints this node holds, as published. */
    public long heldFingerprints() {
        synchronized (lock) {
            long n = 0;
            for (FingerprintTable t : held) {
                n += t.size();
            }
            return n;
        }
    }

    /** Changes waiting for the next flush. */
    public int pendingChanges() {
        synchronized (lock) {
            return pending.size();
        }
    }

    private static final long[] EMPTY = new long[0];

    private static long[] slice(long[] a, int from, int to) {
        return from == to ? EMPTY : (from == 0 && to == a.length ? a : Arrays.copyOfRange(a, from, to));
    }

    private static void requireFingerprint(long fp) {
        if (fp == 0) {
            throw new IllegalArgumentException("fingerprint 0 is reserved; use Fingerprints.of");
        }
    }

    private void added(long fp) {
        int r = Fingerprints.rangeOf(fp, rangeCount);
        if (held[r].add(fp, 1) == 1) {
            changed(fp, r, 1);
        }
    }

    private void removed(long fp) {
        int r = Fingerprints.rangeOf(fp, rangeCount);
        if (held[r].get(fp) == 0) {
            unmatchedRemovals.incrementAndGet();
            return;
        }
        if (held[r].add(fp, -1) == 0) {
            changed(fp, r, -1);
        }
    }

    /** The node's holding of {@code fp} flipped ({@code +1} now held, {@code -1} gone). */
    private void changed(long fp, int range, int direction) {
        if (pending.get(fp) != 0) {
            pending.remove(fp); // it flipped back before the flush: the directory already has it right
            return;
        }
        if (pending.size() >= maxPending) {
            dropped.incrementAndGet();
            gap[range] = true;
            return;
        }
        pending.put(fp, direction);
    }

    private void signalIfFull(int waiting) {
        if (waiting >= flushThreshold && flushRequested.compareAndSet(false, true)) {
            flushSignal.run();
        }
    }
}
