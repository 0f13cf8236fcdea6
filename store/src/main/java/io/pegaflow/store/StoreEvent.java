package io.pegaflow.store;

import java.util.Objects;

/**
 * A change of the set of sealed (visible) blocks, as the block directory needs it. Only sealed blocks have events:
 * blocks still being filled, partial blocks that time out and incoming blocks that are aborted were never visible, so
 * nothing is said about them.
 *
 * @param kind what happened
 * @param key the block
 * @param lengthBytes the block's bytes ({@link NamespaceLayout#blockBytes()})
 */
public record StoreEvent(Kind kind, BlockKey key, long lengthBytes) {
    public enum Kind {
        /** The block became visible: the last slot of a save arrived, or an incoming block was committed. */
        SEALED,
        /** A sealed block was evicted (least recently used, or its slab emptied) to make room for other blocks. */
        EVICTED,
        /**
         * A sealed block left the store for a reason other than eviction or {@link BlockStore#clearNamespace}. No
         * operation of the store does this today; the kind exists so that a listener's handling stays complete when one
         * does (e.g. a block found damaged).
         */
        DROPPED,
        /** A sealed block was removed by {@link BlockStore#clearNamespace}. */
        CLEARED
    }

    public StoreEvent {
        Objects.requireNonNull(kind, "kind");
        Objects.requireNonNull(key, "key");
    }
}
