package io.pegaflow.actors.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.pegaflow.actors.cluster.ClusterSettings;
import io.pegaflow.actors.cluster.ClusterView;
import io.pegaflow.actors.cluster.MemberView;
import io.pegaflow.actors.node.NodeGuardian.Command;
import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import io.pegaflow.config.Transport;
import java.io.IOException;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Two nodes of a real cluster in one JVM (Artery over loopback, free ports, the topology's static seeds, messages
 * serialized on every send): each node's guardian sees both members Up, and one node's guardian answers the other's
 * question across the wire.
 */
class NodeGuardianClusterTest {
    private static final Duration FORM = Duration.ofSeconds(60);
    private static final Duration WAIT = Duration.ofSeconds(10);

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static Topology twoNodes() throws IOException {
        return new Topology(
                "guardian-cluster-test",
                16,
                List.of(
                        new NodeSpec("a", "127.0.0.1", freePort(), 1, 2, List.of(), List.of(), 1 << 20, Transport.TCP),
                        new NodeSpec(
                                "b", "127.0.0.1", freePort(), 3, 4, List.of(), List.of(), 1 << 20, Transport.TCP)));
    }

    private static ActorTestKit node(Topology topology, String id) {
        Config checks = ConfigFactory.parseString(
                "pekko.cluster.jmx.multi-mbeans-in-same-jvm = on\npekko.actor.serialize-messages = on");
        return ActorTestKit.create(
                topology.clusterName(),
                ClusterSettings.forNode(topology, id, checks.withFallback(ConfigFactory.load())));
    }

    /** Asks {@code guardian} for its view until it shows both nodes Up. */
    private static ClusterView awaitBothUp(ActorTestKit asker, ActorRef<Command> guardian) {
        TestProbe<ClusterView> reply = asker.createTestProbe();
        long deadline = System.nanoTime() + FORM.toNanos();
        ClusterView view = null;
        while (System.nanoTime() < deadline) {
            guardian.tell(new Command.GetClusterView(reply.getRef()));
            view = reply.receiveMessage(WAIT);
            if (view.countByStatus().getOrDefault("Up", 0L) == 2) {
                return view;
            }
            sleep(200);
        }
        return fail("the guardian never saw both nodes Up; last view: " + view);
    }

    /** Waits until the receptionist on {@code kit}'s node lists both guardians; returns the one on the other node. */
    private static ActorRef<Command> peerGuardian(ActorTestKit kit) {
        TestProbe<Receptionist.Listing> listing = kit.createTestProbe();
        long deadline = System.nanoTime() + FORM.toNanos();
        while (System.nanoTime() < deadline) {
            kit.system().receptionist().tell(Receptionist.find(NodeGuardian.SERVICE_KEY, listing.getRef()));
            Set<ActorRef<Command>> guardians =
                    listing.receiveMessage(WAIT).getServiceInstances(NodeGuardian.SERVICE_KEY);
            for (ActorRef<Command> guardian : guardians) {
                if (!guardian.path().address().hasLocalScope()) {
                    return guardian;
                }
            }
            sleep(200);
        }
        return fail("the receptionist never listed the other node's guardian");
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    @Test
    @Timeout(150)
    void shouldLetEachNodesGuardianSeeBothMembersUpAndAnswerAPeer() throws Exception {
        Topology topology = twoNodes();
        ActorTestKit a = node(topology, "a");
        ActorTestKit b = node(topology, "b");
        try {
            ActorRef<Command> guardianA = a.spawn(NodeGuardian.create(topology), NodeGuardian.NAME);
            ActorRef<Command> guardianB = b.spawn(NodeGuardian.create(topology), NodeGuardian.NAME);

            ClusterView seenByA = awaitBothUp(a, guardianA);
            ClusterView seenByB = awaitBothUp(b, guardianB);
            assertEquals(List.of("a", "b"), nodeIds(seenByA));
            assertEquals(List.of("a", "b"), nodeIds(seenByB));

            // b asks a's guardian over Artery: the question and the answer cross nodes as CBOR.
            ActorRef<Command> remoteA = peerGuardian(b);
            assertEquals(ClusterSettings.address(topology, topology.requireNode("a")), addressOf(remoteA));
            ClusterView fromA = awaitBothUp(b, remoteA);
            assertEquals(ClusterSettings.address(topology, topology.requireNode("a")), fromA.selfAddress());
            assertEquals(Map.of("Up", 2L), fromA.countByStatus());
        } finally {
            b.shutdownTestKit();
            a.shutdownTestKit();
        }
    }

    private static List<String> nodeIds(ClusterView view) {
        return view.members().stream().map(MemberView::nodeId).sorted().toList();
    }

    private static String addressOf(ActorRef<?> ref) {
        return ref.path().address().toString();
    }
}
