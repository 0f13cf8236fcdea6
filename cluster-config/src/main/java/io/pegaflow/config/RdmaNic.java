package io.pegaflow.config;

import java.util.Objects;

/**
 * One RDMA NIC port a node uses: the verbs device name, its physical port and the GID index to use
 * for RoCE addressing.
 *
 * @param device verbs device name, e.g. {@code mlx5_0}
 * @param port physical port number on that device, 1..255
 * @param gidIndex index into the port's GID table, 0..255
 */
public record RdmaNic(String device, int port, int gidIndex) {
    public RdmaNic {
        Objects.requireNonNull(device, "device");
    }
}
