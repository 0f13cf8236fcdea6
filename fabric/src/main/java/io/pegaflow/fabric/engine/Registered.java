package io.pegaflow.fabric.engine;

/**
 * A registration accepted.
 *
 * @param blockBytes bytes of one whole block (all layers, all TP ranks) in the pool
 * @param slotBytes bytes this context contributes to one block
 */
public record Registered(String contextId, long blockBytes, long slotBytes) {}
