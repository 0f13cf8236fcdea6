package io.pegaflow.config;

import java.util.Locale;
import java.util.Optional;

/** How a node moves blocks to its peers; written {@code rdma} or {@code tcp} in the topology file. */
public enum Transport {
    /** One-sided RDMA reads over the NICs listed under {@code rdma}. */
    RDMA("rdma"),
    /** Plain TCP; needs no special hardware. */
    TCP("tcp");

    private final String yamlName;

    Transport(String yamlName) {
        this.yamlName = yamlName;
    }

    /** The spelling used in the topology file: {@code rdma} or {@code tcp}. */
    public String yamlName() {
        return yamlName;
    }

    /**
     * The transport spelled {@code s} in a topology file, ignoring case.
     *
     * @return empty when {@code s} is null or names no transport
     */
    public static Optional<Transport> fromYaml(String s) {
        if (s == null) {
            return Optional.empty();
        }
        String lower = s.toLowerCase(Locale.ROOT);
        for (Transport t : values()) {
            if (t.yamlName.equals(lower)) {
                return Optional.of(t);
            }
        }
        return Optional.empty();
    }
}
