package io.pegaflow.rdma;

import java.util.Objects;

/**
 * One NIC port the transport uses: a device, a port on it, and the GID index that names the address peers reach it
 * at (RoCE v2 needs the index of the right IPv4- or IPv6-based RoCE v2 entry; InfiniBand uses the LID and index 0).
 *
 * @param device the device name ({@code mlx5_0}, {@code rxe0}); empty picks the first device with an active port
 * @param port the port number, from 1
 * @param gidIndex the GID table index, from 0
 */
public record RdmaNic(String device, int port, int gidIndex) {

    public RdmaNic {
        Objects.requireNonNull(device, "device");
        if (port < 1 || port > 255) {
            throw new IllegalArgumentException("port must be in [1, 255], got " + port);
        }
        if (gidIndex < 0 || gidIndex > 65_535) {
            throw new IllegalArgumentException("gidIndex must be in [0, 65535], got " + gidIndex);
        }
    }
}
