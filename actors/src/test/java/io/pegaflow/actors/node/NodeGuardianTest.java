package io.pegaflow.actors.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.pegaflow.actors.cluster.ClusterView;
import io.pegaflow.actors.node.NodeGuardian.ChildKey;
import io.pegaflow.actors.node.NodeGuardian.Command;
import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import io.pegaflow.config.Transport;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.Done;
import org.apache.pekko.actor.CoordinatedShutdown;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.pattern.StatusReply;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The guardian on one node (cluster provider, Artery on a loopback port the OS picks, never joined): children,
 * graceful stop, CoordinatedShutdown. Every message is serialized and read back ({@code serialize-messages = on}).
 */
@Timeout(60)
class NodeGuardianTest {
    private static final Duration WAIT = Duration.ofSeconds(10);
    private static final ChildKey<String> ECHO = new ChildKey<>("echo", String.class);
    private static final Topology TOPOLOGY = new Topology(
            "guardian-test",
            16,
            List.of(new NodeSpec("solo", "127.0.0.1", 1, 2, 3, List.of(), List.of(), 1 << 20, Transport.TCP)));

    private static ActorTestKit testKit;
    private static final AtomicInteger guardians = new AtomicInteger();
    private ActorRef<Command> guardian;

    /** A cluster-provider node on loopback that checks every message's serialization. */
    static Config oneNodeConfig() {
        return ConfigFactory.parseString("""
                        pekko.actor.provider = cluster
                        pekko.remote.artery.canonical.hostname = "127.0.0.1"
                        pekko.remote.artery.canonical.port = 0
                        pekko.cluster.jmx.multi-mbeans-in-same-jvm = on
                        pekko.actor.serialize-messages = on
                        """).withFallback(ConfigFactory.load());
    }

    @BeforeAll
    static void startNode() {
        testKit = ActorTestKit.create("guardian-test", oneNodeConfig());
    }

    @AfterAll
    static void stopNode() {
        testKit.shutdownTestKit();
    }

    private ActorRef<Command> newGuardian() {
        guardian = testKit.spawn(NodeGuardian.create(TOPOLOGY), "node-" + guardians.incrementAndGet());
        return guardian;
    }

    @AfterEach
    void stopGuardian() {
        if (guardian != null) {
            testKit.stop(guardian, WAIT);
        }
    }

    /** Sends every message it gets to {@code probe}; stops on "stop". */
    private static Behavior<String> echo(ActorRef<String> probe) {
        return Behaviors.receiveMessage(message -> {
            if (message.equals("stop")) {
                return Behaviors.stopped();
            }
            probe.tell(message);
            return Behaviors.same();
        });
    }

    private static <T> ActorRef<T> spawnChild(ActorRef<Command> guardian, ChildKey<T> key, Behavior<T> behavior) {
        TestProbe<StatusReply<ActorRef<T>>> reply = testKit.createTestProbe();
        guardian.tell(new Command.SpawnChild<>(key, behavior, reply.getRef()));
        StatusReply<ActorRef<T>> status = reply.receiveMessage(WAIT);
        assertTrue(status.isSuccess(), () -> "spawn failed: " + status);
        return status.getValue();
    }

    private static <T> StatusReply<ActorRef<T>> getChild(ActorRef<Command> guardian, ChildKey<T> key) {
        TestProbe<StatusReply<ActorRef<T>>> reply = testKit.createTestProbe();
        guardian.tell(new Command.GetChild<>(key, reply.getRef()));
        return reply.receiveMessage(WAIT);
    }

    private static String errorOf(StatusReply<?> reply) {
        assertTrue(reply.isError(), () -> "expected an error, got " + reply);
        return reply.getError().getMessage();
    }

    @Test
    void shouldRunTheMembershipLoggerAsAChildFromTheStart() {
        ActorRef<Command> guardian = newGuardian();

        StatusReply<ActorRef<ClusterEvent.ClusterDomainEvent>> logger =
                getChild(guardian, NodeGuardian.MEMBERSHIP_LOGGER);

        assertTrue(logger.isSuccess(), logger::toString);
        assertEquals(
                guardian.path().child("membership-logger"), logger.getValue().path());
    }

    @Test
    void shouldSpawnAChildAndHandOutItsRefToLaterAsks() {
        ActorRef<Command> guardian = newGuardian();
        TestProbe<String> echoed = testKit.createTestProbe();

        ActorRef<String> spawned = spawnChild(guardian, ECHO, echo(echoed.getRef()));
        StatusReply<ActorRef<String>> got = getChild(guardian, ECHO);
        got.getValue().tell("hello");

        assertEquals(spawned, got.getValue());
        assertEquals(guardian.path().child("echo"), spawned.path());
        echoed.expectMessage(WAIT, "hello");
    }

    @Test
    void shouldRefuseASecondChildUnderATakenNameAndKeepTheFirst() {
        ActorRef<Command> guardian = newGuardian();
        TestProbe<String> echoed = testKit.createTestProbe();
        ActorRef<String> first = spawnChild(guardian, ECHO, echo(echoed.getRef()));
        TestProbe<StatusReply<ActorRef<String>>> reply = testKit.createTestProbe();

        guardian.tell(new Command.SpawnChild<>(ECHO, echo(echoed.getRef()), reply.getRef()));

        assertEquals("a child named 'echo' already runs", errorOf(reply.receiveMessage(WAIT)));
        first.tell("still here");
        echoed.expectMessage(WAIT, "still here");
    }

    @Test
    void shouldRefuseAChildWhoseNameIsNoActorName() {
        ActorRef<Command> guardian = newGuardian();
        TestProbe<StatusReply<ActorRef<String>>> reply = testKit.createTestProbe();

        guardian.tell(new Command.SpawnChild<>(
                new ChildKey<>("no/slashes", String.class), Behaviors.empty(), reply.getRef()));

        String error = errorOf(reply.receiveMessage(WAIT));
        assertTrue(error.startsWith("invalid child name 'no/slashes': "), error);
        assertTrue(
                getChild(guardian, new ChildKey<>("no/slashes", String.class)).isError());
    }

    @Test
    void shouldRefuseAGetChildThatNamesAnotherProtocol() {
        ActorRef<Command> guardian = newGuardian();
        spawnChild(guardian, ECHO, Behaviors.empty());

        String error = errorOf(getChild(guardian, new ChildKey<>("echo", Integer.class)));

        assertEquals("child 'echo' takes java.lang.String, not java.lang.Integer", error);
    }

    @Test
    void shouldReplyToGetChildForAnUnknownNameWithAnError() {
        ActorRef<Command> guardian = newGuardian();

        assertEquals("no child named 'echo' runs", errorOf(getChild(guardian, ECHO)));
    }

    @Test
    void shouldStopAChildAndReplyOnlyOnceItHasStopped() {
        ActorRef<Command> guardian = newGuardian();
        TestProbe<String> lifecycle = testKit.createTestProbe();
        ActorRef<String> child = spawnChild(
                guardian,
                ECHO,
                Behaviors.receive(String.class)
                        .onSignal(PostStop.class, signal -> {
                            lifecycle.getRef().tell("post-stop");
                            return Behaviors.same();
                        })
                        .build());
        TestProbe<StatusReply<Done>> reply = testKit.createTestProbe();

        guardian.tell(new Command.StopChild("echo", reply.getRef()));

        lifecycle.expectMessage(WAIT, "post-stop");
        assertTrue(reply.receiveMessage(WAIT).isSuccess());
        lifecycle.expectTerminated(child, WAIT);
        assertEquals("no child named 'echo' runs", errorOf(getChild(guardian, ECHO)));
        spawnChild(guardian, ECHO, Behaviors.empty()); // the name is free again
    }

    @Test
    void shouldReplyToStopChildForAnUnknownNameWithAnError() {
        ActorRef<Command> guardian = newGuardian();
        TestProbe<StatusReply<Done>> reply = testKit.createTestProbe();

        guardian.tell(new Command.StopChild("nobody", reply.getRef()));

        assertEquals("no child named 'nobody' runs", errorOf(reply.receiveMessage(WAIT)));
    }

    @Test
    void shouldForgetAChildThatStoppedByItselfAndFreeItsName() {
        ActorRef<Command> guardian = newGuardian();
        TestProbe<String> echoed = testKit.createTestProbe();
        ActorRef<String> child = spawnChild(guardian, ECHO, echo(echoed.getRef()));

        child.tell("stop");
        echoed.expectTerminated(child, WAIT);

        // The guardian handles its ChildStopped before this GetChild (both come from this test's order of events).
        echoed.awaitAssert(WAIT, () -> {
            assertEquals("no child named 'echo' runs", errorOf(getChild(guardian, ECHO)));
            return null;
        });
        spawnChild(guardian, ECHO, echo(echoed.getRef())).tell("again");
        echoed.expectMessage(WAIT, "again");
    }

    @Test
    void shouldStopEveryChildThenItselfOnGracefulStop() {
        ActorRef<Command> guardian = newGuardian();
        ActorRef<String> echoChild = spawnChild(guardian, ECHO, Behaviors.empty());
        ActorRef<ClusterEvent.ClusterDomainEvent> logger =
                getChild(guardian, NodeGuardian.MEMBERSHIP_LOGGER).getValue();
        TestProbe<Done> done = testKit.createTestProbe();
        TestProbe<Object> watcher = testKit.createTestProbe();

        guardian.tell(new Command.Stop(done.getRef()));

        done.expectMessage(WAIT, Done.getInstance());
        watcher.expectTerminated(echoChild, WAIT);
        watcher.expectTerminated(logger, WAIT);
        watcher.expectTerminated(guardian, WAIT);
        this.guardian = null;
    }

    @Test
    void shouldRefuseNewChildrenOnceTheNodeShutsDown() throws Exception {
        ActorTestKit node = ActorTestKit.create("guardian-refuse-test", oneNodeConfig());
        try {
            ActorRef<Command> guardian = node.spawn(NodeGuardian.create(TOPOLOGY), NodeGuardian.NAME);
            // spawn() returns before the guardian runs: one answered message proves it has registered its shutdown
            // task (else the shutdown below can pass its phase first, and the system ends before it answers)
            TestProbe<ClusterView> started = node.createTestProbe();
            guardian.tell(new Command.GetClusterView(started.getRef()));
            started.receiveMessage(WAIT);
            TestProbe<StatusReply<ActorRef<String>>> reply = node.createTestProbe();
            CoordinatedShutdown.get(node.system())
                    .addTask(CoordinatedShutdown.PhaseClusterLeave(), "spawn-too-late", () -> {
                        guardian.tell(new Command.SpawnChild<>(ECHO, Behaviors.empty(), reply.getRef()));
                        return java.util.concurrent.CompletableFuture.completedFuture(Done.getInstance());
                    });
            CompletableFuture<Done> shutdown = CoordinatedShutdown.get(node.system())
                    .runAll(CoordinatedShutdown.unknownReason())
                    .toCompletableFuture();

            assertEquals(
                    "the node guardian is stopping: child 'echo' not started", errorOf(reply.receiveMessage(WAIT)));
            shutdown.get(30, TimeUnit.SECONDS);
        } finally {
            node.shutdownTestKit();
        }
    }

    @Test
    void shouldAnswerGetClusterViewWithThisNodesView() {
        ActorRef<Command> guardian = newGuardian();
        TestProbe<ClusterView> reply = testKit.createTestProbe();

        guardian.tell(new Command.GetClusterView(reply.getRef()));

        ClusterView view = reply.receiveMessage(WAIT); // serialized and read back through jackson-cbor on the way
        String self = testKit.system().address().toString();
        assertTrue(self.contains("@127.0.0.1:"), self);
        assertEquals(self, view.selfAddress());
    }

    /**
     * CoordinatedShutdown (SIGTERM, the Shutdown RPC) stops the node's actors in {@code before-cluster-shutdown}, that
     * is before the node leaves the cluster; the membership logger stays to log the leave.
     */
    @Test
    void shouldStopItsChildrenBeforeTheNodeLeavesTheClusterAndKeepLoggingMembership() throws Exception {
        ActorTestKit node = ActorTestKit.create("guardian-shutdown-test", oneNodeConfig());
        List<String> events = new CopyOnWriteArrayList<>();
        try {
            CoordinatedShutdown.get(node.system())
                    .addTask(CoordinatedShutdown.PhaseClusterLeave(), "record-leave", () -> {
                        events.add("cluster-leave");
                        return java.util.concurrent.CompletableFuture.completedFuture(Done.getInstance());
                    });
            ActorRef<Command> guardian = node.spawn(NodeGuardian.create(TOPOLOGY), NodeGuardian.NAME);
            CoordinatedShutdown.get(node.system())
                    .addTask(
                            CoordinatedShutdown.PhaseBeforeActorSystemTerminate(),
                            "check-membership-logger",
                            () -> AskPattern.<Command, StatusReply<ActorRef<ClusterEvent.ClusterDomainEvent>>>ask(
                                            guardian,
                                            replyTo -> new Command.GetChild<>(NodeGuardian.MEMBERSHIP_LOGGER, replyTo),
                                            WAIT,
                                            node.scheduler())
                                    .thenApply(reply -> {
                                        events.add("membership-logger " + (reply.isSuccess() ? "runs" : "gone"));
                                        return Done.getInstance();
                                    }));
            TestProbe<StatusReply<ActorRef<String>>> reply = node.createTestProbe();
            guardian.tell(new Command.SpawnChild<>(
                    ECHO,
                    Behaviors.receive(String.class)
                            .onSignal(PostStop.class, signal -> {
                                events.add("child-stopped");
                                return Behaviors.same();
                            })
                            .build(),
                    reply.getRef()));
            assertTrue(reply.receiveMessage(WAIT).isSuccess());

            CoordinatedShutdown.get(node.system())
                    .runAll(CoordinatedShutdown.unknownReason())
                    .toCompletableFuture()
                    .get(30, TimeUnit.SECONDS);

            assertEquals(List.of("child-stopped", "cluster-leave", "membership-logger runs"), events);
        } finally {
            node.shutdownTestKit();
        }
    }
}
