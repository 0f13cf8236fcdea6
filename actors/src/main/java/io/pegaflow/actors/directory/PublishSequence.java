package io.pegaflow.actors.directory;

/** The number of the last publish this node sent to each range: the label of a holdings answer (see {@link RangeState}). */
@FunctionalInterface
public interface PublishSequence {
    /** The last sequence number sent to {@code range} (0 before the first); thread-safe. */
    long lastSequence(int range);
}
