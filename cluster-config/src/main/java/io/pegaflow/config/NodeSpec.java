package io.pegaflow.config;

import java.util.List;
import java.util.Objects;

/**
 * One node of the cluster, as the topology file describes it.
 *
 * <p>The constructor only checks for nulls and copies the lists; ranges, names and port clashes are
 * checked by {@link TopologyLoader}, so tests may build nodes on port 0.
 *
 * @param id unique node id, letters, digits, {@code -} and {@code _}
 * @param host address the node's three ports listen on and peers dial
 * @param clusterPort Pekko Artery port
 * @param grpcPort gRPC (client-facing) port
 * @param metricsPort Prometheus scrape port
 * @param gpus CUDA device indices this node serves, possibly empty
 * @param rdmaNics RDMA NIC ports this node uses, possibly empty
 * @param poolSizeBytes size of the node's pinned block pool in bytes
 * @param transport how blocks move between nodes
 * @param transportPort the port the node's transport listens on and peers dial (block transfers); a file that names
 *     none gets {@link #defaultTransportPort(int)}
 * @param transportFallback what a node with {@code transport: rdma} does when no usable RDMA device is found at start
 *     ({@link TransportFallback#NONE}, the default: refuse to start)
 */
public record NodeSpec(
        String id,
        String host,
        int clusterPort,
        int grpcPort,
        int metricsPort,
        List<Integer> gpus,
        List<RdmaNic> rdmaNics,
        long poolSizeBytes,
        Transport transport,
        int transportPort,
        TransportFallback transportFallback) {

    /** How far above {@code clusterPort} the transport listens when the topology names no {@code transportPort}. */
    public static final int TRANSPORT_PORT_OFFSET = 100;

    public NodeSpec {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(host, "host");
        gpus = List.copyOf(gpus);
        rdmaNics = List.copyOf(rdmaNics);
        Objects.requireNonNull(transport, "transport");
        Objects.requireNonNull(transportFallback, "transportFallback");
    }

    /** A node with no transport fallback: {@code rdma} without a usable device refuses to start. */
    public NodeSpec(
            String id,
            String host,
            int clusterPort,
            int grpcPort,
            int metricsPort,
            List<Integer> gpus,
            List<RdmaNic> rdmaNics,
            long poolSizeBytes,
            Transport transport,
            int transportPort) {
        this(
                id,
                host,
                clusterPort,
                grpcPort,
                metricsPort,
                gpus,
                rdmaNics,
                poolSizeBytes,
                transport,
                transportPort,
                TransportFallback.NONE);
    }

    /** A node whose transport listens on {@link #defaultTransportPort(int)}. */
    public NodeSpec(
            String id,
            String host,
            int clusterPort,
            int grpcPort,
            int metricsPort,
            List<Integer> gpus,
            List<RdmaNic> rdmaNics,
            long poolSizeBytes,
            Transport transport) {
        this(
                id,
                host,
                clusterPort,
                grpcPort,
                metricsPort,
                gpus,
                rdmaNics,
                poolSizeBytes,
                transport,
                defaultTransportPort(clusterPort));
    }

    /** {@code clusterPort + 100}, or 0 (pick any) for a node on port 0. */
    public static int defaultTransportPort(int clusterPort) {
        return clusterPort == 0 ? 0 : clusterPort + TRANSPORT_PORT_OFFSET;
    }
}
