/**
 * The cluster-sharded block directory: which nodes hold each sealed block.
 *
 * <p>A block's key is a 64-bit {@link io.pegaflow.actors.directory.Fingerprints fingerprint}; the fingerprint space is
 * cut into {@code directoryRanges} fixed ranges, each a {@link io.pegaflow.actors.directory.BlockRange} sharding
 * entity holding fingerprint → holder bitmask in a primitive {@link io.pegaflow.actors.directory.FingerprintTable}.
 * Nodes publish seals and removals through a {@link io.pegaflow.actors.directory.DirectoryPublisher} (batched,
 * never blocking the store), serve rebuilds through a {@link io.pegaflow.actors.directory.HoldingsProvider}, and ask
 * through a {@link io.pegaflow.actors.directory.DirectoryClient}; {@link io.pegaflow.actors.directory.DirectoryNode}
 * wires one node. The consistency rules are on {@link io.pegaflow.actors.directory.RangeState}.
 *
 * <p>Threading: actors (BlockRange, HoldingsProvider, PublishFlusher, RangeKeeper) own their state and never block;
 * LocalHoldings scans run on {@code pegaflow.directory.holdings-dispatcher}. FingerprintTable and RangeState are not
 * thread-safe (one owner each), except {@code RangeState.readLookup} (and the table's {@code getRacy} under it): the
 * LookupRelay reads a local range's table from its own thread optimistically, validated against a StampedLock the
 * owning entity takes around each change (readers never take it, so the entity never waits). DirectoryPublisher
 * and DirectoryClient are thread-safe and never block the caller beyond a short internal lock (publisher). LocalRanges (atomic array) and DirectorySerializer (stateless, Pekko calls it
 * from Artery's threads) are thread-safe. LookupRelay's lookups in flight are the relay actor's own state.
 * Fingerprints, DirectoryNodes, DirectorySettings and LocateResult are immutable.
 */
package io.pegaflow.actors.directory;
