package io.pegaflow.actors.directory;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.StampedLock;

/**
 * What one {@link BlockRange} knows: holders per fingerprint of its slice, and per node which incarnation it trusts
 * and how far that node's publishes have been applied. Single-threaded logic (the entity owns it), so the ordering
 * rules can be tested without a cluster; the one exception is {@link #readLookup}, which any thread may call (the
 * node's {@link LookupRelay} answers a host's share of a locate from the tables of its ranges in one handler).
 * Public for the memory benchmark ({@code bench/}); nothing else outside this package should need it.
 *
 * <h2>The rules</h2>
 *
 * <ol>
 *   <li><b>Whose holdings.</b> Per node index the range trusts one incarnation (the member's unique address id) —
 *       the one its own cluster membership view shows as Joining, WeaklyUp or Up. Messages from any other incarnation
 *       are ignored. When that member leaves (Leaving, Exiting, Down, Removed) or a new incarnation appears, the
 *       node's bit is cleared in every entry: a departed node's holdings are purged, and the purge cannot be lost
 *       because it is derived from membership state that every node converges to (a range that starts later never
 *       learns the departed node at all).
 *   <li><b>Sequence.</b> A node numbers its publishes to each range 1, 2, 3, … (per incarnation). A live node's
 *       publish {@code s} is applied when {@code s = applied + 1}, ignored when {@code s <= applied} (a duplicate),
 *       and when {@code s > applied + 1} a publish was lost (or the publisher dropped changes on overflow, which
 *       leaves a deliberate gap): the publish is applied and the node's holdings are asked for again.
 *   <li><b>Snapshot and publishes.</b> A node's holdings answer ({@code Holdings}) carries a label {@code L}: the
 *       number of the last publish the node had sent to this range when it read its store. Publishes up to {@code L}
 *       describe changes the store already reflects; publishes after {@code L} may or may not be reflected. So the
 *       answer <em>replaces</em> the node's bit in every entry, publishes {@code <= L} are then ignored whenever they
 *       arrive, and publishes {@code > L} are applied on top, in order — those received while waiting for the answer
 *       were applied at once (so lookups see them) and are logged, and the log is replayed over the answer.
 *       Re-applying a change the snapshot already reflects is a no-op (adding a present bit, clearing an absent
 *       one), and for every block the last change applied is the store's latest, so the result is the store's
 *       state. A snapshot never overwrites a newer publish, and no publish is lost: if the log overflowed, or the
 *       replay finds a gap, the range asks for another answer.
 *   <li><b>Complete.</b> A lookup is {@code complete} when every Up node's holdings have been applied (and the
 *       range has seen the membership), or a node has not answered within {@code rebuild-timeout} (it is still asked
 *       again every {@code snapshot-retry-interval}).
 * </ol>
 */
public final class RangeState {
    public enum Phase {
        /** No trusted incarnation: the node is not a member (or has left). */
        ABSENT,
        /** Member; its holdings have been asked for and not yet applied. */
        AWAITING,
        /** Member; holdings applied and publishes in sequence. */
        LIVE
    }

    private final int range;
    private final int rangeCount;
    private final int nodeCount;
    private final long rebuildTimeoutNanos;
    private final int logLimit;

    private final HolderTable holders = new HolderTable();
    /**
     * Taken (exclusively, by the owner, never contended by readers) around every change that a lookup can see: the
     * table and what {@link #complete} reads. {@link #readLookup} only reads optimistically and validates.
     */
    private final StampedLock writes = new StampedLock();

    private final long[] incarnation;
    private final Phase[] phase;
    private final boolean[] up;
    private final long[] applied;
    private final long[] requestId;
    private final long[] requestedAtNanos;
    private final long[] awaitingSinceNanos;
    private final int[] nextChunk;
    private final List<List<BlockRange.Command.Publish>> log;
    private final int[] loggedFingerprints;
    private final long[] unloggedUpTo;
    private boolean membershipKnown;

    private long ignoredMessages;
    private long resyncs;
    private long snapshotsApplied;

    public RangeState(int range, int rangeCount, int nodeCount, long rebuildTimeoutNanos, int logLimit) {
        if (range < 0 || range >= rangeCount) {
            throw new IllegalArgumentException("range " + range + " outside [0, " + rangeCount + ")");
        }
        if (nodeCount < 1 || nodeCount > DirectoryNodes.MAX_NODES) {
            throw new IllegalArgumentException("nodeCount " + nodeCount + " outside [1, 64]");
        }
        this.range = range;
        this.rangeCount = rangeCount;
        this.nodeCount = nodeCount;
        this.rebuildTimeoutNanos = rebuildTimeoutNanos;
        this.logLimit = logLimit;
        incarnation = new long[nodeCount];
        phase = new Phase[nodeCount];
        java.util.Arrays.fill(phase, Phase.ABSENT);
        up = new boolean[nodeCount];
        applied = new long[nodeCount];
        requestId = new long[nodeCount];
        requestedAtNanos = new long[nodeCount];
        awaitingSinceNanos = new long[nodeCount];
        nextChunk = new int[nodeCount];
        log = new ArrayList<>(nodeCount);
        for (int i = 0; i < nodeCount; i++) {
            log.add(new ArrayList<>());
        }
        loggedFingerprints = new int[nodeCount];
        unloggedUpTo = new long[nodeCount];
    }

    public int range() {
        return range;
    }

    // ---- membership ----

    /** The range has read the cluster's membership (until then nothing it answers is complete). */
    public void membershipKnown() {
        long stamp = writes.writeLock();
        membershipKnown = true;
        writes.unlockWrite(stamp);
    }

    /**
     * Member {@code uid} is node {@code node} (Joining, WeaklyUp: {@code up} false; Up: true). A new incarnation
     * replaces the old one's holdings and is asked for its own.
     */
    public void memberPresent(int node, long uid, boolean isUp, long nowNanos) {
        long stamp = writes.writeLock();
        try {
            memberPresentLocked(node, uid, isUp, nowNanos);
        } finally {
            writes.unlockWrite(stamp);
        }
    }

    private void memberPresentLocked(int node, long uid, boolean isUp, long nowNanos) {
        if (!validNode(node) || uid == 0) {
            return;
        }
        if (incarnation[node] != uid) {
            if (incarnation[node] != 0) {
                holders.clearBits(DirectoryNodes.bit(node));
            }
            incarnation[node] = uid;
            startAwaiting(node, nowNanos);
            applied[node] = 0;
        }
        if (isUp && !up[node] && phase[node] == Phase.AWAITING) {
            awaitingSinceNanos[node] = nowNanos; // the rebuild timeout counts from when it is awaited
        }
        up[node] = isUp;
    }

    /** Member {@code uid} of node {@code node} is leaving or gone: its holdings are purged. */
    public void memberGone(int node, long uid) {
        long stamp = writes.writeLock();
        try {
            memberGoneLocked(node, uid);
        } finally {
            writes.unlockWrite(stamp);
        }
    }

    private void memberGoneLocked(int node, long uid) {
        if (!validNode(node) || incarnation[node] != uid || uid == 0) {
            return;
        }
        holders.clearBits(DirectoryNodes.bit(node));
        incarnation[node] = 0;
        phase[node] = Phase.ABSENT;
        up[node] = false;
        clearLog(node);
    }

    // ---- publishes and holdings ----

    /** Applies a publish by the rules above. */
    public void onPublish(BlockRange.Command.Publish p, long nowNanos) {
        long stamp = writes.writeLock();
        try {
            onPublishLocked(p, nowNanos);
        } finally {
            writes.unlockWrite(stamp);
        }
    }

    private void onPublishLocked(BlockRange.Command.Publish p, long nowNanos) {
        int node = p.node();
        if (!validNode(node) || incarnation[node] != p.incarnation() || phase[node] == Phase.ABSENT) {
            ignoredMessages++;
            return;
        }
        long seq = p.sequence();
        if (phase[node] == Phase.LIVE) {
            if (seq <= applied[node]) {
                ignoredMessages++;
                return;
            }
            apply(node, p);
            if (seq != applied[node] + 1) {
                resyncs++;
                startAwaiting(node, nowNanos);
                logPublish(node, p);
            }
            applied[node] = seq;
            return;
        }
        // AWAITING: applied now so lookups see it, and logged for the replay over the coming snapshot.
        apply(node, p);
        logPublish(node, p);
    }

    /** Applies one chunk of a node's holdings answer by the rules above. */
    public void onHoldings(BlockRange.Command.Holdings h, long nowNanos) {
        long stamp = writes.writeLock();
        try {
            onHoldingsLocked(h, nowNanos);
        } finally {
            writes.unlockWrite(stamp);
        }
    }

    private void onHoldingsLocked(BlockRange.Command.Holdings h, long nowNanos) {
        int node = h.node();
        if (!validNode(node)
                || incarnation[node] != h.incarnation()
                || phase[node] != Phase.AWAITING
                || h.requestId() != requestId[node]) {
            ignoredMessages++;
            return;
        }
        if (h.chunk() != nextChunk[node]) {
            // A chunk went missing: this answer cannot be used; ask again.
            requestId[node] = 0;
            return;
        }
        long bit = DirectoryNodes.bit(node);
        if (h.chunk() == 0) {
            holders.clearBits(bit);
        }
        for (long fp : h.fingerprints()) {
            if (inRange(fp)) {
                holders.or(fp, bit);
            }
        }
        nextChunk[node]++;
        if (!h.last()) {
            return;
        }
        snapshotsApplied++;
        long seq = h.sequence();
        boolean gap = unloggedUpTo[node] > seq;
        for (BlockRange.Command.Publish p : log.get(node)) {
            if (p.sequence() <= seq) {
                continue;
            }
            if (p.sequence() != seq + 1) {
                gap = true;
            }
            apply(node, p);
            seq = p.sequence();
        }
        clearLog(node);
        applied[node] = seq;
        if (gap) {
            resyncs++;
            startAwaiting(node, nowNanos);
        } else {
            phase[node] = Phase.LIVE;
            requestId[node] = 0;
        }
    }

    // ---- holdings requests ----

    /** Whether node {@code node}'s holdings should be asked for now (none asked yet, or the last ask is stale). */
    public boolean wantsHoldings(int node, long nowNanos, long retryNanos) {
        return phase[node] == Phase.AWAITING
                && (requestId[node] == 0 || nowNanos - requestedAtNanos[node] >= retryNanos);
    }

    /** Records that request {@code id} went to node {@code node}; answers to older requests are ignored from now. */
    public void requested(int node, long id, long nowNanos) {
        requestId[node] = id;
        requestedAtNanos[node] = nowNanos;
        nextChunk[node] = 0;
    }

    long incarnation(int node) {
        return incarnation[node];
    }

    // ---- lookups ----

    /** Holder mask of each fingerprint into {@code masks} (0: no holder known). */
    public void lookup(long[] fingerprints, long[] masks) {
        for (int i = 0; i < fingerprints.length; i++) {
            long fp = fingerprints[i];
            masks[i] = fp == 0 ? 0 : holders.get(fp);
        }
    }

    /** {@link #readLookup}: the masks are a consistent read and the range is complete. */
    static final int READ_COMPLETE = 1;
    /** {@link #readLookup}: the masks are a consistent read; the range is not complete (rebuilding). */
    static final int READ_INCOMPLETE = 0;
    /** {@link #readLookup}: no consistent read (the owner was changing the table); the masks were zeroed. */
    static final int READ_FAILED = -1;

    private static final int READ_ATTEMPTS = 3;

    /**
     * Holder masks of the fingerprints at positions {@code [from, to)} into the same positions of {@code masks}, from
     * <b>any thread</b> while the owner keeps changing the state: an optimistic read of the table (and of what {@link
     * #complete} reads) validated against {@link #writes}, retried a few times, never blocking. Position {@code p} is
     * index {@code p} of both arrays, or {@code order[p]} when {@code order} is given (a caller whose fingerprints of
     * one range are spread over its request). A result other than {@link #READ_FAILED} is exactly what a {@link
     * BlockRange.Command.Lookup} handled at one instant between the read's start and end would answer: no mask torn,
     * no entry the table held missed. The reads of a changing table can see anything (a half-moved entry, an array
     * being filled by a resize), so the probe is bounded and takes its length from the array it reads; the validation
     * throws all of that away.
     *
     * @return {@link #READ_COMPLETE}, {@link #READ_INCOMPLETE} or {@link #READ_FAILED} (the masks read zeroed)
     */
    int readLookup(long[] fingerprints, int[] order, int from, int to, long[] masks, long nowNanos) {
        for (int attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
            long stamp = writes.tryOptimisticRead();
            if (stamp == 0) {
                break; // the owner is writing now: the caller asks the entity instead of spinning
            }
            for (int p = from; p < to; p++) {
                int i = order == null ? p : order[p];
                long fp = fingerprints[i];
                masks[i] = fp == 0 ? 0 : holders.getRacy(fp);
            }
            boolean complete = complete(nowNanos);
            if (writes.validate(stamp)) {
                return complete ? READ_COMPLETE : READ_INCOMPLETE;
            }
        }
        for (int p = from; p < to; p++) {
            masks[order == null ? p : order[p]] = 0;
        }
        return READ_FAILED;
    }

    /** Whether a lookup answered now reflects every Up node's holdings (rule 4). */
    public boolean complete(long nowNanos) {
        if (!membershipKnown) {
            return false;
        }
        for (int i = 0; i < nodeCount; i++) {
            if (up[i] && phase[i] == Phase.AWAITING && nowNanos - awaitingSinceNanos[i] < rebuildTimeoutNanos) {
                return false;
            }
        }
        return true;
    }

    /** Whether some member's holdings are still awaited (the entity keeps its retry timer running). */
    boolean anyAwaiting() {
        for (Phase p : phase) {
            if (p == Phase.AWAITING) {
                return true;
            }
        }
        return false;
    }

    /** Up nodes whose holdings are applied. */
    int liveNodes() {
        int n = 0;
        for (int i = 0; i < nodeCount; i++) {
            if (phase[i] == Phase.LIVE) {
                n++;
            }
        }
        return n;
    }

    public Phase phase(int node) {
        return phase[node];
    }

    public int entries() {
        return holders.size();
    }

    public long tableBytes() {
        return holders.arrayBytes();
    }

    /** Slots of the holder table. */
    public long tableCapacity() {
        return holders.capacity();
    }

    /** Bytes of the holder table's largest array. */
    public long largestArrayBytes() {
        return holders.largestArrayBytes();
    }

    long ignoredMessages() {
        return ignoredMessages;
    }

    long resyncs() {
        return resyncs;
    }

    long snapshotsApplied() {
        return snapshotsApplied;
    }

    // ---- internals ----

    private void startAwaiting(int node, long nowNanos) {
        phase[node] = Phase.AWAITING;
        awaitingSinceNanos[node] = nowNanos;
        requestId[node] = 0;
        clearLog(node);
    }

    private void apply(int node, BlockRange.Command.Publish p) {
        long bit = DirectoryNodes.bit(node);
        for (long fp : p.added()) {
            if (inRange(fp)) {
                holders.or(fp, bit);
            }
        }
        for (long fp : p.removed()) {
            if (inRange(fp)) {
                holders.andNot(fp, bit);
            }
        }
    }

    private void logPublish(int node, BlockRange.Command.Publish p) {
        int n = p.added().length + p.removed().length;
        if (loggedFingerprints[node] + (long) n > logLimit) {
            unloggedUpTo[node] = Math.max(unloggedUpTo[node], p.sequence());
            return;
        }
        log.get(node).add(p);
        loggedFingerprints[node] += n;
    }

    private void clearLog(int node) {
        log.get(node).clear();
        loggedFingerprints[node] = 0;
        unloggedUpTo[node] = 0;
    }

    private boolean inRange(long fp) {
        return fp != 0 && Fingerprints.rangeOf(fp, rangeCount) == range;
    }

    private boolean validNode(int node) {
        return node >= 0 && node < nodeCount;
    }
}
