package io.pegaflow.fabric.engine;

import io.pegaflow.store.BlockEntry;
import io.pegaflow.store.NamespaceLayout;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;

/**
 * The load pipeline's second stage: blocks this node lacks, fetched from other nodes before the copy. Where [9 of
 * 12] plugs in: an implementation asks the block directory which nodes hold the hashes, has the transfer
 * coordinator lease them on the holder, reserve pool space here and move the bytes over the transport, commits them
 * into the local store, pins them for this load and completes the stage. Until then {@link #NONE} fetches nothing.
 *
 * <p>Threading: called on whichever engine thread finished pinning (a gRPC handler's or a mapping thread) and must
 * return at once, doing its work elsewhere; the pipeline continues on the thread that completes the stage, so
 * complete it from a thread that may submit work (never from inside a store or actor lock).
 */
@FunctionalInterface
public interface RemoteBlockSource {
    /**
     * Fetches blocks of {@code layout}'s namespace that this node lacks (the layout sizes the blocks reserved here).
     *
     * @param hashes the hashes the local store missed, in request order (do not modify)
     * @return per hash, the local entry now holding the block, pinned for this load (the pipeline unpins it with the
     *     rest), or null where it was not fetched; a failed stage fails the load (its flag ends failed) and must leave
     *     nothing pinned
     */
    CompletionStage<BlockEntry[]> fetchMissing(NamespaceLayout layout, byte[][] hashes);

    /** Fetches nothing and completes at once: a single node, or a fabric without a directory yet. */
    RemoteBlockSource NONE = (layout, hashes) -> CompletableFuture.completedFuture(new BlockEntry[hashes.length]);
}
