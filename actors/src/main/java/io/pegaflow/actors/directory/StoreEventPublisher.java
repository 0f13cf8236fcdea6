package io.pegaflow.actors.directory;

import io.pegaflow.store.StoreEvent;
import io.pegaflow.store.StoreListener;
import java.util.List;

/**
 * The store's listener that feeds the directory: SEALED → the node holds the block; EVICTED, DROPPED, CLEARED → it no
 * longer does. Runs on the store's event thread and only hands the batch to {@link DirectoryPublisher#publish} (which
 * never blocks), so nothing on the save path waits for the directory.
 */
public final class StoreEventPublisher implements StoreListener {
    private final DirectoryPublisher publisher;
    private final BlockChangeReader<StoreEvent> reader = new StoreEventReader();

    public StoreEventPublisher(DirectoryPublisher publisher) {
        this.publisher = publisher;
    }

    @Override
    public void onEvents(List<StoreEvent> batch) {
        publisher.publish(batch, reader);
    }

    /** Reads store events; remembers the last namespace's seed (a batch is usually one namespace). */
    static final class StoreEventReader implements BlockChangeReader<StoreEvent> {
        private record Seed(String namespace, long seed) {}

        private volatile Seed last = new Seed("", Fingerprints.namespaceSeed(""));

        @Override
        public Change change(StoreEvent event) {
            return event.kind() == StoreEvent.Kind.SEALED ? Change.ADDED : Change.REMOVED;
        }

        @Override
        public long fingerprint(StoreEvent event) {
            String namespace = event.key().namespace();
            Seed seed = last;
            if (!seed.namespace().equals(namespace)) {
                seed = new Seed(namespace, Fingerprints.namespaceSeed(namespace));
                last = seed;
            }
            return Fingerprints.of(seed.seed(), event.key().hash());
        }
    }
}
