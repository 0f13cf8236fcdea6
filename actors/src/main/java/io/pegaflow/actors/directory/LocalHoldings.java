package io.pegaflow.actors.directory;

/**
 * A node's own sealed blocks, as the directory sees them: the node implements it over its store (or uses
 * {@link DirectoryPublisher}, which tracks exactly what it has published). {@link HoldingsProvider} calls it when a
 * range rebuilds, on the holdings dispatcher (never on an actor's thread), so it may take a while and may lock the
 * store briefly; it must be safe to call from any thread.
 */
@FunctionalInterface
public interface LocalHoldings {
    /**
     * Fingerprints ({@link Fingerprints#of}) of every sealed block this node holds whose range ({@link
     * Fingerprints#rangeOf}) is {@code range} among {@code rangeCount}; each at most once, any order.
     */
    long[] fingerprintsInRange(int range, int rangeCount);
}
