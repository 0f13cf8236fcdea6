"""End to end on a node with a tiny pool (4 MiB): LRU eviction, leases against eviction, a full pool.

One node for the module. Every test starts by filling the whole pool with blocks of its own (which evicts whatever
earlier tests left: same block size, nothing leased), so it knows exactly what the pool holds. How many blocks fit
is computed from RegisterContext's block_bytes and the pool capacity the node exports.
"""

from __future__ import annotations

import time

import grpc
import pytest
from e2e_support import expect_error, random_hashes, unique, wait_until

from pegaflow.client import EngineClient, EngineError
from pegaflow.flag import LoadFlagFile, LoadState
from pegaflow.shm import HOST_DEVICE, SharedKVCache

pytestmark = pytest.mark.node

POOL_SIZE = "4mb"
POOL_ALIGNMENT = 4096  # the pool rounds every block up to a multiple of 4 KiB
# 4 layers x 2 KV heads x head 128, 16-token blocks, bf16: 16 KiB per layer, 64 KiB per block -> 64 blocks in 4 MiB.
SHAPE = {"num_layers": 4, "num_blocks": 160, "block_size": 16, "num_kv_heads": 2, "head_size": 128}


class PoolWorker:
    """This test process as a worker of the small-pool node: one cache, one context, one namespace."""

    def __init__(self, node):
        self.node = node
        self.client = EngineClient(node.endpoint, timeout_s=10.0)
        self.namespace = unique("pool")
        self.cache = SharedKVCache(**SHAPE)
        self.flags = LoadFlagFile(slots=8)
        self.context_id = None
        try:
            reply = self.client.register_context(
                unique("engine"),
                self.namespace,
                0,
                1,
                0,
                SHAPE["num_layers"],
                HOST_DEVICE,
                self.cache.layer_registrations(),
            )
            self.context_id = reply.context_id
            self.block_bytes = reply.block_bytes
            size_class = -(-reply.block_bytes // POOL_ALIGNMENT) * POOL_ALIGNMENT
            capacity_bytes = int(
                wait_until(
                    lambda: node.scrape().value("pegaflow_pool_capacity_bytes", default=0.0),
                    10.0,
                    "the node exports its pool capacity",
                    pause_s=0.2,
                )
            )
            assert capacity_bytes % size_class == 0, (capacity_bytes, size_class)
            self.capacity = capacity_bytes // size_class
        except BaseException:
            self.close()
            raise

    def save(self, block_ids, hashes):
        return self.client.save(self.context_id, list(zip(block_ids, hashes, strict=True)))

    def hits(self, hashes, lease_ttl_ms: int = 0) -> int:
        return self.client.query(self.namespace, hashes, lease_ttl_ms).hit_blocks

    def fill_pool(self) -> list[bytes]:
        """Saves ``capacity`` new blocks (block ids 0..capacity-1): afterwards the pool holds exactly these."""
        hashes = random_hashes(self.capacity)
        saved = self.save(range(self.capacity), hashes)
        assert (saved.blocks_stored, saved.blocks_sealed) == (self.capacity, self.capacity)
        assert self.hits(hashes) == self.capacity
        return hashes

    def close(self) -> None:
        try:
            if self.context_id is not None:
                self.client.unregister_context(self.context_id)
        finally:
            self.client.close()
            self._remove_files()

    def _remove_files(self) -> None:
        self.cache.close()
        self.cache.unlink()
        self.flags.close()
        self.flags.unlink()


@pytest.fixture(scope="module")
def small_node(start_module_node):
    return start_module_node(pool_size=POOL_SIZE)


@pytest.fixture(scope="module")
def pool(small_node):
    worker = PoolWorker(small_node)
    assert worker.block_bytes == 64 * 1024 and worker.capacity == 64  # the arithmetic above, as the node sees it
    yield worker
    worker.close()


def _store_state(metrics) -> dict[str, float]:
    """What a refused request must leave as it was."""
    return {
        "sealed": metrics.value("pegaflow_store_blocks", state="sealed"),
        "inflight": metrics.value("pegaflow_store_blocks", state="inflight"),
        "used_bytes": metrics.value("pegaflow_pool_used_bytes"),
        "insertions": metrics.value("pegaflow_block_insertions_total"),
        "evictions": metrics.value("pegaflow_block_evictions_total"),
        "leases_active": metrics.value("pegaflow_leases_active"),
    }


def test_full_pool_evicts_least_recently_used_blocks_and_recently_queried_blocks_survive(pool, small_node):
    a = random_hashes(pool.capacity)
    pool.cache.fill_random(range(pool.capacity), seed=11)
    saved_bytes = {
        (layer, b): pool.cache.block_bytes(layer, b) for b in range(32) for layer in range(SHAPE["num_layers"])
    }
    assert pool.save(range(pool.capacity), a).blocks_stored == pool.capacity
    before = small_node.fresh_metrics()

    assert pool.hits(a[:32]) == 32  # a[0..31] are now more recently used than a[32..63]
    b = random_hashes(32)
    pool.cache.fill_random(range(32), seed=12)
    saved = pool.save(range(32), b)
    assert (saved.blocks_stored, saved.blocks_skipped, saved.blocks_sealed) == (32, 0, 32)

    assert pool.hits(a[:32]) == 32, "recently queried blocks must survive"
    assert [pool.hits([h]) for h in a[32:]] == [0] * 32, "the least recently used blocks are the ones evicted"
    assert pool.hits(b) == 32
    after = small_node.fresh_metrics()
    assert after.value("pegaflow_block_evictions_total") - before.value("pegaflow_block_evictions_total") == 32
    assert after.value("pegaflow_block_insertions_total") - before.value("pegaflow_block_insertions_total") == 32

    # The survivors still hold their bytes after the churn around them.
    dst = list(range(100, 132))
    pool.cache.scribble(dst)
    slot = pool.flags.slot(0)
    slot.reset()
    reply = pool.client.load(pool.context_id, list(zip(dst, a[:32])), slot)
    assert list(reply.failed_block_ids) == [] and reply.blocks_scheduled == 32
    assert slot.wait(10) is LoadState.DONE and slot.loaded == 32
    for i, d in enumerate(dst):
        for layer in range(SHAPE["num_layers"]):
            assert pool.cache.block_bytes(layer, d) == saved_bytes[layer, i], (i, layer)


def test_lease_protects_blocks_from_eviction_until_released_and_a_refused_save_changes_nothing(pool, small_node):
    a = pool.fill_pool()
    lease = pool.client.query(pool.namespace, a, lease_ttl_ms=60_000)
    assert (lease.hit_blocks, lease.lease_expires_in_ms) == (pool.capacity, 60_000) and lease.lease_id > 0
    before = small_node.fresh_metrics()

    new = random_hashes(1)
    with expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "pool cannot hold 1 more blocks"):
        pool.save([pool.capacity], new)
    assert pool.hits(a) == pool.capacity, "the refused save must leave every leased block in place"
    assert pool.hits(new) == 0
    after = small_node.fresh_metrics()
    assert _store_state(after) == _store_state(before)
    assert after.value("pegaflow_save_rejected_total") - before.value("pegaflow_save_rejected_total") == 1
    assert after.value("pegaflow_leases_active") == 1

    assert pool.client.release(lease.lease_id).released
    assert not pool.client.release(lease.lease_id).released, "a lease ends once"
    saved = pool.save([pool.capacity], new)
    assert (saved.blocks_stored, saved.blocks_sealed) == (1, 1)
    assert pool.hits(new) == 1
    assert pool.hits(a[:1]) == 0, "the least recently used block made room"
    assert pool.hits(a[1:]) == pool.capacity - 1


def test_lease_protects_blocks_from_eviction_until_it_expires(pool, small_node):
    ttl_ms = 2000
    a = pool.fill_pool()
    before = small_node.fresh_metrics()
    leased_at = time.monotonic()
    lease = pool.client.query(pool.namespace, a, lease_ttl_ms=ttl_ms)
    assert lease.hit_blocks == pool.capacity and lease.lease_id > 0
    new = random_hashes(1)
    with expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "pool cannot hold"):
        pool.save([pool.capacity], new)
    assert time.monotonic() - leased_at < ttl_ms / 1000, "the refusal must come while the lease is alive"

    def saved_after_expiry():
        try:
            return pool.save([pool.capacity], new).blocks_sealed == 1
        except EngineError as e:
            assert e.code == grpc.StatusCode.RESOURCE_EXHAUSTED, e
            return False

    wait_until(saved_after_expiry, 10.0, "a save succeeds once the lease expired", pause_s=0.1)
    assert time.monotonic() - leased_at >= ttl_ms / 1000, "no eviction of leased blocks before the TTL"
    assert not pool.client.release(lease.lease_id).released, "an expired lease is gone"
    assert pool.hits(new) == 1 and pool.hits(a[1:]) == pool.capacity - 1
    after = small_node.fresh_metrics()
    expired = "pegaflow_leases_total"
    assert after.value(expired, event="expired") - before.value(expired, event="expired") == 1
    assert after.value("pegaflow_leases_active") == 0


def test_a_save_larger_than_the_whole_pool_is_refused_and_evicts_nothing(pool, small_node):
    a = pool.fill_pool()
    before = small_node.fresh_metrics()
    too_many = random_hashes(pool.capacity + 1)
    with expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, f"pool cannot hold {pool.capacity + 1} more blocks"):
        pool.save(range(pool.capacity + 1), too_many)
    assert pool.hits(a) == pool.capacity
    assert pool.hits(too_many) == 0
    after = small_node.fresh_metrics()
    assert _store_state(after) == _store_state(before)
    assert after.value("pegaflow_save_rejected_total") - before.value("pegaflow_save_rejected_total") == 1


# ---- engine bugs this suite found (both fixed; kept as regression tests) ----


def test_save_on_a_full_pool_skips_a_sealed_block_it_names_instead_of_evicting_it(pool):
    a = pool.fill_pool()  # a[0] is now the least recently used block
    new = random_hashes(1)
    # vLLM saves a request's blocks, including prefix blocks the node already holds.
    saved = pool.save([0, 1], [a[0], new[0]])
    assert (saved.blocks_stored, saved.blocks_skipped, saved.blocks_sealed) == (1, 1, 1)
    assert pool.hits([a[0]]) == 1 and pool.hits(new) == 1


def test_a_namespace_with_another_block_size_can_save_when_the_pool_is_full_of_unleased_blocks(pool):
    pool.fill_pool()
    namespace = unique("pool-other")
    with SharedKVCache(**{**SHAPE, "num_layers": 2, "num_blocks": 4}) as other:
        reply = pool.client.register_context(
            unique("engine"), namespace, 0, 1, 0, 2, HOST_DEVICE, other.layer_registrations()
        )
        assert reply.block_bytes == 32 * 1024
        try:
            other.fill_random([0], seed=5)
            h = random_hashes(1)
            assert pool.client.save(reply.context_id, [(0, h[0])]).blocks_sealed == 1
            assert pool.client.query(namespace, h).hit_blocks == 1
        finally:
            pool.client.unregister_context(reply.context_id)
