package io.pegaflow.store;

/**
 * A whole block reserved by {@link BlockStore#reserveIncoming} for bytes arriving from elsewhere (a cross-node
 * transfer). The transport writes {@link #descriptor()}'s bytes; nothing of the block is visible to queries or loads
 * until {@link BlockStore#commitIncoming} seals it, and {@link BlockStore#abortIncoming} frees it with nothing ever
 * visible. Exactly one of the two, once. Its state changes only under the store's lock.
 */
public final class IncomingBlock {
    enum State {
        RESERVED,
        COMMITTED,
        ABORTED
    }

    final BlockStore store;
    final BlockEntry entry;
    private final BlockDescriptor descriptor;
    State state = State.RESERVED;

    IncomingBlock(BlockStore store, BlockEntry entry) {
        this.store = store;
        this.entry = entry;
        this.descriptor = new BlockDescriptor(entry.key, entry.offset, entry.bytes);
    }

    /** Where the transport writes the block: pool offset and length. */
    public BlockDescriptor descriptor() {
        return descriptor;
    }

    public BlockKey key() {
        return descriptor.key();
    }

    @Override
    public String toString() {
        return "IncomingBlock[" + descriptor + "]";
    }
}
