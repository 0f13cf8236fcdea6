package io.pegaflow.fabric.engine;

import java.util.Arrays;
import java.util.HexFormat;

/** A block's identity: (namespace, vLLM block hash). The hash bytes are copied on construction. */
public final class BlockKey {
  private final String namespace;
  private final byte[] hash;
  private final int hashCode;

  public BlockKey(String namespace, byte[] hash) {
    this.namespace = namespace;
    this.hash = hash.clone();
    this.hashCode = 31 * namespace.hashCode() + Arrays.hashCode(this.hash);
  }

  public String namespace() {
    return namespace;
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
