package io.pegaflow.actors.directory;

import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.apache.pekko.actor.ActorRef;
import org.apache.pekko.actor.Address;
import org.apache.pekko.cluster.Cluster;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.sharding.ShardCoordinator;
import org.apache.pekko.dispatch.Futures;
import scala.collection.immutable.IndexedSeq;
import scala.concurrent.Future;

/**
 * Where the ranges run: range {@code r} has a home, the node at position {@code r mod n} of the static topology, and
 * runs there whenever that node is Up and reachable; while it is not, the range goes to the healthy region with the
 * fewest ranges and moves home once the node is back and the membership is stable.
 *
 * <p>Why not Pekko's least-shard strategy: started one node at a time, a 3-node cluster of 256 ranges rebalanced every
 * 2 s moved 236 ranges in three rounds where 170 had to move (every 10 s, Pekko's default, one round of 170, but 6-12 s
 * after the last join), and each move is a rebuild during which the range answers "incomplete". Homes move each range
 * at most once per membership change, give a restarted node back the same ranges, and let every node guess a range's
 * host before it has asked.
 *
 * <p>Moves only in a stable membership, as Pekko's own strategies do: no member unreachable or joining, and no two
 * regions on one node (a crashed node restarted on its address is Up again while its old region is still registered
 * for the downing margin; a hand-off from that region would wait for its timeout). Runs inside the shard coordinator
 * (one node's), so it must not block: it reads only the regions it is given and the cluster state that node has.
 */
final class HomeRangeAllocation extends ShardCoordinator.AbstractShardAllocationStrategy {
    /** What the strategy needs to know of the cluster (a test gives its own). */
    interface Membership {
        /** The topology index of the region's node while its member is Up and reachable, else -1. */
        int healthyNodeOf(ActorRef region);

        /** Whether the region's member is Up and reachable, whether or not it is a topology node. */
        boolean healthy(ActorRef region);

        /** Whether ranges may move now: no member unreachable, joining or weakly up. */
        boolean stable();
    }

    private final int nodeCount;
    private final Membership membership;
    private final int absoluteLimit;
    private final double relativeLimit;

    /**
     * @param absoluteLimit ranges one rebalance round may move
     * @param relativeLimit share of all ranges one rebalance round may move (the lower limit wins)
     */
    HomeRangeAllocation(int nodeCount, Membership membership, int absoluteLimit, double relativeLimit) {
        if (nodeCount < 1) {
            throw new IllegalArgumentException("nodeCount must be >= 1, got " + nodeCount);
        }
        this.nodeCount = nodeCount;
        this.membership = membership;
        this.absoluteLimit = absoluteLimit;
        this.relativeLimit = relativeLimit;
    }

    /** The strategy for a node of {@code cluster}: regions are mapped to topology nodes through its members. */
    static HomeRangeAllocation forCluster(
            Cluster cluster, DirectoryNodes nodes, int absoluteLimit, double relativeLimit) {
        return new HomeRangeAllocation(
                nodes.size(), new ClusterMembership(cluster, nodes), absoluteLimit, relativeLimit);
    }

    /** The home node of range {@code range} in a topology of {@code nodeCount} nodes. */
    static int homeOf(int range, int nodeCount) {
        return range % nodeCount;
    }

    /**
     * Called with the regions that may take ranges (the coordinator leaves out those shutting down or terminated); the
     * answer must be one of them.
     */
    @Override
    public Future<ActorRef> allocateShard(
            ActorRef requester, String shardId, Map<ActorRef, IndexedSeq<String>> currentShardAllocations) {
        int range = rangeOf(shardId);
        ActorRef[] homes = range < 0 ? null : homes(currentShardAllocations);
        if (homes != null && homes[homeOf(range, nodeCount)] != null) {
            return Futures.successful(homes[homeOf(range, nodeCount)]);
        }
        return Futures.successful(leastLoaded(currentShardAllocations, requester));
    }

    /** Called with every registered region, also those shutting down: only healthy ones give ranges away. */
    @Override
    public Future<Set<String>> rebalance(
            Map<ActorRef, IndexedSeq<String>> currentShardAllocations, Set<String> rebalanceInProgress) {
        Set<String> moves = new HashSet<>();
        if (!rebalanceInProgress.isEmpty() || !membership.stable()) {
            return Futures.successful(moves); // one round at a time, and none while members come and go
        }
        ActorRef[] home = homes(currentShardAllocations);
        if (home == null) {
            return Futures.successful(moves);
        }
        int total = 0;
        for (IndexedSeq<String> shards : currentShardAllocations.values()) {
            total += shards.length();
        }
        int limit = (int) Math.max(1, Math.min(absoluteLimit, Math.floor(relativeLimit * total)));
        for (Map.Entry<ActorRef, IndexedSeq<String>> region : currentShardAllocations.entrySet()) {
            if (!membership.healthy(region.getKey())) {
                continue; // its ranges move when the region is gone; a hand-off from it would only time out
            }
            IndexedSeq<String> shards = region.getValue();
            for (int i = 0; i < shards.length() && moves.size() < limit; i++) {
                int range = rangeOf(shards.apply(i));
                if (range < 0) {
                    continue;
                }
                ActorRef target = home[homeOf(range, nodeCount)];
                if (target != null && !target.equals(region.getKey())) {
                    moves.add(shards.apply(i));
                }
            }
        }
        return Futures.successful(moves);
    }

    /**
     * The region of each topology node that is healthy (null where none), or null when two regions claim one node (an
     * old incarnation's region not yet removed): then no home is trusted.
     */
    private ActorRef[] homes(Map<ActorRef, IndexedSeq<String>> regions) {
        ActorRef[] byNode = new ActorRef[nodeCount];
        for (ActorRef region : regions.keySet()) {
            int node = membership.healthyNodeOf(region);
            if (node >= 0 && node < nodeCount) {
                if (byNode[node] != null) {
                    return null;
                }
                byNode[node] = region;
            }
        }
        return byNode;
    }

    /** The healthy region with the fewest ranges, else any region with the fewest (the requester when none). */
    private ActorRef leastLoaded(Map<ActorRef, IndexedSeq<String>> regions, ActorRef requester) {
        ActorRef best = null;
        boolean bestHealthy = false;
        int fewest = Integer.MAX_VALUE;
        for (Map.Entry<ActorRef, IndexedSeq<String>> region : regions.entrySet()) {
            ActorRef ref = region.getKey();
            boolean healthy = membership.healthy(ref);
            int n = region.getValue().length();
            boolean better = best == null
                    || (healthy && !bestHealthy)
                    || (healthy == bestHealthy && (n < fewest || (n == fewest && ref.compareTo(best) < 0)));
            if (better) {
                best = ref;
                bestHealthy = healthy;
                fewest = n;
            }
        }
        return best == null ? requester : best;
    }

    /** The range a shard id names (shard id = range number), or -1 for anything else. */
    private static int rangeOf(String shardId) {
        try {
            return Math.max(-1, Integer.parseInt(shardId));
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** {@link Membership} from the coordinator's node's view of the cluster. */
    private record ClusterMembership(Cluster cluster, DirectoryNodes nodes) implements Membership {
        @Override
        public int healthyNodeOf(ActorRef region) {
            Member m = healthyMember(region);
            return m == null ? -1 : nodes.indexOf(m);
        }

        @Override
        public boolean healthy(ActorRef region) {
            return healthyMember(region) != null;
        }

        @Override
        public boolean stable() {
            ClusterEvent.CurrentClusterState state = cluster.state();
            if (!state.getUnreachable().isEmpty()) {
                return false;
            }
            for (Member m : state.getMembers()) {
                if (m.status() == MemberStatus.joining() || m.status() == MemberStatus.weaklyUp()) {
                    return false;
                }
            }
            return true;
        }

        private Member healthyMember(ActorRef region) {
            Address address = region.path().address();
            if (!address.hasGlobalScope()) {
                address = cluster.selfAddress(); // the coordinator's own node's region
            }
            ClusterEvent.CurrentClusterState state = cluster.state();
            for (Member m : state.getMembers()) {
                if (m.address().equals(address)) {
                    return m.status() == MemberStatus.up()
                                    && !state.getUnreachable().contains(m)
                            ? m
                            : null;
                }
            }
            return null;
        }
    }
}
