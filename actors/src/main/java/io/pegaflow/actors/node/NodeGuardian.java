package io.pegaflow.actors.node;

import io.pegaflow.actors.CborSerializable;
import io.pegaflow.actors.cluster.ClusterView;
import io.pegaflow.actors.cluster.MembershipLogger;
import io.pegaflow.config.Topology;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.apache.pekko.Done;
import org.apache.pekko.actor.Cancellable;
import org.apache.pekko.actor.CoordinatedShutdown;
import org.apache.pekko.actor.InvalidActorNameException;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.pattern.StatusReply;

/**
 * The parent of every actor a node runs: the membership logger today, the block directory's proxy and the transfer
 * coordinator next. Children are named and typed by a {@link ChildKey}; the node wiring spawns them through {@link
 * Command.SpawnChild} and anyone on the node obtains their refs through {@link Command.GetChild}. The guardian watches
 * each child: one that stops by itself (its own decision, or a failure under the default stop supervision) is
 * forgotten, so its name can be used again; a child that must survive failures brings its own {@code
 * Behaviors.supervise}.
 *
 * <p>Graceful stop: {@link Command.Stop} stops every child, waits until each has stopped, then stops the guardian.
 * On CoordinatedShutdown (SIGTERM, the Shutdown RPC) the guardian stops its children in the {@code
 * before-cluster-shutdown} phase, so the node's actors finish before the node leaves the cluster — all but the
 * membership logger, which logs the leave and stops with the actor system. Once either has begun, new children are
 * refused.
 *
 * <p>Registers with the receptionist under {@link #SERVICE_KEY}, so peers find each node's guardian; of its protocol
 * only {@link Command.GetClusterView} crosses nodes. Needs the {@code cluster} actor provider.
 */
public final class NodeGuardian extends AbstractBehavior<NodeGuardian.Command> {
    /** The guardian's actor name: {@code /user/node} when the node wiring spawns it. */
    public static final String NAME = "node";

    /** Every node's guardian registers under this key. */
    public static final ServiceKey<Command> SERVICE_KEY = ServiceKey.create(Command.class, "pegaflow-node-guardian");

    /** The child that logs membership changes; started with the guardian. */
    public static final ChildKey<ClusterEvent.ClusterDomainEvent> MEMBERSHIP_LOGGER =
            new ChildKey<>("membership-logger", ClusterEvent.ClusterDomainEvent.class);

    /** How long CoordinatedShutdown waits for the children to stop (under the phase's 5 s default). */
    static final Duration SHUTDOWN_STOP_TIMEOUT = Duration.ofSeconds(4);

    /**
     * A child's name and the message type it takes: what {@link Command.GetChild} needs to hand out a typed ref.
     *
     * @param name the actor name under the guardian (Pekko's rules: no {@code /}, not starting with {@code $})
     * @param protocol the class of the messages the child takes
     */
    public record ChildKey<T>(String name, Class<T> protocol) {
        public ChildKey {
            Objects.requireNonNull(name, "name");
            Objects.requireNonNull(protocol, "protocol");
        }
    }

    /** The guardian's protocol. */
    public interface Command {
        /**
         * Spawns {@code behavior} as a child named {@code key.name()}; replies with its ref, or with an error when the
         * name is taken (or still stopping), invalid, or the guardian is stopping. Local only: carries a behavior.
         */
        record SpawnChild<T>(ChildKey<T> key, Behavior<T> behavior, ActorRef<StatusReply<ActorRef<T>>> replyTo)
                implements LocalCommand {}

        /** Replies with the running child's ref, or an error naming what is wrong (no such child, other protocol). */
        record GetChild<T>(ChildKey<T> key, ActorRef<StatusReply<ActorRef<T>>> replyTo) implements LocalCommand {}

        /** Stops the named child; replies {@code Done} once it has stopped, or an error when there is no such child. */
        record StopChild(String name, ActorRef<StatusReply<Done>> replyTo) implements LocalCommand {}

        /** Replies with this node's view of the cluster. May come from another node. */
        record GetClusterView(ActorRef<ClusterView> replyTo) implements Command, CborSerializable {}

        /** Stops every child, then the guardian; replies {@code Done} once all have stopped. */
        record Stop(ActorRef<Done> replyTo) implements LocalCommand {}
    }

    /**
     * Commands that never leave this JVM (they carry behaviors, or manage this node's own actors): exempt from the
     * serialization check and bound to no serializer, so a remote send fails rather than reaching a peer.
     */
    public interface LocalCommand extends Command, NoSerializationVerificationNeeded {}

    /** A watched child has stopped. */
    private record ChildStopped(String name) implements LocalCommand {}

    /** CoordinatedShutdown's task: stop every child but the membership logger, reply once they have stopped. */
    private record StopForShutdown(ActorRef<Done> replyTo) implements LocalCommand {}

    private record Child(ChildKey<?> key, ActorRef<?> ref) {}

    private final Topology topology;
    private final Cancellable shutdownTask;
    private final Map<String, Child> running = new HashMap<>();
    /** Children asked to stop, not yet stopped, with whoever waits for them. */
    private final Map<String, List<ActorRef<StatusReply<Done>>>> stopping = new HashMap<>();
    /** Set once a graceful stop or the node's shutdown has begun: no new children. */
    private boolean closing;
    /** Whoever waits for a graceful stop (non-null once one was asked for): the guardian stops after the children. */
    private List<ActorRef<Done>> stopWaiters;
    /** Whoever waits for the shutdown's stop of the children: the guardian keeps running after it. */
    private final List<ActorRef<Done>> shutdownWaiters = new ArrayList<>(1);

    /**
     * The guardian of a node of {@code topology} (the topology names members in {@link ClusterView}s). The actor
     * system must use the {@code cluster} provider: the membership logger and {@link Command.GetClusterView} read the
     * cluster's state.
     */
    public static Behavior<Command> create(Topology topology) {
        Objects.requireNonNull(topology, "topology");
        return Behaviors.setup(context -> new NodeGuardian(context, topology));
    }

    private NodeGuardian(ActorContext<Command> context, Topology topology) {
        super(context);
        this.topology = topology;
        ActorRef<Command> self = context.getSelf();
        var system = context.getSystem();
        this.shutdownTask = CoordinatedShutdown.get(system)
                .addCancellableTask(
                        CoordinatedShutdown.PhaseBeforeClusterShutdown(),
                        "stop-node-actors",
                        () -> AskPattern.<Command, Done>ask(
                                        self, StopForShutdown::new, SHUTDOWN_STOP_TIMEOUT, system.scheduler())
                                .exceptionally(e -> Done.getInstance()));
        system.receptionist().tell(Receptionist.register(SERVICE_KEY, self));
        start(MEMBERSHIP_LOGGER, MembershipLogger.create());
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Command.SpawnChild.class, this::onSpawnChild)
                .onMessage(Command.GetChild.class, this::onGetChild)
                .onMessage(Command.StopChild.class, this::onStopChild)
                .onMessage(Command.GetClusterView.class, this::onGetClusterView)
                .onMessage(Command.Stop.class, this::onStop)
                .onMessage(StopForShutdown.class, this::onStopForShutdown)
                .onMessage(ChildStopped.class, this::onChildStopped)
                .onSignal(PostStop.class, this::onPostStop)
                .build();
    }

    private Behavior<Command> onSpawnChild(Command.SpawnChild<?> spawn) {
        spawnTyped(spawn);
        return this;
    }

    private <T> void spawnTyped(Command.SpawnChild<T> spawn) {
        String name = spawn.key().name();
        if (closing) {
            spawn.replyTo().tell(StatusReply.error("the node guardian is stopping: child '" + name + "' not started"));
        } else if (running.containsKey(name)) {
            spawn.replyTo().tell(StatusReply.error("a child named '" + name + "' already runs"));
        } else if (stopping.containsKey(name)) {
            spawn.replyTo().tell(StatusReply.error("a child named '" + name + "' is still stopping"));
        } else {
            try {
                spawn.replyTo().tell(StatusReply.success(start(spawn.key(), spawn.behavior())));
            } catch (InvalidActorNameException e) {
                spawn.replyTo().tell(StatusReply.error("invalid child name '" + name + "': " + e.getMessage()));
            }
        }
    }

    private <T> ActorRef<T> start(ChildKey<T> key, Behavior<T> behavior) {
        ActorRef<T> ref = getContext().spawn(behavior, key.name());
        getContext().watchWith(ref, new ChildStopped(key.name()));
        running.put(key.name(), new Child(key, ref));
        getContext().getLog().info("node actor {} started", ref.path());
        return ref;
    }

    private Behavior<Command> onGetChild(Command.GetChild<?> get) {
        replyWithChild(get);
        return this;
    }

    @SuppressWarnings("unchecked") // the key's protocol class was checked against the one it was spawned with
    private <T> void replyWithChild(Command.GetChild<T> get) {
        String name = get.key().name();
        Child child = running.get(name);
        if (child == null) {
            get.replyTo().tell(StatusReply.error("no child named '" + name + "' runs"));
        } else if (!child.key().equals(get.key())) {
            get.replyTo()
                    .tell(StatusReply.error("child '" + name + "' takes "
                            + child.key().protocol().getName() + ", not "
                            + get.key().protocol().getName()));
        } else {
            get.replyTo().tell(StatusReply.success((ActorRef<T>) child.ref()));
        }
    }

    private Behavior<Command> onStopChild(Command.StopChild stop) {
        List<ActorRef<StatusReply<Done>>> waiters = stopping.get(stop.name());
        if (waiters != null) {
            waiters.add(stop.replyTo());
            return this;
        }
        Child child = running.remove(stop.name());
        if (child == null) {
            stop.replyTo().tell(StatusReply.error("no child named '" + stop.name() + "' runs"));
            return this;
        }
        beginStopping(child).add(stop.replyTo());
        return this;
    }

    private List<ActorRef<StatusReply<Done>>> beginStopping(Child child) {
        List<ActorRef<StatusReply<Done>>> waiters = new ArrayList<>(1);
        stopping.put(child.key().name(), waiters);
        getContext().stop(child.ref());
        return waiters;
    }

    private Behavior<Command> onGetClusterView(Command.GetClusterView get) {
        get.replyTo().tell(ClusterView.of(getContext().getSystem(), topology));
        return this;
    }

    private Behavior<Command> onStop(Command.Stop stop) {
        if (stopWaiters == null) {
            stopWaiters = new ArrayList<>(1);
        }
        stopWaiters.add(stop.replyTo());
        stopChildren(true);
        return stoppedOnceChildrenAre();
    }

    private Behavior<Command> onStopForShutdown(StopForShutdown stop) {
        shutdownWaiters.add(stop.replyTo());
        stopChildren(false);
        return stoppedOnceChildrenAre();
    }

    private void stopChildren(boolean membershipLoggerToo) {
        closing = true;
        List<Child> toStop = running.values().stream()
                .filter(c -> membershipLoggerToo || !c.key().equals(MEMBERSHIP_LOGGER))
                .toList();
        if (!toStop.isEmpty()) {
            getContext()
                    .getLog()
                    .info(
                            "node actors stopping: {}",
                            toStop.stream().map(c -> c.key().name()).toList());
        }
        for (Child child : toStop) {
            running.remove(child.key().name());
            beginStopping(child);
        }
    }

    private Behavior<Command> onChildStopped(ChildStopped stopped) {
        List<ActorRef<StatusReply<Done>>> waiters = stopping.remove(stopped.name());
        if (waiters != null) {
            waiters.forEach(w -> w.tell(StatusReply.ack()));
            getContext().getLog().info("node actor {} stopped", stopped.name());
        } else if (running.remove(stopped.name()) != null) {
            getContext().getLog().warn("node actor {} stopped by itself", stopped.name());
        }
        return stoppedOnceChildrenAre();
    }

    /** Answers whoever waits once no child is still stopping; stops the guardian if a graceful stop was asked. */
    private Behavior<Command> stoppedOnceChildrenAre() {
        if (!stopping.isEmpty()) {
            return this;
        }
        shutdownWaiters.forEach(w -> w.tell(Done.getInstance()));
        shutdownWaiters.clear();
        if (stopWaiters == null) {
            return this;
        }
        stopWaiters.forEach(w -> w.tell(Done.getInstance()));
        return Behaviors.stopped();
    }

    private Behavior<Command> onPostStop(PostStop signal) {
        shutdownTask.cancel();
        return this;
    }
}
