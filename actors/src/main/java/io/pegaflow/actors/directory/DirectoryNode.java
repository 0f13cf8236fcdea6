package io.pegaflow.actors.directory;

import io.pegaflow.config.Topology;
import java.util.concurrent.Executor;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.cluster.sharding.typed.ClusterShardingSettings;
import org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding;
import org.apache.pekko.cluster.sharding.typed.javadsl.Entity;
import org.apache.pekko.cluster.typed.Cluster;

/**
 * The directory's part of one node, wired in one call: starts {@link BlockRange} sharding (every node hosts ranges;
 * no passivation, so a range keeps its state until its shard moves; each range on its home node while that node is
 * Up, {@link HomeRangeAllocation}, with the configured rebalance limits), and spawns as system actors this node's
 * {@link HoldingsProvider} and {@link LookupRelay} (both registered with the Receptionist), the {@link PublishFlusher} that
 * drains the {@link DirectoryPublisher}, the {@link RangeKeeper}, the tracker of the other nodes' relays, and (always
 * as a system actor) the {@link RelayReplies} collector of this node's relayed lookups. The node feeds {@link #publisher()} from its store's events and
 * answers lookups through {@link #client()}.
 */
public final class DirectoryNode {
    private final DirectoryNodes nodes;
    private final int selfIndex;
    private final DirectorySettings settings;
    private final DirectoryPublisher publisher;
    private final DirectoryClient client;
    private final DirectoryCounters counters;

    private DirectoryNode(
            DirectoryNodes nodes,
            int selfIndex,
            DirectorySettings settings,
            DirectoryPublisher publisher,
            DirectoryClient client,
            DirectoryCounters counters) {
        this.counters = counters;
        this.nodes = nodes;
        this.selfIndex = selfIndex;
        this.settings = settings;
        this.publisher = publisher;
        this.client = client;
    }

    /**
     * Starts the directory on {@code system} (a cluster ActorSystem of {@code topology}, node {@code selfNodeId}).
     * Call once per ActorSystem, right after creating it.
     *
     * @param holdings this node's holdings for rebuilds; {@code null} answers from what the publisher has published
     *     (exact, and needs no store scan)
     * @throws IllegalArgumentException when the topology has more than 64 nodes or no node {@code selfNodeId}
     */
    public static DirectoryNode start(
            ActorSystem<?> system, Topology topology, String selfNodeId, LocalHoldings holdings) {
        return start(system, topology, selfNodeId, holdings, systemActors(system));
    }

    /**
     * Spawns the directory's per-node actors. None of their refs is needed afterwards, so an asynchronous spawn (e.g.
     * a {@code SpawnChild} message to the node guardian) is fine.
     */
    public interface Spawner {
        <T> void spawn(Behavior<T> behavior, String name, Class<T> protocol);
    }

    /** Spawns as system actors of {@code system} (the default of {@link #start(ActorSystem, Topology, String, LocalHoldings)}). */
    public static Spawner systemActors(ActorSystem<?> system) {
        return new Spawner() {
            @Override
            public <T> void spawn(Behavior<T> behavior, String name, Class<T> protocol) {
                system.systemActorOf(behavior, name, Props.empty());
            }
        };
    }

    /** As {@link #start(ActorSystem, Topology, String, LocalHoldings)}, spawning the actors through {@code spawner}. */
    public static DirectoryNode start(
            ActorSystem<?> system, Topology topology, String selfNodeId, LocalHoldings holdings, Spawner spawner) {
        DirectoryNodes nodes = new DirectoryNodes(topology);
        int self = nodes.requireIndex(selfNodeId);
        DirectorySettings settings = DirectorySettings.from(system.settings().config());
        long incarnation = Cluster.get(system).selfMember().uniqueAddress().longUid();

        DirectoryCounters counters = new DirectoryCounters();
        ClusterSharding sharding = ClusterSharding.get(system);
        LocalRanges local = new LocalRanges(nodes.rangeCount());
        sharding.init(Entity.of(
                        BlockRange.TYPE_KEY,
                        ctx -> BlockRange.create(ctx.getEntityId(), nodes, self, settings, counters, local))
                .withMessageExtractor(new RangeMessageExtractor())
                .withAllocationStrategy(HomeRangeAllocation.forCluster(
                        org.apache.pekko.cluster.Cluster.get(Adapter.toClassic(system)),
                        nodes,
                        settings.rebalanceAbsoluteLimit(),
                        settings.rebalanceRelativeLimit()))
                .withSettings(ClusterShardingSettings.create(system).withNoPassivationStrategy()));
        RangeRefs ranges = new RangeRefs(sharding, nodes.rangeCount());

        DirectoryPublisher publisher = new DirectoryPublisher(self, incarnation, nodes.rangeCount(), settings);
        Executor scans =
                system.dispatchers().lookup(DispatcherSelector.fromConfig(DirectorySettings.HOLDINGS_DISPATCHER));
        spawner.spawn(
                HoldingsProvider.create(
                        self,
                        incarnation,
                        holdings != null ? holdings : publisher,
                        publisher,
                        scans,
                        settings.holdingsParallelism(),
                        settings.maxFingerprintsPerMessage()),
                "pegaflow-directory-holdings",
                HoldingsProvider.Command.class);
        spawner.spawn(
                PublishFlusher.create(publisher, ranges, settings.flushInterval()),
                "pegaflow-directory-publisher",
                PublishFlusher.Command.class);
        spawner.spawn(
                RangeKeeper.create(ranges, self, settings.wakeDelays()),
                "pegaflow-directory-keeper",
                RangeKeeper.Command.class);
        RelayTable relays = null;
        RelayReplies replies = null;
        ActorRef<LookupRelay.RelayReply> repliesRef = null;
        if (settings.lookupRelay()) {
            spawner.spawn(
                    LookupRelay.create(ranges, local, self, counters, settings.lookupAskAgainAfter()),
                    "pegaflow-directory-lookup-relay",
                    LookupRelay.Command.class);
            relays = new RelayTable(nodes.size());
            spawner.spawn(RelayTable.tracker(relays, nodes, self), "pegaflow-directory-relays", Object.class);
            // A system actor, whatever the spawner: the client needs its ref now, and it only completes futures.
            replies = new RelayReplies();
            repliesRef = system.systemActorOf(replies.behavior(), "pegaflow-directory-relay-replies", Props.empty());
        }
        DirectoryClient client = new DirectoryClient(
                nodes,
                ranges,
                settings.maxFingerprintsPerMessage(),
                relays,
                replies,
                repliesRef,
                settings.lookupRelay() ? local : null,
                counters);
        return new DirectoryNode(nodes, self, settings, publisher, client, counters);
    }

    public DirectoryClient client() {
        return client;
    }

    public DirectoryPublisher publisher() {
        return publisher;
    }

    /** This node's range counters (entries hosted, rebuilds, lookups) for its metrics. */
    public DirectoryCounters counters() {
        return counters;
    }

    public DirectoryNodes nodes() {
        return nodes;
    }

    /** This node's index in {@link #nodes()}. */
    public int selfIndex() {
        return selfIndex;
    }

    public DirectorySettings settings() {
        return settings;
    }
}
