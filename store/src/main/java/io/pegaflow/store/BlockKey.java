package io.pegaflow.store;

import java.util.Arrays;
import java.util.HexFormat;

/** A block's identity: (namespace, vLLM block hash). The hash bytes are copied on construction. */
public final class BlockKey {
    private final String namespace;
    private final byte[] hash;
    private final int hashCode;

    public BlockKey(String namespace, byte[] hash) {
        this(java.util.Objects.requireNonNull(namespace, "namespace"), hash.clone(), true);
    }

    private BlockKey(String namespace, byte[] hash, boolean owned) {
        this.namespace = namespace;
        this.hash = hash;
        this.hashCode = 31 * namespace.hashCode() + Arrays.hashCode(hash);
    }

    /**
     * A key for a map lookup only: it shares {@code hash} instead of copying it, so the caller must not change the
     * array while the key is in use and must never store the key.
     */
    static BlockKey lookup(String namespace, byte[] hash) {
        return new BlockKey(namespace, hash, false);
    }

    public String namespace() {
        return namespace;
    }

    /** A copy of the block hash. */
    public byte[] hash() {
        return hash.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof BlockKey k
                && k.hashCode == hashCode
                && Arrays.equals(k.hash, hash)
                && k.namespace.equals(namespace);
    }

    @Override
    public int hashCode() {
        return hashCode;
    }

    @Override
    public String toString() {
        return namespace + "/" + HexFormat.of().formatHex(hash, 0, Math.min(8, hash.length));
    }
}
