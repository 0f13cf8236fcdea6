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
        Transport transport) {

    public NodeSpec {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(host, "host");
        gpus = List.copyOf(gpus);
        rdmaNics = List.copyOf(rdmaNics);
        Objects.requireNonNull(transport, "transport");
    }
}
