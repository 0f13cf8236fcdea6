package io.pegaflow.actors.directory;

import java.util.concurrent.atomic.AtomicReferenceArray;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The {@link BlockRange} entities running on this node, by range: each entity enters itself (its ref and its {@link
 * RangeState}, the read view) when it starts and leaves when it stops. The {@link LookupRelay} reads a range found
 * here through {@link RangeState#readLookup} in its own handler, and when that read is not a complete answer tells
 * the entity directly instead of through the sharding region (two more mailbox hops per range). An entry read just
 * before its entity stops leads to a read of a table nobody changes any more (it was current when the entity
 * stopped: a handoff holds the range's messages until the new host runs) or to a lost lookup, which the relay's
 * timeout turns into an incomplete answer, as for any range that does not answer. Thread-safe.
 */
final class LocalRanges {
    /** A running entity and its state (the state is safe to read only through {@link RangeState#readLookup}). */
    record Entry(ActorRef<BlockRange.Command> ref, RangeState view) {}

    private final AtomicReferenceArray<Entry> entries;

    LocalRanges(int rangeCount) {
        entries = new AtomicReferenceArray<>(rangeCount);
    }

    /** The entity of {@code range} running on this node, or null. */
    Entry get(int range) {
        return entries.get(range);
    }

    void started(int range, ActorRef<BlockRange.Command> self, RangeState view) {
        entries.set(range, new Entry(self, view));
    }

    /** Leaves the entry only if it is still {@code self}'s (a newer incarnation may have entered already). */
    void stopped(int range, ActorRef<BlockRange.Command> self) {
        Entry e = entries.get(range);
        if (e != null && e.ref().equals(self)) {
            entries.compareAndSet(range, e, null);
        }
    }
}
