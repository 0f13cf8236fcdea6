package io.pegaflow.store;

import static io.pegaflow.store.StoreFixture.SMALL;
import static io.pegaflow.store.StoreFixture.hash;
import static io.pegaflow.store.StoreFixture.hashes;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class BlockStoreLeaseTest {
    private static final NamespaceLayout OTHER = new NamespaceLayout("other", 1, 1, 4096);

    @Test
    void shouldGrantRandomNonZeroLeaseIdsThatAreNeverSequential() {
        try (StoreFixture f = new StoreFixture(1)) {
            f.save(SMALL, "a");
            Set<Long> ids = new HashSet<>();
            int sequential = 0;
            int negative = 0;
            long previous = 0;
            for (int i = 0; i < 1000; i++) {
                long id = f.store.query("ns", hashes("a"), 60_000).leaseId();
                assertNotEquals(0, id);
                assertTrue(ids.add(id), "lease ids are unique");
                sequential += Math.abs(id - previous) < 1_000_000 ? 1 : 0;
                negative += id < 0 ? 1 : 0;
                previous = id;
            }
            assertEquals(0, sequential, "consecutive ids are far apart");
            assertTrue(negative > 300 && negative < 700, "all 64 bits are random: " + negative + " of 1000 negative");
            assertEquals(1000, f.store.activeLeases());
            // Another store (another node, or this one after a restart) draws from the same space, not from 1 up.
            try (StoreFixture g = new StoreFixture(1)) {
                g.save(SMALL, "a");
                assertFalse(
                        ids.contains(g.store.query("ns", hashes("a"), 60_000).leaseId()));
            }
        }
    }

    @Test
    void shouldDescribeTheLeaseItGrantsAndNoneWithoutTtlOrHits() {
        try (StoreFixture f = new StoreFixture(1)) {
            f.save(SMALL, "a", "b");
            QueryResult hit = f.store.query("ns", hashes("a", "b", "c"), 5_000);
            assertEquals(2, hit.hitCount());
            LeaseGrant lease = hit.lease();
            assertNotNull(lease);
            assertEquals(new LeaseGrant(hit.leaseId(), "ns", 2, 5_000), lease);
            assertNull(f.store.query("ns", hashes("a"), 0).lease(), "no TTL: no lease");
            QueryResult miss = f.store.query("ns", hashes("c", "a"), 5_000);
            assertEquals(0, miss.hitCount(), "a prefix stops at the first miss");
            assertNull(miss.lease());
            assertEquals(0, miss.leaseId());
            assertEquals(1, f.store.activeLeases());
        }
    }

    @Test
    void shouldReleaseOnlyInTheNamespaceTheLeaseWasTakenIn() {
        try (StoreFixture f = new StoreFixture(1)) {
            f.save(SMALL, "a");
            long id = f.store.query("ns", hashes("a"), 60_000).leaseId();
            assertFalse(f.store.release(id, "other"));
            assertEquals(1, f.store.activeLeases(), "a lease of another namespace is left untouched");
            assertTrue(f.store.leasedBlocks(id, "ns").isPresent());
            assertTrue(f.store.release(id, "ns"));
            assertFalse(f.store.release(id, "ns"), "a lease ends once");
            assertFalse(f.store.release(id));
            assertEquals(1, f.store.counters().leasesReleased());
        }
    }

    @Test
    void shouldReleaseByIdAloneForTheScheduler() {
        try (StoreFixture f = new StoreFixture(1)) {
            f.save(SMALL, "a");
            long id = f.store.query("ns", hashes("a"), 60_000).leaseId();
            assertFalse(f.store.release(id + 1));
            assertTrue(f.store.release(id));
            assertEquals(0, f.store.activeLeases());
        }
    }

    @Test
    void shouldConsumeALeaseOnlyByALoadOfItsNamespaceThatCoversItsBlocks() {
        try (StoreFixture f = new StoreFixture(2)) {
            f.save(SMALL, "a", "b", "c");
            f.save(OTHER, "a");
            long id = f.store.query("ns", hashes("a", "b"), 60_000).leaseId();

            // Same hash, another namespace: the lease stays.
            BlockEntry[] other = f.store.pinForLoad("other", hashes("a"), id);
            assertNotNull(other[0]);
            f.store.unpinAll(other);
            assertEquals(1, f.store.activeLeases());

            // Its namespace, but none of its blocks: the lease stays.
            BlockEntry[] unrelated = f.store.pinForLoad("ns", hashes("c", "missing"), id);
            assertNull(unrelated[1]);
            f.store.unpinAll(unrelated);
            assertEquals(1, f.store.activeLeases());

            // A load of one of its blocks consumes it, after pinning: b stays pinned by the load.
            BlockEntry[] load = f.store.pinForLoad("ns", hashes("b"), id);
            assertEquals(0, f.store.activeLeases());
            assertEquals(1, f.store.counters().leasesReleased());
            assertTrue(f.store.leasedBlocks(id, "ns").isEmpty());
            f.store.unpinAll(load);
        }
    }

    @Test
    void shouldExpireLeasesOnSweepAndHideThemFromRemoteReadersOncePastExpiry() {
        try (StoreFixture f = new StoreFixture(1)) {
            f.save(SMALL, "a", "b");
            long id = f.store.query("ns", hashes("a", "b"), 50).leaseId();
            f.clock.addAndGet(TimeUnit.MILLISECONDS.toNanos(49));
            f.store.sweep();
            assertEquals(1, f.store.activeLeases());
            assertTrue(f.store.leasedBlocks(id, "ns").isPresent());
            f.clock.addAndGet(TimeUnit.MILLISECONDS.toNanos(1));
            assertTrue(f.store.leasedBlocks(id, "ns").isEmpty(), "past its expiry, even before the sweep");
            f.store.sweep();
            assertEquals(0, f.store.activeLeases());
            assertEquals(1, f.store.counters().leasesExpired());
            assertFalse(f.store.release(id));
        }
    }

    @Test
    void shouldGiveRemoteReadersTheLeasedBlocksWhereTheyLie() {
        try (StoreFixture f = new StoreFixture(1)) {
            f.save(SMALL, "a", "b");
            long id = f.store.query("ns", hashes("a", "b"), 60_000).leaseId();
            List<BlockDescriptor> blocks = f.store.leasedBlocks(id, "ns").orElseThrow();
            assertEquals(2, blocks.size());
            assertEquals(f.store.describeSealed("ns", hash("a")).orElseThrow(), blocks.get(0));
            assertEquals(f.store.describeSealed("ns", hash("b")).orElseThrow(), blocks.get(1));
            BlockDescriptor a = blocks.get(0);
            assertEquals(new BlockKey("ns", hash("a")), a.key());
            assertEquals(4096, a.lengthBytes());
            assertEquals(0, a.poolOffset() % 4096);
            assertEquals(4096, f.pool.block(a.poolOffset(), a.lengthBytes()).byteSize(), "a live block of the pool");
            assertNotEquals(a.poolOffset(), blocks.get(1).poolOffset());
            assertTrue(f.store.leasedBlocks(id, "other").isEmpty(), "bound to its namespace");
            assertTrue(f.store.leasedBlocks(id ^ 1, "ns").isEmpty());
            assertTrue(f.store.describeSealed("ns", hash("missing")).isEmpty());
            assertTrue(f.store.describeSealed("other", hash("a")).isEmpty());
        }
    }
}
