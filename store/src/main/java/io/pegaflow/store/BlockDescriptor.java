package io.pegaflow.store;

/**
 * Where a block's bytes lie in the pool, for a transport to read (a sealed or leased block) or write (an
 * {@link IncomingBlock}): {@code lengthBytes} bytes from {@code poolOffset} of {@link
 * io.pegaflow.store.pool.BlockPool#memory()}. Its slots follow one another as {@link NamespaceLayout} says. The
 * descriptor is a value: it stays true only while the block is kept in place (pinned by a lease or a load, or
 * reserved as incoming).
 */
public record BlockDescriptor(BlockKey key, long poolOffset, long lengthBytes) {}
