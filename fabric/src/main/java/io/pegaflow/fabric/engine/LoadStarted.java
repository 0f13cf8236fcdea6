package io.pegaflow.fabric.engine;

/**
 * A Load accepted: the blocks that cannot be loaded (missing here and not fetched), and how many are being copied;
 * the flag reports the end. For a load with {@code replyWhenDone}, {@code done} holds the end as well.
 */
public record LoadStarted(int[] failedBlockIds, int scheduled, LoadDone done) {
    public LoadStarted(int[] failedBlockIds, int scheduled) {
        this(failedBlockIds, scheduled, null);
    }

    /**
     * How a load ended: what its flag says.
     *
     * @param failed true for the flag's FAILED state (some block did not load)
     */
    public record LoadDone(boolean failed, long loaded, long failedBlocks, long durationNs) {}
}
