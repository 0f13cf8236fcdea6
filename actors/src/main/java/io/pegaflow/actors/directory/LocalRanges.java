package io.pegaflow.actors.directory;

import java.util.concurrent.atomic.AtomicReferenceArray;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The {@link BlockRange} entities running on this node, by range: each entity enters itself when it starts and leaves
 * when it stops. The {@link LookupRelay} tells a range found here directly instead of through the sharding region
 * (which costs two more mailbox hops per range and was the largest cost of a relayed lookup once serialization was
 * cheap). A ref read just before its entity stops leads to a lost lookup, which the relay's timeout turns into an
 * incomplete answer, as for any range that does not answer. Thread-safe.
 */
final class LocalRanges {
    private final AtomicReferenceArray<ActorRef<BlockRange.Command>> refs;

    LocalRanges(int rangeCount) {
        refs = new AtomicReferenceArray<>(rangeCount);
    }

    /** The entity of {@code range} running on this node, or null. */
    ActorRef<BlockRange.Command> get(int range) {
        return refs.get(range);
    }

    void started(int range, ActorRef<BlockRange.Command> self) {
        refs.set(range, self);
    }

    /** Leaves the entry only if it is still {@code self} (a newer incarnation may have entered already). */
    void stopped(int range, ActorRef<BlockRange.Command> self) {
        refs.compareAndSet(range, self, null);
    }
}
