package io.pegaflow.config;

import java.util.Locale;
import java.util.Optional;

/**
 * What a node whose {@code transport} is {@code rdma} does when it finds no usable RDMA device at start; written
 * {@code transportFallback: none} (the default: refuse to start) or {@code transportFallback: tcp} in the topology.
 */
public enum TransportFallback {
    /** No usable device: the node refuses to start, naming the reason. */
    NONE("none"),
    /** No usable device: the node logs why and runs the TCP transport instead (and says so in its metrics). */
    TCP("tcp");

    private final String yamlName;

    TransportFallback(String yamlName) {
        this.yamlName = yamlName;
    }

    /** The spelling used in the topology file: {@code none} or {@code tcp}. */
    public String yamlName() {
        return yamlName;
    }

    /**
     * The fallback spelled {@code s} in a topology file, ignoring case.
     *
     * @return empty when {@code s} is null or names no fallback
     */
    public static Optional<TransportFallback> fromYaml(String s) {
        if (s == null) {
            return Optional.empty();
        }
        String lower = s.toLowerCase(Locale.ROOT);
        for (TransportFallback f : values()) {
            if (f.yamlName.equals(lower)) {
                return Optional.of(f);
            }
        }
        return Optional.empty();
    }
}
