package io.pegaflow.transport;

import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * What every transport needs: who this node is, where it listens, its static peer list, and its bounds. A transport
 * with hardware settings of its own (NICs, queue pair depths) takes those in a record of its own beside this one.
 *
 * @param localNodeId this node's id, sent in the connection handshake
 * @param bindHost address the listener binds (peers dial it)
 * @param listenPort listener port; 0 picks a free one ({@link Transport#localAddress()} tells which)
 * @param peers the static peer list (from the topology, this node left out); the transport connects to each at start
 *     and reconnects in the background
 * @param maxInFlightPerPeer transfers accepted per peer before submissions are refused as
 *     {@link TransferStatus#BACK_PRESSURED}
 * @param maxDescriptorsPerTransfer most descriptors one transfer may carry
 * @param connectTimeoutMs bound on one connection attempt (connect and handshake)
 * @param reconnectBackoffMaxMs longest wait between two attempts to reach a peer (attempts back off from 10 ms)
 * @param verifyChecksums whether block bytes carry a CRC32C checked on arrival (transports whose link already checks
 *     integrity end to end, as RDMA's ICRC does, may ignore it and say so)
 */
public record TransportSettings(
        String localNodeId,
        String bindHost,
        int listenPort,
        List<PeerAddress> peers,
        int maxInFlightPerPeer,
        int maxDescriptorsPerTransfer,
        long connectTimeoutMs,
        long reconnectBackoffMaxMs,
        boolean verifyChecksums) {

    public static final int DEFAULT_MAX_IN_FLIGHT_PER_PEER = 64;
    public static final int DEFAULT_MAX_DESCRIPTORS_PER_TRANSFER = 1024;
    public static final int MAX_IN_FLIGHT_PER_PEER_LIMIT = 4096;
    public static final int MAX_DESCRIPTORS_PER_TRANSFER_LIMIT = 65_536;

    public TransportSettings {
        Objects.requireNonNull(localNodeId, "localNodeId");
        Objects.requireNonNull(bindHost, "bindHost");
        peers = List.copyOf(peers);
        if (localNodeId.isEmpty()) {
            throw new IllegalArgumentException("localNodeId must not be empty");
        }
        if (listenPort < 0 || listenPort > 65_535) {
            throw new IllegalArgumentException("listenPort must be in [0, 65535], got " + listenPort);
        }
        Set<String> ids = new HashSet<>();
        for (PeerAddress peer : peers) {
            if (peer.nodeId().equals(localNodeId)) {
                throw new IllegalArgumentException("peers must not list this node itself (" + localNodeId + ")");
            }
            if (!ids.add(peer.nodeId())) {
                throw new IllegalArgumentException("peers lists node " + peer.nodeId() + " twice");
            }
        }
        if (maxInFlightPerPeer < 1 || maxInFlightPerPeer > MAX_IN_FLIGHT_PER_PEER_LIMIT) {
            throw new IllegalArgumentException("maxInFlightPerPeer must be in [1, " + MAX_IN_FLIGHT_PER_PEER_LIMIT
                    + "], got " + maxInFlightPerPeer);
        }
        if (maxDescriptorsPerTransfer < 1 || maxDescriptorsPerTransfer > MAX_DESCRIPTORS_PER_TRANSFER_LIMIT) {
            throw new IllegalArgumentException("maxDescriptorsPerTransfer must be in [1, "
                    + MAX_DESCRIPTORS_PER_TRANSFER_LIMIT + "], got " + maxDescriptorsPerTransfer);
        }
        if (connectTimeoutMs < 1) {
            throw new IllegalArgumentException("connectTimeoutMs must be >= 1, got " + connectTimeoutMs);
        }
        if (reconnectBackoffMaxMs < 10) {
            throw new IllegalArgumentException("reconnectBackoffMaxMs must be >= 10, got " + reconnectBackoffMaxMs);
        }
    }

    /** Settings with the default bounds: 64 in flight per peer, 1,024 descriptors, 2 s connect, 1 s back-off. */
    public static TransportSettings of(String localNodeId, String bindHost, int listenPort, List<PeerAddress> peers) {
        return new TransportSettings(
                localNodeId,
                bindHost,
                listenPort,
                peers,
                DEFAULT_MAX_IN_FLIGHT_PER_PEER,
                DEFAULT_MAX_DESCRIPTORS_PER_TRANSFER,
                2_000,
                1_000,
                false);
    }

    public TransportSettings withPeers(List<PeerAddress> newPeers) {
        return new TransportSettings(
                localNodeId,
                bindHost,
                listenPort,
                newPeers,
                maxInFlightPerPeer,
                maxDescriptorsPerTransfer,
                connectTimeoutMs,
                reconnectBackoffMaxMs,
                verifyChecksums);
    }

    public TransportSettings withListenPort(int port) {
        return new TransportSettings(
                localNodeId,
                bindHost,
                port,
                peers,
                maxInFlightPerPeer,
                maxDescriptorsPerTransfer,
                connectTimeoutMs,
                reconnectBackoffMaxMs,
                verifyChecksums);
    }

    public TransportSettings withMaxInFlightPerPeer(int max) {
        return new TransportSettings(
                localNodeId,
                bindHost,
                listenPort,
                peers,
                max,
                maxDescriptorsPerTransfer,
                connectTimeoutMs,
                reconnectBackoffMaxMs,
                verifyChecksums);
    }

    public TransportSettings withMaxDescriptorsPerTransfer(int max) {
        return new TransportSettings(
                localNodeId,
                bindHost,
                listenPort,
                peers,
                maxInFlightPerPeer,
                max,
                connectTimeoutMs,
                reconnectBackoffMaxMs,
                verifyChecksums);
    }

    public TransportSettings withReconnectBackoffMaxMs(long maxMs) {
        return new TransportSettings(
                localNodeId,
                bindHost,
                listenPort,
                peers,
                maxInFlightPerPeer,
                maxDescriptorsPerTransfer,
                connectTimeoutMs,
                maxMs,
                verifyChecksums);
    }

    public TransportSettings withVerifyChecksums(boolean verify) {
        return new TransportSettings(
                localNodeId,
                bindHost,
                listenPort,
                peers,
                maxInFlightPerPeer,
                maxDescriptorsPerTransfer,
                connectTimeoutMs,
                reconnectBackoffMaxMs,
                verify);
    }
}
