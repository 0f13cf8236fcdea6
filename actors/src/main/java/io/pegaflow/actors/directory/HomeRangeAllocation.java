package io.pegaflow.actors.directory;

import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.function.ToIntFunction;
import org.apache.pekko.actor.ActorRef;
import org.apache.pekko.actor.Address;
import org.apache.pekko.cluster.Cluster;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.sharding.ShardCoordinator;
import org.apache.pekko.dispatch.Futures;
import scala.collection.immutable.IndexedSeq;
import scala.concurrent.Future;

/**
 * Where the ranges run: range {@code r} has a home, the node at position {@code r mod n} of the static topology, and
 * runs there whenever that node is Up; while it is not, the range goes to the region with the fewest ranges and
 * returns home once the node is Up again.
 *
 * <p>Why not Pekko's least-shard strategy: it chooses which ranges to move by count only, and the moved ones are
 * placed on their next message wherever the count is lowest at that instant — during a rebalance that is often the
 * node they just left. Started one node at a time, a 3-node cluster of 256 ranges rebalanced every 2 s moved 236 in
 * three rounds where 170 had to (every 10 s, Pekko's default, one round of 170, but 6-12 s after the last join), and
 * each move is a rebuild during which the range answers "incomplete". Homes move each range at most once per
 * membership change, keep a restarted node's ranges where they were, and let every node predict a range's host.
 *
 * <p>Runs inside the shard coordinator (one node's), so it must not block: it reads only the regions it is given and
 * the cluster state that node already has.
 */
final class HomeRangeAllocation extends ShardCoordinator.AbstractShardAllocationStrategy {
    private final int nodeCount;
    private final ToIntFunction<ActorRef> upNodeOfRegion;
    private final int absoluteLimit;
    private final double relativeLimit;

    /**
     * @param upNodeOfRegion the topology index of a shard region's node while that node is Up, else -1
     * @param absoluteLimit ranges one rebalance round may move
     * @param relativeLimit share of all ranges one rebalance round may move (the lower limit wins)
     */
    HomeRangeAllocation(
            int nodeCount, ToIntFunction<ActorRef> upNodeOfRegion, int absoluteLimit, double relativeLimit) {
        if (nodeCount < 1) {
            throw new IllegalArgumentException("nodeCount must be >= 1, got " + nodeCount);
        }
        this.nodeCount = nodeCount;
        this.upNodeOfRegion = upNodeOfRegion;
        this.absoluteLimit = absoluteLimit;
        this.relativeLimit = relativeLimit;
    }

    /** The strategy for a node of {@code cluster}: regions are mapped to topology nodes through its members. */
    static HomeRangeAllocation forCluster(
            Cluster cluster, DirectoryNodes nodes, int absoluteLimit, double relativeLimit) {
        return new HomeRangeAllocation(
                nodes.size(), region -> upNodeOf(cluster, nodes, region), absoluteLimit, relativeLimit);
    }

    /** The home node of range {@code range} in a topology of {@code nodeCount} nodes. */
    static int homeOf(int range, int nodeCount) {
        return range % nodeCount;
    }

    @Override
    public Future<ActorRef> allocateShard(
            ActorRef requester, String shardId, Map<ActorRef, IndexedSeq<String>> currentShardAllocations) {
        int range = rangeOf(shardId);
        if (range >= 0) {
            ActorRef home = upRegions(currentShardAllocations)[homeOf(range, nodeCount)];
            if (home != null) {
                return Futures.successful(home);
            }
        }
        return Futures.successful(leastLoaded(currentShardAllocations, requester));
    }

    @Override
    public Future<Set<String>> rebalance(
            Map<ActorRef, IndexedSeq<String>> currentShardAllocations, Set<String> rebalanceInProgress) {
        Set<String> moves = new HashSet<>();
        if (!rebalanceInProgress.isEmpty()) {
            return Futures.successful(moves); // one round at a time: the moved ranges are placed before the next
        }
        int total = 0;
        for (IndexedSeq<String> shards : currentShardAllocations.values()) {
            total += shards.length();
        }
        int limit = (int) Math.max(1, Math.min(absoluteLimit, Math.floor(relativeLimit * total)));
        ActorRef[] home = upRegions(currentShardAllocations);
        for (Map.Entry<ActorRef, IndexedSeq<String>> region : currentShardAllocations.entrySet()) {
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

    /** The region of each topology node that is Up (null where none). */
    private ActorRef[] upRegions(Map<ActorRef, IndexedSeq<String>> regions) {
        ActorRef[] byNode = new ActorRef[nodeCount];
        for (ActorRef region : regions.keySet()) {
            int node = upNodeOfRegion.applyAsInt(region);
            if (node >= 0 && node < nodeCount) {
                byNode[node] = region;
            }
        }
        return byNode;
    }

    /** The region with the fewest ranges (the requester when there is none). */
    private static ActorRef leastLoaded(Map<ActorRef, IndexedSeq<String>> regions, ActorRef requester) {
        ActorRef best = null;
        int fewest = Integer.MAX_VALUE;
        for (Map.Entry<ActorRef, IndexedSeq<String>> region : regions.entrySet()) {
            int n = region.getValue().length();
            if (n < fewest || (n == fewest && region.getKey().compareTo(best) < 0)) {
                best = region.getKey();
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

    private static int upNodeOf(Cluster cluster, DirectoryNodes nodes, ActorRef region) {
        Address address = region.path().address();
        if (!address.hasGlobalScope()) {
            address = cluster.selfAddress(); // the coordinator's own node's region
        }
        for (Member m : cluster.state().getMembers()) {
            if (m.address().equals(address)) {
                return m.status() == MemberStatus.up() ? nodes.indexOf(m) : -1;
            }
        }
        return -1;
    }
}
