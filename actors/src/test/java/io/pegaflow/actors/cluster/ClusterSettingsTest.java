package io.pegaflow.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import io.pegaflow.config.Transport;
import java.io.IOException;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class ClusterSettingsTest {
    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static Topology twoNodes() throws IOException {
        List<NodeSpec> nodes = List.of(
                new NodeSpec("a", "127.0.0.1", freePort(), 1, 2, List.of(), List.of(), 1 << 20, Transport.TCP),
                new NodeSpec("b", "127.0.0.1", freePort(), 3, 4, List.of(), List.of(), 1 << 20, Transport.TCP));
        return new Topology("settings-test", 16, nodes);
    }

    @Test
    void shouldDeriveArterySeedsAndNodeRoleFromTheTopology() throws IOException {
        Topology topology = twoNodes();
        Config config = ClusterSettings.forNode(topology, "b", ConfigFactory.load());
        assertEquals("cluster", config.getString("pekko.actor.provider"));
        assertEquals(topology.requireNode("b").clusterPort(), config.getInt("pekko.remote.artery.canonical.port"));
        assertEquals(
                List.of(
                        ClusterSettings.address(topology, topology.nodes().get(0)),
                        ClusterSettings.address(topology, topology.nodes().get(1))),
                config.getStringList("pekko.cluster.seed-nodes"));
        assertEquals(List.of("node-id:b"), config.getStringList("pekko.cluster.roles"));
        assertEquals(
                "org.apache.pekko.cluster.sbr.SplitBrainResolverProvider",
                config.getString("pekko.cluster.downing-provider-class"));
    }

    @Test
    @Timeout(90)
    void shouldFormAClusterOfTwoActorSystemsAndNameEveryMember() throws Exception {
        Topology topology = twoNodes();
        Config extra = ConfigFactory.parseString(
                "pekko.cluster.jmx.multi-mbeans-in-same-jvm = on\npekko.actor.serialize-messages = on");
        ActorTestKit a = ActorTestKit.create(
                "settings-test", ClusterSettings.forNode(topology, "a", extra.withFallback(ConfigFactory.load())));
        ActorTestKit b = ActorTestKit.create(
                "settings-test", ClusterSettings.forNode(topology, "b", extra.withFallback(ConfigFactory.load())));
        try {
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            ClusterView view = ClusterView.of(b.system(), topology);
            while (System.nanoTime() < deadline && view.countByStatus().getOrDefault("Up", 0L) < 2) {
                Thread.sleep(200);
                view = ClusterView.of(b.system(), topology);
            }
            assertEquals(2L, view.countByStatus().get("Up"), view.toString());
            assertEquals(
                    List.of("a", "b"),
                    view.members().stream().map(MemberView::nodeId).sorted().toList());
            assertTrue(
                    view.selfAddress().endsWith(":" + topology.requireNode("b").clusterPort()));
        } finally {
            b.shutdownTestKit();
            a.shutdownTestKit();
        }
    }
}
