package io.pegaflow.actors.directory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.ActorRef;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import scala.collection.immutable.IndexedSeq;
import scala.concurrent.Await;
import scala.concurrent.Future;
import scala.concurrent.duration.FiniteDuration;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The allocation rules on their own, as the shard coordinator calls them: three "regions" (real actor refs of a local
 * system) standing for the three nodes' shard regions, and a table of which node is Up.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class HomeRangeAllocationTest {
    private static final int RANGES = 256;

    private ActorTestKit kit;
    private ActorRef[] region;
    /** Per node: its member is Up and reachable. */
    private final boolean[] up = new boolean[3];
    /** The membership is stable (nobody unreachable or joining). */
    private boolean stable;
    /** Regions whose node is the one given (an old incarnation's region still registered). */
    private final Map<ActorRef, Integer> nodeOf = new HashMap<>();

    private HomeRangeAllocation strategy;

    /** The test's cluster: {@link #up}, {@link #stable}, {@link #nodeOf}. */
    private final HomeRangeAllocation.Membership membership = new HomeRangeAllocation.Membership() {
        @Override
        public int healthyNodeOf(ActorRef r) {
            return healthy(r) ? nodeOf.get(r) : -1;
        }

        @Override
        public boolean healthy(ActorRef r) {
            Integer node = nodeOf.get(r);
            return node != null && up[node];
        }

        @Override
        public boolean stable() {
            return stable;
        }
    };

    @BeforeAll
    void start() {
        kit = ActorTestKit.create("home-allocation");
        region = new ActorRef[3];
        for (int i = 0; i < 3; i++) {
            region[i] = Adapter.toClassic(kit.createTestProbe("region-" + i).ref());
            nodeOf.put(region[i], i);
        }
        strategy = new HomeRangeAllocation(3, membership, 1024, 1.0);
    }

    @AfterAll
    void stop() {
        kit.shutdownTestKit();
    }

    @Test
    void shouldPlaceARangeOnItsHomeWhileThatNodeIsUpAndOnTheLeastLoadedRegionOtherwise() throws Exception {
        cluster(true, true, true, false); // node 2's region is registered but the node is not Up, or unreachable
        Map<ActorRef, List<String>> now = new LinkedHashMap<>();
        now.put(region[0], List.of("0", "3", "6"));
        now.put(region[1], List.of("1"));
        now.put(region[2], List.of());
        assertEquals(region[1], allocate(region[0], "4", now), "home of range 4 is node 1");
        assertEquals(region[0], allocate(region[2], "9", now), "home of range 9 is node 0");
        // Range 5's home (node 2) is not healthy: the healthy region with the fewest ranges, though node 2 has fewer.
        assertEquals(region[1], allocate(region[0], "5", now), "least loaded healthy region");
        assertEquals(region[1], allocate(region[0], "not-a-range", now), "a foreign shard id: least loaded");
        up[0] = false;
        up[1] = false;
        assertEquals(region[2], allocate(region[0], "5", now), "none healthy: least loaded of all");
    }

    @Test
    void shouldMoveNothingWhileTheMembershipIsUnstableOrTwoRegionsClaimOneNode() throws Exception {
        cluster(false, true, true, true);
        Map<ActorRef, List<String>> now = new LinkedHashMap<>();
        now.put(region[0], List.of("0", "1", "2"));
        now.put(region[1], List.of());
        now.put(region[2], List.of());
        assertEquals(Set.of(), rebalance(now, Set.of()), "a member unreachable or joining: no round");
        stable = true;
        assertEquals(Set.of("1", "2"), rebalance(now, Set.of()));

        // A crashed node 1 restarted on its address: Up again while its old region is still registered.
        ActorRef oldRegion =
                Adapter.toClassic(kit.createTestProbe("region-1-old").ref());
        nodeOf.put(oldRegion, 1);
        try {
            now.put(oldRegion, List.of("4", "7"));
            assertEquals(Set.of(), rebalance(now, Set.of()), "two regions on node 1: no home is trusted");
            assertEquals(region[1], allocate(region[0], "10", now), "home untrusted: least loaded (node 1's new one)");
        } finally {
            nodeOf.remove(oldRegion);
            now.remove(oldRegion);
        }

        // A region whose node is down keeps its ranges until it is gone: no hand-off is asked of it.
        up[2] = false;
        now.put(region[2], List.of("1", "3"));
        now.put(region[0], List.of("0"));
        assertEquals(Set.of(), rebalance(now, Set.of()), "range 1 and 3 on an unhealthy region stay where they are");
    }

    @Test
    void shouldMoveEveryRangeHomeOnceWhenNodesJoinOneAtATime() throws Exception {
        cluster(true, true, false, false);
        Map<ActorRef, List<String>> now = new LinkedHashMap<>();
        now.put(region[0], new ArrayList<>());
        for (int r = 0; r < RANGES; r++) {
            place(now, Integer.toString(r), allocate(region[0], Integer.toString(r), now));
        }
        assertEquals(RANGES, now.get(region[0]).size(), "one node up: it hosts everything");
        assertEquals(Set.of(), rebalance(now, Set.of()), "nothing to move while the others are down");

        int moved = 0;
        for (int joining = 1; joining < 3; joining++) {
            up[joining] = true;
            now.put(region[joining], new ArrayList<>());
            Set<String> moves = rebalance(now, Set.of());
            for (String shard : moves) {
                assertEquals(joining, Integer.parseInt(shard) % 3, "only the joining node's own ranges move");
            }
            assertEquals(Set.of(), rebalance(now, Set.of(moves.iterator().next())), "no round while one runs");
            for (String shard : moves) {
                remove(now, shard);
                place(now, shard, allocate(region[0], shard, now));
            }
            moved += moves.size();
            assertEquals(Set.of(), rebalance(now, Set.of()), "balanced after one round");
        }
        assertEquals(RANGES - (RANGES + 2) / 3, moved, "each range not homed on node 0 moved exactly once");
        for (int node = 0; node < 3; node++) {
            for (String shard : now.get(region[node])) {
                assertEquals(node, Integer.parseInt(shard) % 3, "range " + shard + " on node " + node);
            }
        }
    }

    @Test
    void shouldMoveNoMoreRangesInOneRoundThanTheLimitsAllow() throws Exception {
        cluster(true, true, true, true);
        Map<ActorRef, List<String>> now = new LinkedHashMap<>();
        List<String> all = new ArrayList<>();
        for (int r = 0; r < 90; r++) {
            all.add(Integer.toString(r));
        }
        now.put(region[0], all);
        now.put(region[1], List.of());
        now.put(region[2], List.of());
        HomeRangeAllocation absolute = new HomeRangeAllocation(3, membership, 7, 1.0);
        assertEquals(7, await(absolute.rebalance(scala(now), Set.of())).size());
        HomeRangeAllocation relative = new HomeRangeAllocation(3, membership, 1024, 0.1);
        assertEquals(9, await(relative.rebalance(scala(now), Set.of())).size(), "10% of 90");
        Set<String> homeless = new TreeSet<>(await(strategy.rebalance(scala(now), Set.of())));
        assertEquals(60, homeless.size(), "without limits: every range whose home is node 1 or 2");
        assertTrue(homeless.stream().allMatch(s -> Integer.parseInt(s) % 3 != 0));
    }

    /** Sets the test's cluster: whether the membership is stable, and per node whether it is Up and reachable. */
    private void cluster(boolean isStable, boolean... nodeUp) {
        stable = isStable;
        System.arraycopy(nodeUp, 0, up, 0, up.length);
    }

    private ActorRef allocate(ActorRef requester, String shard, Map<ActorRef, List<String>> now) throws Exception {
        return await(strategy.allocateShard(requester, shard, scala(now)));
    }

    private Set<String> rebalance(Map<ActorRef, List<String>> now, Set<String> inProgress) throws Exception {
        return await(strategy.rebalance(scala(now), inProgress));
    }

    private static void place(Map<ActorRef, List<String>> now, String shard, ActorRef where) {
        List<String> shards = new ArrayList<>(now.get(where));
        shards.add(shard);
        now.put(where, shards);
    }

    private static void remove(Map<ActorRef, List<String>> now, String shard) {
        for (Map.Entry<ActorRef, List<String>> e : now.entrySet()) {
            List<String> shards = new ArrayList<>(e.getValue());
            if (shards.remove(shard)) {
                e.setValue(shards);
            }
        }
    }

    private static Map<ActorRef, IndexedSeq<String>> scala(Map<ActorRef, List<String>> now) {
        Map<ActorRef, IndexedSeq<String>> out = new LinkedHashMap<>();
        now.forEach((ref, shards) ->
                out.put(ref, CollectionConverters.asScala(shards).toIndexedSeq()));
        return out;
    }

    private static <T> T await(Future<T> future) throws Exception {
        return Await.result(future, FiniteDuration.apply(5, TimeUnit.SECONDS));
    }
}
