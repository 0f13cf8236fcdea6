package io.pegaflow.config;

import java.util.Objects;

/**
 * One RDMA NIC port a node uses: the verbs device name, its physical port, the GID index to use for RoCE addressing,
 * and how many RC queue pairs this node opens to each peer on it, each with how deep a send queue.
 *
 * @param device verbs device name, e.g. {@code mlx5_0}
 * @param port physical port number on that device, 1..255
 * @param gidIndex index into the port's GID table, 0..255
 * @param qpsPerPeer RC queue pairs to each peer on this NIC, {@value #MIN_QPS_PER_PEER}..{@value #MAX_QPS_PER_PEER}
 *     (topology key {@code qpsPerPeer}, default {@value #DEFAULT_QPS_PER_PEER})
 * @param queueDepth send work requests each of those queue pairs may have outstanding, {@value #MIN_QUEUE_DEPTH}..
 *     {@value #MAX_QUEUE_DEPTH} (topology key {@code queueDepth}, default {@value #DEFAULT_QUEUE_DEPTH})
 */
public record RdmaNic(String device, int port, int gidIndex, int qpsPerPeer, int queueDepth) {
    public static final int DEFAULT_QPS_PER_PEER = 2;
    public static final int MIN_QPS_PER_PEER = 1;
    public static final int MAX_QPS_PER_PEER = 64;
    public static final int DEFAULT_QUEUE_DEPTH = 256;
    public static final int MIN_QUEUE_DEPTH = 4;
    public static final int MAX_QUEUE_DEPTH = 16_384;

    /** A NIC with the default queue pairs per peer and queue depth. */
    public RdmaNic(String device, int port, int gidIndex) {
        this(device, port, gidIndex, DEFAULT_QPS_PER_PEER, DEFAULT_QUEUE_DEPTH);
    }

    public RdmaNic {
        Objects.requireNonNull(device, "device");
    }
}
