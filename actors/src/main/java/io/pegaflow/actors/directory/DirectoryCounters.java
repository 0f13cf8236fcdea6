package io.pegaflow.actors.directory;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * What this node's directory does, for the node's metrics (sampled by a timer; the actors only add): the ranges it
 * hosts and their entries, rebuilds, lookups, and the messages ranges ignored or resynchronised. Thread-safe.
 */
public final class DirectoryCounters {
    private final LongAdder hostedRanges = new LongAdder();
    private final LongAdder entries = new LongAdder();
    private final LongAdder rebuilds = new LongAdder();
    private final AtomicLong lastRebuildMillis = new AtomicLong(-1);
    private final LongAdder lookups = new LongAdder();
    private final LongAdder lookedUpFingerprints = new LongAdder();
    private final LongAdder ignoredMessages = new LongAdder();
    private final LongAdder resyncs = new LongAdder();
    private final LongAdder askedAgain = new LongAdder();

    /** Ranges running on this node now. */
    public long hostedRanges() {
        return hostedRanges.sum();
    }

    /** Directory entries (fingerprints with a holder) in the ranges running on this node. */
    public long entries() {
        return entries.sum();
    }

    /** Ranges that started on this node and became complete. */
    public long rebuilds() {
        return rebuilds.sum();
    }

    /** How long the last of them took from start to complete, -1 before the first. */
    public long lastRebuildMillis() {
        return lastRebuildMillis.get();
    }

    /** Lookup messages answered by ranges on this node, and the fingerprints in them. */
    public long lookups() {
        return lookups.sum();
    }

    public long lookedUpFingerprints() {
        return lookedUpFingerprints.sum();
    }

    /** Publishes and answers the ranges here ignored (untrusted incarnation, duplicate, stale answer). */
    public long ignoredMessages() {
        return ignoredMessages.sum();
    }

    /** Times a range here asked a node for its holdings again after a gap in its publishes. */
    public long resyncs() {
        return resyncs.sum();
    }

    /** Range lookups this node's relay sent again because the range had not answered (a move drops messages). */
    public long lookupsAskedAgain() {
        return askedAgain.sum();
    }

    void rangeStarted() {
        hostedRanges.increment();
    }

    void rangeStopped(long entriesLeft) {
        hostedRanges.decrement();
        entries.add(-entriesLeft);
    }

    void entriesChanged(long delta) {
        entries.add(delta);
    }

    void rebuilt(long millis) {
        rebuilds.increment();
        lastRebuildMillis.set(millis);
    }

    void lookedUp(int fingerprints) {
        lookups.increment();
        lookedUpFingerprints.add(fingerprints);
    }

    void ignored(long delta) {
        ignoredMessages.add(delta);
    }

    void resynced(long delta) {
        resyncs.add(delta);
    }

    void askedAgain() {
        askedAgain.increment();
    }
}
