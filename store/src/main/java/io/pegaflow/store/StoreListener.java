package io.pegaflow.store;

import java.util.List;

/**
 * Receives the store's {@link StoreEvent}s in batches, in the order they happened, on the store's event thread
 * ({@code pegaflow-store-events}), never under the store's lock: it may call back into the store. One call at a time.
 * It should be quick (hand the batch on, e.g. to an actor): while it runs, later events queue up. An exception it
 * throws is caught and counted ({@link StoreCounters#listenerFailures()}); delivery goes on with the next batch.
 */
@FunctionalInterface
public interface StoreListener {
    /** A listener that ignores everything; the store's default (it then records no events at all). */
    StoreListener NONE = batch -> {};

    /**
     * @param batch one or more events, oldest first; the list is the listener's to keep (the store never touches it
     *     again) and is unmodifiable
     */
    void onEvents(List<StoreEvent> batch);
}
