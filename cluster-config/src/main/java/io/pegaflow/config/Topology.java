package io.pegaflow.config;

import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * The whole cluster: its name, how many ranges the block directory is split into, and its nodes in
 * file order.
 *
 * <p>{@link TopologyLoader} guarantees unique ids and unique ports per host; the constructor itself
 * only checks for nulls and copies the list.
 *
 * @param clusterName Pekko ActorSystem name shared by all nodes
 * @param directoryRanges number of ranges (shards) of the block directory
 * @param nodes every node, in the order of the file
 */
public record Topology(String clusterName, int directoryRanges, List<NodeSpec> nodes) {

    /** Cluster name of {@link #localDefault}. */
    public static final String DEFAULT_CLUSTER_NAME = "pegaflow";
    /** Directory ranges when the file names none. */
    public static final int DEFAULT_DIRECTORY_RANGES = 256;
    /** Node id of {@link #localDefault}. */
    public static final String DEFAULT_NODE_ID = "n1";
    /** Artery port of {@link #localDefault}. */
    public static final int DEFAULT_CLUSTER_PORT = 25520;
    /** Metrics port of {@link #localDefault}. */
    public static final int DEFAULT_METRICS_PORT = 9091;

    public Topology {
        Objects.requireNonNull(clusterName, "clusterName");
        nodes = List.copyOf(nodes);
    }

    /** The node with this id, if any. */
    public Optional<NodeSpec> node(String id) {
        for (NodeSpec n : nodes) {
            if (n.id().equals(id)) {
                return Optional.of(n);
            }
        }
        return Optional.empty();
    }

    /**
     * The node with this id.
     *
     * @throws IllegalArgumentException naming {@code id} and listing the known ids when there is none
     */
    public NodeSpec requireNode(String id) {
        return node(id).orElseThrow(() -> new IllegalArgumentException("unknown node \"" + id + "\" in cluster "
                + clusterName + " (known: " + String.join(", ", ids()) + ")"));
    }

    /**
     * The node whose Artery address is {@code host:clusterPort}; host names compare ignoring case, as
     * the loader does when it checks for port clashes.
     */
    public Optional<NodeSpec> nodeAt(String host, int clusterPort) {
        for (NodeSpec n : nodes) {
            if (n.clusterPort() == clusterPort && n.host().equalsIgnoreCase(host)) {
                return Optional.of(n);
            }
        }
        return Optional.empty();
    }

    /** Node ids in file order. */
    public List<String> ids() {
        return nodes.stream().map(NodeSpec::id).toList();
    }

    /**
     * A one-node cluster for running without a topology file: node {@code n1} of cluster
     * {@code pegaflow}, Artery on 25520, metrics on 9091, 256 directory ranges, TCP, no GPUs or NICs.
     */
    public static Topology localDefault(String host, int grpcPort, long poolSizeBytes) {
        NodeSpec node = new NodeSpec(
                DEFAULT_NODE_ID,
                host,
                DEFAULT_CLUSTER_PORT,
                grpcPort,
                DEFAULT_METRICS_PORT,
                List.of(),
                List.of(),
                poolSizeBytes,
                Transport.TCP);
        return new Topology(DEFAULT_CLUSTER_NAME, DEFAULT_DIRECTORY_RANGES, List.of(node));
    }
}
