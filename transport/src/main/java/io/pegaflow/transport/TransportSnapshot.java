package io.pegaflow.transport;

import java.util.List;

/**
 * A point-in-time copy of a transport's counters, all monotonic.
 *
 * @param transport the transport's {@link Transport#name()} ("tcp", "rdma"), the metrics' {@code transport} tag
 * @param localNodeId this node
 * @param peers one entry per peer of the static peer list
 * @param servedRequests requests this node served as the passive side (TCP's emulated one-sided ops; 0 for RDMA,
 *     whose passive side is the NIC)
 * @param servedBytes bytes this node served or absorbed as the passive side
 * @param servedRefusals requests this node refused as the passive side (unknown region, stale key, range, checksum)
 * @param lateBytesDiscarded bytes that arrived for transfers already completed (timed out, cancelled, failed) and were
 *     dropped without touching their target memory
 * @param handlerFailures completion handlers that threw
 */
public record TransportSnapshot(
        String transport,
        String localNodeId,
        List<PeerSnapshot> peers,
        long servedRequests,
        long servedBytes,
        long servedRefusals,
        long lateBytesDiscarded,
        long handlerFailures) {

    public TransportSnapshot {
        peers = List.copyOf(peers);
    }

    /** The snapshot of one peer. */
    public PeerSnapshot peer(String nodeId) {
        for (PeerSnapshot p : peers) {
            if (p.peerNodeId().equals(nodeId)) {
                return p;
            }
        }
        throw new IllegalArgumentException("not a peer of " + localNodeId + ": " + nodeId);
    }
}
