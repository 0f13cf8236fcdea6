package io.pegaflow.store;

/**
 * What {@link BlockStore#clearNamespace} did.
 *
 * @param clearedBlocks sealed, unpinned blocks removed (one {@link StoreEvent.Kind#CLEARED} event each)
 * @param pinnedBlocksKept sealed blocks kept because a lease or a load pins them
 */
public record ClearResult(int clearedBlocks, int pinnedBlocksKept) {}
