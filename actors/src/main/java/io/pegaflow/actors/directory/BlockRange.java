package io.pegaflow.actors.directory;

import java.time.Duration;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.sharding.typed.javadsl.EntityTypeKey;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Subscribe;

/**
 * The sharded entity that owns one fixed slice of the fingerprint space ({@link Fingerprints#rangeOf}; entity id =
 * the range number, one range per shard) and records which nodes hold each sealed block of it. State lives here,
 * in a {@link HolderTable} (fingerprint → holder bitmask), under the rules of {@link RangeState}.
 *
 * <p>On start (first use, rebalance, its host died) it asks every member's {@link HoldingsProvider} for the node's
 * holdings in this slice and answers lookups meanwhile with what it has, marked incomplete. It follows membership
 * itself: a node that leaves or is downed has its holdings purged here.
 */
public final class BlockRange extends AbstractBehavior<BlockRange.Command> {
    /** Sharding key of the directory's ranges; entity ids are {@code "0"} … {@code "R-1"}. */
    public static final EntityTypeKey<Command> TYPE_KEY = EntityTypeKey.create(Command.class, "pegaflow-block-range");

    private static final Duration TICK = Duration.ofMillis(250);

    /** Messages a range accepts: the records nested here (all cross nodes), and private local ones. */
    public interface Command {
        /**
         * A batch of one node's changes in this range: blocks it now holds and blocks it no longer holds (each
         * fingerprint at most once per batch).
         *
         * @param node the publisher's node index
         * @param incarnation the publisher's member uid (its unique address id)
         * @param sequence 1, 2, 3, … per (incarnation, range): gaps tell the range that something was lost
         */
        record Publish(int node, long incarnation, long sequence, long[] added, long[] removed)
                implements Command, DirectoryWire {}

        /**
         * Holders of each fingerprint (all in this range).
         *
         * @param requestId echoed in the reply, so one asker can tell apart the replies of many lookups
         */
        record Lookup(long[] fingerprints, long requestId, ActorRef<LookupReply> replyTo)
                implements Command, DirectoryWire {
            public Lookup(long[] fingerprints, ActorRef<LookupReply> replyTo) {
                this(fingerprints, 0, replyTo);
            }
        }

        /**
         * Purge node {@code node}'s holdings if the range trusts incarnation {@code incarnation} for it. Each range sends
         * this to itself from its membership subscription; others may send it for a member known to be gone.
         */
        record PurgeNode(int node, long incarnation) implements Command, DirectoryWire {}

        /**
         * A node's answer to {@link HoldingsProvider.Command.GetHoldings}, in chunks {@code 0, 1, …} (the last flagged).
         *
         * @param sequence the label: the last publish number the node had sent to this range when it read its holdings
         */
        record Holdings(
                int node, long incarnation, long requestId, long sequence, int chunk, boolean last, long[] fingerprints)
                implements Command, DirectoryWire {}

        /** Starts the range if it is not running (no reply). */
        record Wake(int fromNode) implements Command, DirectoryWire {}

        /** Asks for {@link RangeStats}. */
        record GetStats(ActorRef<RangeStats> replyTo) implements Command, DirectoryWire {}
    }

    /**
     * @param requestId the lookup's {@code requestId}
     * @param holderMasks per fingerprint of the lookup, a bitmask over node indices ({@link DirectoryNodes}); 0 = no
     *     holder known
     * @param complete whether every Up node's holdings are in (false while the range rebuilds)
     * @param hostNode index of the node this range runs on
     */
    public record LookupReply(int range, long requestId, long[] holderMasks, boolean complete, int hostNode)
            implements DirectoryWire {}

    /**
     * @param entries fingerprints with at least one holder
     * @param tableBytes bytes of the holder table's array
     * @param ignoredMessages publishes/answers from untrusted incarnations, duplicates, stale answers
     * @param resyncs times a node's holdings were asked for again after a gap
     */
    public record RangeStats(
            int range,
            int hostNode,
            int entries,
            long tableBytes,
            boolean complete,
            int liveNodes,
            long snapshotsApplied,
            long ignoredMessages,
            long resyncs)
            implements DirectoryWire {}

    private record MembershipChanged(ClusterEvent.MemberEvent event)
            implements Command, NoSerializationVerificationNeeded {}

    private record ProvidersChanged(Receptionist.Listing listing)
            implements Command, NoSerializationVerificationNeeded {}

    private enum Tick implements Command, NoSerializationVerificationNeeded {
        INSTANCE
    }

    private final DirectoryNodes nodes;
    private final int selfNode;
    private final long retryNanos;
    private final TimerScheduler<Command> timers;
    private final RangeState state;
    private final long startedAtNanos = System.nanoTime();

    @SuppressWarnings("unchecked")
    private final ActorRef<HoldingsProvider.Command>[] providers;

    private final DirectoryCounters counters;
    private final LocalRanges local;
    private long nextRequestId;
    private boolean reportedComplete;
    private long reportedEntries;
    private long reportedIgnored;
    private long reportedResyncs;

    /**
     * @param entityId the range number as sharding gives it
     * @param selfNode index of the node this entity runs on
     */
    public static Behavior<Command> create(
            String entityId,
            DirectoryNodes nodes,
            int selfNode,
            DirectorySettings settings,
            DirectoryCounters counters,
            LocalRanges local) {
        int range = parseRange(entityId, nodes.rangeCount());
        return Behaviors.setup(context -> Behaviors.withTimers(
                timers -> new BlockRange(context, timers, range, nodes, selfNode, settings, counters, local)));
    }

    static int parseRange(String entityId, int rangeCount) {
        int range;
        try {
            range = Integer.parseInt(entityId);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("block range entity id must be a number, got \"" + entityId + "\"");
        }
        if (range < 0 || range >= rangeCount) {
            throw new IllegalArgumentException(
                    "block range " + range + " outside [0, " + rangeCount + ") (topology directoryRanges)");
        }
        return range;
    }

    @SuppressWarnings("unchecked")
    private BlockRange(
            ActorContext<Command> context,
            TimerScheduler<Command> timers,
            int range,
            DirectoryNodes nodes,
            int selfNode,
            DirectorySettings settings,
            DirectoryCounters counters,
            LocalRanges local) {
        super(context);
        this.counters = counters;
        this.local = local;
        this.nodes = nodes;
        this.selfNode = selfNode;
        this.timers = timers;
        this.retryNanos = settings.snapshotRetryInterval().toNanos();
        this.state = new RangeState(
                range,
                nodes.rangeCount(),
                nodes.size(),
                settings.rebuildTimeout().toNanos(),
                settings.rebuildLogLimit());
        this.providers = new ActorRef[nodes.size()];

        Cluster cluster = Cluster.get(context.getSystem());
        long now = System.nanoTime();
        for (Member m : cluster.state().getMembers()) {
            onMember(m, now);
        }
        state.membershipKnown();
        cluster.subscriptions()
                .tell(Subscribe.create(
                        context.messageAdapter(ClusterEvent.MemberEvent.class, MembershipChanged::new),
                        ClusterEvent.MemberEvent.class));
        context.getSystem()
                .receptionist()
                .tell(Receptionist.subscribe(
                        HoldingsProvider.SERVICE_KEY,
                        context.messageAdapter(Receptionist.Listing.class, ProvidersChanged::new)));
        context.getLog().debug("directory range {} starting on node {}", range, nodes.idOf(selfNode));
        counters.rangeStarted();
        local.started(range, context.getSelf(), state);
        afterChange();
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Command.Publish.class, this::onPublish)
                .onMessage(Command.Lookup.class, this::onLookup)
                .onMessage(Command.Holdings.class, this::onHoldings)
                .onMessage(Command.PurgeNode.class, this::onPurgeNode)
                .onMessage(MembershipChanged.class, this::onMembershipChanged)
                .onMessage(ProvidersChanged.class, this::onProvidersChanged)
                .onMessage(Command.Wake.class, w -> this)
                .onMessage(Command.GetStats.class, this::onGetStats)
                .onMessageEquals(Tick.INSTANCE, this::onTick)
                .onSignal(PostStop.class, stopped -> onPostStop())
                .build();
    }

    private Behavior<Command> onPublish(Command.Publish p) {
        state.onPublish(p, System.nanoTime());
        afterChange();
        return this;
    }

    private Behavior<Command> onPostStop() {
        local.stopped(state.range(), getContext().getSelf());
        counters.rangeStopped(reportedEntries);
        return this;
    }

    private Behavior<Command> onLookup(Command.Lookup lookup) {
        counters.lookedUp(lookup.fingerprints().length);
        long[] masks = new long[lookup.fingerprints().length];
        state.lookup(lookup.fingerprints(), masks);
        lookup.replyTo()
                .tell(new LookupReply(
                        state.range(), lookup.requestId(), masks, state.complete(System.nanoTime()), selfNode));
        return this;
    }

    private Behavior<Command> onHoldings(Command.Holdings h) {
        state.onHoldings(h, System.nanoTime());
        afterChange();
        return this;
    }

    private Behavior<Command> onPurgeNode(Command.PurgeNode purge) {
        int before = state.entries();
        state.memberGone(purge.node(), purge.incarnation());
        if (state.entries() != before) {
            getContext()
                    .getLog()
                    .debug("range {}: purged node {} ({} entries left)", state.range(), purge.node(), state.entries());
        }
        afterChange();
        return this;
    }

    private Behavior<Command> onMembershipChanged(MembershipChanged changed) {
        onMember(changed.event().member(), System.nanoTime());
        afterChange();
        return this;
    }

    private void onMember(Member member, long nowNanos) {
        int node = nodes.indexOf(member);
        if (node < 0) {
            return;
        }
        long uid = member.uniqueAddress().longUid();
        MemberStatus status = member.status();
        if (status == MemberStatus.joining() || status == MemberStatus.weaklyUp()) {
            state.memberPresent(node, uid, false, nowNanos);
        } else if (status == MemberStatus.up()
                || status == MemberStatus.shuttingDown()
                || status == MemberStatus.shutDown()) {
            // Up, or preparing a full-cluster shutdown (still serving).
            state.memberPresent(node, uid, true, nowNanos);
        } else {
            // Leaving, Exiting, Down, Removed: it no longer serves blocks.
            state.memberGone(node, uid);
        }
    }

    private Behavior<Command> onProvidersChanged(ProvidersChanged changed) {
        java.util.Arrays.fill(providers, null);
        for (ActorRef<HoldingsProvider.Command> ref :
                changed.listing().getServiceInstances(HoldingsProvider.SERVICE_KEY)) {
            int node = ref.path().address().hasGlobalScope()
                    ? nodes.indexOf(ref.path().address())
                    : selfNode;
            if (node >= 0) {
                providers[node] = ref;
            }
        }
        afterChange();
        return this;
    }

    private Behavior<Command> onGetStats(Command.GetStats get) {
        get.replyTo()
                .tell(new RangeStats(
                        state.range(),
                        selfNode,
                        state.entries(),
                        state.tableBytes(),
                        state.complete(System.nanoTime()),
                        state.liveNodes(),
                        state.snapshotsApplied(),
                        state.ignoredMessages(),
                        state.resyncs()));
        return this;
    }

    private Behavior<Command> onTick() {
        afterChange();
        return this;
    }

    /** Asks for the holdings still missing, keeps the retry timer only while some are, logs completion once. */
    private void afterChange() {
        long now = System.nanoTime();
        for (int node = 0; node < providers.length; node++) {
            if (providers[node] != null && state.wantsHoldings(node, now, retryNanos)) {
                long id = ++nextRequestId;
                state.requested(node, id, now);
                providers[node].tell(new HoldingsProvider.Command.GetHoldings(
                        state.range(), nodes.rangeCount(), id, getContext().getSelf()));
            }
        }
        if (state.anyAwaiting()) {
            if (!timers.isTimerActive(Tick.INSTANCE)) {
                timers.startTimerWithFixedDelay(Tick.INSTANCE, TICK);
            }
        } else {
            timers.cancel(Tick.INSTANCE);
        }
        counters.entriesChanged(state.entries() - reportedEntries);
        reportedEntries = state.entries();
        counters.ignored(state.ignoredMessages() - reportedIgnored);
        reportedIgnored = state.ignoredMessages();
        counters.resynced(state.resyncs() - reportedResyncs);
        reportedResyncs = state.resyncs();
        if (!reportedComplete && state.complete(now)) {
            reportedComplete = true;
            counters.rebuilt((now - startedAtNanos) / 1_000_000);
            getContext()
                    .getLog()
                    .info(
                            "directory range {} started on node {}, complete after {} ms ({} entries from {} nodes)",
                            state.range(),
                            nodes.idOf(selfNode),
                            (now - startedAtNanos) / 1_000_000,
                            state.entries(),
                            state.liveNodes());
        }
    }
}
