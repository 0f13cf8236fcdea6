package io.pegaflow.rdma;

import java.util.Objects;

/**
 * One NIC port the transport uses: a device, a port on it, and the GID index that names the address peers reach it
 * at (RoCE v2 needs the index of the right IPv4- or IPv6-based RoCE v2 entry; InfiniBand uses the LID and index 0).
 *
 * @param device the device name ({@code mlx5_0}, {@code rxe0}); empty picks the first device with an active port
 * @param port the port number, from 1
 * @param gidIndex the GID table index, from 0
 * @param qpsPerPeer RC queue pairs per peer on this NIC, 1..64; 0: {@link RdmaSettings#qpsPerPeer()}
 * @param queueDepth send work requests each of this NIC's queue pairs may have outstanding, 4..16384; 0:
 *     {@link RdmaSettings#queueDepth()}
 */
public record RdmaNic(String device, int port, int gidIndex, int qpsPerPeer, int queueDepth) {

    /** A NIC with the settings' queue pairs per peer and queue depth. */
    public RdmaNic(String device, int port, int gidIndex) {
        this(device, port, gidIndex, 0, 0);
    }

    public RdmaNic {
        Objects.requireNonNull(device, "device");
        if (port < 1 || port > 255) {
            throw new IllegalArgumentException("port must be in [1, 255], got " + port);
        }
        if (gidIndex < 0 || gidIndex > 65_535) {
            throw new IllegalArgumentException("gidIndex must be in [0, 65535], got " + gidIndex);
        }
        if (qpsPerPeer != 0 && (qpsPerPeer < 1 || qpsPerPeer > 64)) {
            throw new IllegalArgumentException(
                    "qpsPerPeer must be 0 (the settings' value) or in [1, 64], got " + qpsPerPeer);
        }
        if (queueDepth != 0 && (queueDepth < 4 || queueDepth > 16_384)) {
            throw new IllegalArgumentException(
                    "queueDepth must be 0 (the settings' value) or in [4, 16384], got " + queueDepth);
        }
    }
}
