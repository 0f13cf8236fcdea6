package io.pegaflow.transport;

import java.util.Objects;

/**
 * Where a peer's transport listens: one entry of the static peer list (from the topology).
 *
 * @param nodeId the peer's node id; the transport checks it in the connection handshake
 * @param host host name or address to dial
 * @param port TCP port of the peer's transport listener (the RDMA transport exchanges its queue pair details there)
 */
public record PeerAddress(String nodeId, String host, int port) {

    public PeerAddress {
        Objects.requireNonNull(nodeId, "nodeId");
        Objects.requireNonNull(host, "host");
        if (nodeId.isEmpty()) {
            throw new IllegalArgumentException("nodeId must not be empty");
        }
        if (port < 0 || port > 65_535) {
            throw new IllegalArgumentException("port must be in [0, 65535], got " + port);
        }
    }
}
