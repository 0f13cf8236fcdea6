package io.pegaflow.transport;

import java.util.Objects;

/**
 * A region registered on some node, described by plain values so it can cross the wire or an actor message (the
 * holder sends it with a lease; the requester names it in its descriptors). No bytes, no handles.
 *
 * @param nodeId node that registered the region
 * @param regionId the region's id on that node
 * @param baseAddress the region's first byte in the holder's address space (the RDMA remote address of offset 0;
 *     informational for TCP)
 * @param lengthBytes the region's length
 * @param remoteKey the key a peer presents to reach the region (the RDMA rkey; a random per-registration key for TCP,
 *     so that a descriptor made for an earlier registration of the same id is refused)
 */
public record RemoteRegion(String nodeId, int regionId, long baseAddress, long lengthBytes, long remoteKey) {

    public RemoteRegion {
        Objects.requireNonNull(nodeId, "nodeId");
        if (regionId < 0) {
            throw new IllegalArgumentException("regionId must be >= 0, got " + regionId);
        }
        if (lengthBytes <= 0) {
            throw new IllegalArgumentException("lengthBytes must be > 0, got " + lengthBytes);
        }
    }

    /** Whether {@code [offset, offset + length)} lies inside this region. */
    public boolean contains(long offset, long length) {
        return offset >= 0 && length > 0 && offset <= lengthBytes - length;
    }
}
