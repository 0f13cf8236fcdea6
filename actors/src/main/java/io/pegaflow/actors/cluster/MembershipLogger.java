package io.pegaflow.actors.cluster;

import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Subscribe;

/** Logs membership changes at INFO: lifecycle events an operator wants in the node's log. */
public final class MembershipLogger extends AbstractBehavior<ClusterEvent.ClusterDomainEvent> {

    public static Behavior<ClusterEvent.ClusterDomainEvent> create() {
        return Behaviors.setup(context -> {
            Cluster.get(context.getSystem())
                    .subscriptions()
                    .tell(Subscribe.create(context.getSelf(), ClusterEvent.ClusterDomainEvent.class));
            return new MembershipLogger(context);
        });
    }

    private MembershipLogger(ActorContext<ClusterEvent.ClusterDomainEvent> context) {
        super(context);
    }

    @Override
    public Receive<ClusterEvent.ClusterDomainEvent> createReceive() {
        return newReceiveBuilder()
                .onMessage(ClusterEvent.MemberUp.class, this::onMemberUp)
                .onMessage(ClusterEvent.MemberLeft.class, e -> onMember("leaving", e.member()))
                .onMessage(ClusterEvent.MemberExited.class, e -> onMember("exited", e.member()))
                .onMessage(ClusterEvent.MemberRemoved.class, e -> onMember("removed", e.member()))
                .onMessage(ClusterEvent.UnreachableMember.class, e -> onMember("unreachable", e.member()))
                .onMessage(ClusterEvent.ReachableMember.class, e -> onMember("reachable again", e.member()))
                .onMessage(ClusterEvent.MemberDowned.class, e -> onMember("downed", e.member()))
                .onAnyMessage(e -> this)
                .build();
    }

    private MembershipLogger onMemberUp(ClusterEvent.MemberUp event) {
        return onMember("up", event.member());
    }

    private MembershipLogger onMember(String what, org.apache.pekko.cluster.Member member) {
        getContext().getLog().info("member {} {} (roles {})", member.address(), what, member.getRoles());
        return this;
    }
}
