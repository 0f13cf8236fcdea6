package io.pegaflow.fabric.engine;

/**
 * A Load accepted: the blocks that cannot be loaded (missing here and not fetched), and how many are being copied;
 * the flag reports the end.
 */
public record LoadStarted(int[] failedBlockIds, int scheduled) {}
