package io.pegaflow.fabric.engine;

import io.pegaflow.store.HashList;
import java.util.Arrays;

/**
 * Checks of the block lists, layer lists and flags that Save, Load and Query carry: on the caller's thread, before
 * anything changes; each refusal is INVALID_ARGUMENT naming the field. Stateless.
 */
final class BlockChecks {
    static final int MAX_HASH_BYTES = 64;

    private BlockChecks() {}

    static void checkBlocks(WorkerContext context, int[] blockIds, HashList hashes) {
        Limits.checkCount("blocks", blockIds.length, Limits.BLOCKS_PER_REQUEST);
        int numBlocks = context.numBlocks;
        for (int i = 0; i < blockIds.length; i++) {
            if (blockIds[i] < 0 || blockIds[i] >= numBlocks) {
                throw EngineException.invalid("blocks[" + i + "].block_id: " + Integer.toUnsignedString(blockIds[i])
                        + " is out of range 0.." + (numBlocks - 1));
            }
            int length = hashes.length(i);
            if (!isHashLength(length)) { // the field's name is built only for the refusal: nothing per block
                checkHash("blocks[" + i + "].hash", length);
            }
        }
        checkRepeatedIds(blockIds, hashes);
    }

    /**
     * A block id may repeat only with the same hash. Sorts (id, position) pairs: one array per request, no boxing.
     * Reports the first position that repeats an earlier id with another hash.
     */
    private static void checkRepeatedIds(int[] blockIds, HashList hashes) {
        int n = blockIds.length;
        if (n < 2) {
            return;
        }
        long[] byId = new long[n];
        for (int i = 0; i < n; i++) {
            byId[i] = ((long) blockIds[i] << 32) | i; // ids are checked non-negative
        }
        Arrays.sort(byId);
        int worst = -1;
        int worstFirst = -1;
        for (int k = 1, groupFirst = (int) byId[0]; k < n; k++) {
            int position = (int) byId[k];
            if ((byId[k] >>> 32) != (byId[k - 1] >>> 32)) {
                groupFirst = position;
            } else if ((worst < 0 || position < worst) && !hashes.sameHash(groupFirst, position)) {
                worst = position;
                worstFirst = groupFirst;
            }
        }
        if (worst >= 0) {
            throw EngineException.invalid("blocks[" + worst + "].block_id: " + blockIds[worst]
                    + " appears twice with different hashes (also blocks[" + worstFirst + "])");
        }
    }

    private static boolean isHashLength(int length) {
        return length > 0 && length <= MAX_HASH_BYTES;
    }

    static void checkHash(String field, int length) {
        if (!isHashLength(length)) {
            throw EngineException.invalid(field + ": " + length + " bytes; a hash has 1.." + MAX_HASH_BYTES + " bytes");
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
        Limits.checkCount("hashes", q.hashes().size(), Limits.BLOCKS_PER_REQUEST);
        for (int i = 0; i < q.hashes().size(); i++) {
            int length = q.hashes().length(i);
            if (!isHashLength(length)) {
                checkHash("hashes[" + i + "]", length);
            }
        }
        if (q.leaseTtlMs() < 0 || q.leaseTtlMs() > 600_000) {
            throw EngineException.invalid("lease_ttl_ms: " + q.leaseTtlMs() + " is out of range 0..600000");
        }
    }
}
