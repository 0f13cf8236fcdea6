package io.pegaflow.fabric.engine;

import java.util.Arrays;
import java.util.HashMap;

/**
 * Checks of the block lists, layer lists and flags that Save, Load and Query carry: on the caller's thread, before
 * anything changes; each refusal is INVALID_ARGUMENT naming the field. Stateless.
 */
final class BlockChecks {
    static final int MAX_HASH_BYTES = 64;

    private BlockChecks() {}

    static void checkBlocks(WorkerContext context, int[] blockIds, byte[][] hashes) {
        Limits.checkCount("blocks", blockIds.length, Limits.BLOCKS_PER_REQUEST);
        int numBlocks = context.numBlocks;
        for (int i = 0; i < blockIds.length; i++) {
            if (blockIds[i] < 0 || blockIds[i] >= numBlocks) {
                throw EngineException.invalid("blocks[" + i + "].block_id: " + Integer.toUnsignedString(blockIds[i])
                        + " is out of range 0.." + (numBlocks - 1));
            }
            checkHash("blocks[" + i + "].hash", hashes[i]);
        }
        HashMap<Integer, Integer> seen = new HashMap<>();
        for (int i = 0; i < blockIds.length; i++) {
            Integer previous = seen.putIfAbsent(blockIds[i], i);
            if (previous != null && !Arrays.equals(hashes[previous], hashes[i])) {
                throw EngineException.invalid("blocks[" + i + "].block_id: " + blockIds[i]
                        + " appears twice with different hashes (also blocks[" + previous + "])");
            }
        }
    }

    static void checkHash(String field, byte[] hash) {
        if (hash.length == 0 || hash.length > MAX_HASH_BYTES) {
            throw EngineException.invalid(
                    field + ": " + hash.length + " bytes; a hash has 1.." + MAX_HASH_BYTES + " bytes");
        }
    }

    /** The pool slots a save fills in each block: the given layers at the context's rank, or all its layers. */
    static int[] slotsFor(WorkerContext context, int[] layerIndices) {
        if (layerIndices.length == 0) {
            int[] slots = new int[context.layers.length];
            for (int i = 0; i < slots.length; i++) {
                slots[i] = context.layout.slotIndex(context.layers[i].layerIndex(), context.tpRank);
            }
            return slots;
        }
        Limits.checkCount("layer_indices", layerIndices.length, Limits.LAYERS);
        int[] slots = new int[layerIndices.length];
        for (int i = 0; i < layerIndices.length; i++) {
            if (context.layer(layerIndices[i]) == null) {
                throw EngineException.invalid("layer_indices[" + i + "]: layer "
                        + Integer.toUnsignedString(layerIndices[i]) + " is not registered by context " + context.id);
            }
            slots[i] = context.layout.slotIndex(layerIndices[i], context.tpRank);
        }
        for (int i = 0; i < slots.length; i++) {
            for (int j = 0; j < i; j++) {
                if (slots[i] == slots[j]) {
                    throw EngineException.invalid(
                            "layer_indices[" + i + "]: layer " + layerIndices[i] + " is listed twice");
                }
            }
        }
        return slots;
    }

    /** The flag's fields that need no file: the path is named, the offset is in range and 8-byte aligned. */
    static void checkFlag(String path, long offsetBytes) {
        if (path.isBlank()) {
            throw EngineException.invalid("flag.path: missing");
        }
        Limits.checkLength("flag.path", path, Limits.PATH_BYTES);
        if (offsetBytes < 0) {
            throw EngineException.invalid("flag.offset_bytes: " + Long.toUnsignedString(offsetBytes) + " is too large");
        }
        if (offsetBytes % 8 != 0) {
            throw EngineException.invalid("flag.offset_bytes: " + offsetBytes + " is not 8-byte aligned");
        }
    }

    static void checkQuery(PrefixQuery q) {
        if (q.namespace().isBlank()) {
            throw EngineException.invalid("namespace: missing");
        }
        Limits.checkLength("namespace", q.namespace(), Limits.NAMESPACE_BYTES);
        Limits.checkCount("hashes", q.hashes().length, Limits.BLOCKS_PER_REQUEST);
        for (int i = 0; i < q.hashes().length; i++) {
            checkHash("hashes[" + i + "]", q.hashes()[i]);
        }
        if (q.leaseTtlMs() < 0 || q.leaseTtlMs() > 600_000) {
            throw EngineException.invalid("lease_ttl_ms: " + q.leaseTtlMs() + " is out of range 0..600000");
        }
    }
}
