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

    /** The key of hash {@code i} of {@code hashes} (its bytes copied). */
    public BlockKey(String namespace, HashList hashes, int i) {
        this(java.util.Objects.requireNonNull(namespace, "namespace"), hashes.copy(i), true);
    }

    private BlockKey(String namespace, byte[] hash, boolean owned) {
        this.namespace = namespace;
        this.hash = hash;
        this.hashCode = 31 * namespace.hashCode() + HashList.hashCode(hash, 0, hash.length);
    }

    /**
     * A reusable key for map lookups only, owned by one thread at a time (the store's, under its lock): it allocates
     * nothing per lookup. Only its own {@code equals} knows it ({@code BlockKey.equals(probe)} is false), which is all a
     * {@code HashMap.get(probe)} uses; it must never be stored in a map.
     */
    static final class Probe {
        private String namespace;
        private byte[] hash;
        private int from;
        private int to;
        private int hashCode;

        /** Points the probe at {@code (namespace, hash)}, sharing {@code hash}; returns the probe. */
        Probe set(String namespace, byte[] hash) {
            return set(namespace, hash, 0, hash.length, HashList.hashCode(hash, 0, hash.length));
        }

        /** Points the probe at hash {@code i} of {@code hashes}, sharing its array; returns the probe. */
        Probe set(String namespace, HashList hashes, int i) {
            return set(namespace, hashes.data(), hashes.start(i), hashes.end(i), hashes.hashCodeOf(i));
        }

        /** As {@link #set(String, HashList, int)} with the hash's {@link HashList#hashCodeOf} known already. */
        Probe set(String namespace, HashList hashes, int i, int hashCodeOfHash) {
            return set(namespace, hashes.data(), hashes.start(i), hashes.end(i), hashCodeOfHash);
        }

        private Probe set(String namespace, byte[] hash, int from, int to, int hashCodeOfHash) {
            this.namespace = namespace;
            this.hash = hash;
            this.from = from;
            this.to = to;
            this.hashCode = 31 * namespace.hashCode() + hashCodeOfHash;
            return this;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof BlockKey k
                    && k.hashCode == hashCode
                    && Arrays.equals(k.hash, 0, k.hash.length, hash, from, to)
                    && k.namespace.equals(namespace);
        }

        @Override
        public int hashCode() {
            return hashCode;
        }
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
