package io.pegaflow.actors.directory;

import java.util.Objects;
import java.util.function.Function;
import java.util.function.ToLongFunction;

/**
 * How the node's store events read as directory changes, so that {@link DirectoryPublisher} takes the store's own
 * event objects without a copy per event: e.g. SEALED → {@link Change#ADDED}; EVICTED, DROPPED, CLEARED → {@link
 * Change#REMOVED}; the fingerprint {@link Fingerprints#of(String, byte[])} of the event's (namespace, hash).
 */
public interface BlockChangeReader<E> {
    /** What an event means for this node's holdings. */
    enum Change {
        /** The node now holds the sealed block. */
        ADDED,
        /** The node no longer holds the block. */
        REMOVED,
        /** Not a holdings change (ignored). */
        NONE
    }

    Change change(E event);

    long fingerprint(E event);

    static <E> BlockChangeReader<E> of(Function<? super E, Change> change, ToLongFunction<? super E> fingerprint) {
        Objects.requireNonNull(change, "change");
        Objects.requireNonNull(fingerprint, "fingerprint");
        return new BlockChangeReader<>() {
            @Override
            public Change change(E event) {
                return change.apply(event);
            }

            @Override
            public long fingerprint(E event) {
                return fingerprint.applyAsLong(event);
            }
        };
    }
}
