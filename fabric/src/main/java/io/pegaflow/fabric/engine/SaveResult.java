package io.pegaflow.fabric.engine;

/**
 * What a Save did.
 *
 * @param stored blocks that got new slots from this request
 * @param skipped blocks already sealed, or whose slots were already present
 * @param sealed blocks that became visible because of this request
 */
public record SaveResult(int stored, int skipped, int sealed) {}
