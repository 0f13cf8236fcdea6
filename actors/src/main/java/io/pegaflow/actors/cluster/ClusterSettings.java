package io.pegaflow.actors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import java.util.List;

/**
 * Pekko configuration for one node of a static topology: Artery on the node's host and cluster port, every node of
 * the topology as a seed (joins whichever is up first), and a role naming the node id.
 */
public final class ClusterSettings {
    /** Role prefix carrying the topology node id, e.g. {@code node-id:n1}. */
    public static final String NODE_ID_ROLE_PREFIX = "node-id:";

    private ClusterSettings() {}

    /** The ActorSystem name: the cluster name, so that nodes of different clusters never join each other. */
    public static String systemName(Topology topology) {
        return topology.clusterName();
    }

    public static String address(Topology topology, NodeSpec node) {
        return "pekko://" + systemName(topology) + "@" + node.host() + ":" + node.clusterPort();
    }

    /**
     * Settings for {@code nodeId}: the topology-derived keys, then {@code pegaflow-cluster.conf} (downing, logging,
     * shutdown), then {@code base} (usually {@code ConfigFactory.load()}).
     */
    public static Config forNode(Topology topology, String nodeId, Config base) {
        NodeSpec self = topology.requireNode(nodeId);
        List<String> seeds =
                topology.nodes().stream().map(n -> address(topology, n)).toList();
        return ConfigFactory.empty()
                .withValue("pekko.actor.provider", ConfigValueFactory.fromAnyRef("cluster"))
                .withValue("pekko.remote.artery.canonical.hostname", ConfigValueFactory.fromAnyRef(self.host()))
                .withValue("pekko.remote.artery.canonical.port", ConfigValueFactory.fromAnyRef(self.clusterPort()))
                .withValue("pekko.cluster.seed-nodes", ConfigValueFactory.fromIterable(seeds))
                .withValue(
                        "pekko.cluster.roles",
                        ConfigValueFactory.fromIterable(List.of(NODE_ID_ROLE_PREFIX + self.id())))
                .withFallback(
                        ConfigFactory.parseResources(ClusterSettings.class.getClassLoader(), "pegaflow-cluster.conf"))
                .withFallback(base)
                .resolve();
    }
}
