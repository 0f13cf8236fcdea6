package io.pegaflow.actors.directory;

import java.time.Duration;
import java.util.List;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Subscribe;

/**
 * Keeps every range running. Ranges are not remembered entities (that would need durable storage), so a range whose
 * host died would start only on its next message; after each membership change (a member up or removed) this actor
 * sends {@link BlockRange.Command.Wake} to every range at each of {@code wake-delays}, so the range restarts and rebuilds
 * before a lookup needs it. Several delays because the shard coordinator reallocates a dead host's ranges only after
 * the host is removed, and rebalances after a join only at its next rebalance round.
 */
final class RangeKeeper {
    private record MemberChanged(ClusterEvent.MemberEvent event) implements Command {}

    private record WakeAll(int delayIndex) implements Command {}

    /** Local messages only. */
    public interface Command extends NoSerializationVerificationNeeded {}

    private RangeKeeper() {}

    static Behavior<Command> create(RangeRefs ranges, int selfNode, List<Duration> delays) {
        return Behaviors.setup(context -> {
            Cluster.get(context.getSystem())
                    .subscriptions()
                    .tell(Subscribe.create(
                            context.messageAdapter(ClusterEvent.MemberEvent.class, MemberChanged::new),
                            ClusterEvent.MemberEvent.class));
            return Behaviors.withTimers(timers -> Behaviors.receive(Command.class)
                    .onMessage(MemberChanged.class, m -> onMemberChanged(m, timers, delays))
                    .onMessage(WakeAll.class, w -> onWakeAll(ranges, selfNode))
                    .build());
        });
    }

    private static Behavior<Command> onMemberChanged(
            MemberChanged changed, TimerScheduler<Command> timers, List<Duration> delays) {
        ClusterEvent.MemberEvent e = changed.event();
        if (e instanceof ClusterEvent.MemberUp || e instanceof ClusterEvent.MemberRemoved) {
            // Same key per delay: a burst of changes restarts the timers instead of multiplying the wakes.
            for (int i = 0; i < delays.size(); i++) {
                timers.startSingleTimer(i, new WakeAll(i), delays.get(i));
            }
        }
        return Behaviors.same();
    }

    private static Behavior<Command> onWakeAll(RangeRefs ranges, int selfNode) {
        BlockRange.Command.Wake wake = new BlockRange.Command.Wake(selfNode);
        for (int r = 0; r < ranges.rangeCount(); r++) {
            ranges.get(r).tell(wake);
        }
        return Behaviors.same();
    }
}
