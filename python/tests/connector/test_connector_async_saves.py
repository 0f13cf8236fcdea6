"""Asynchronous saves of the worker side against real node processes: several Save calls in flight, the in-flight
bound, failures, finished_sending only after a request's saves ended, shutdown and a node killed mid-save.

A worker connector (PegaKVConnector, role WORKER) over a host KV cache (a shared-memory file the node maps) is driven
through vLLM's per-step worker calls; what it saved is loaded back by a second worker connector of the same
namespace and compared byte for byte. A Save "in flight" is made to last by stopping the node process (SIGSTOP) for a
moment: nothing here stands in for the node.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
import uuid

import numpy as np
import pytest
from connector_support import wait_until

from pegaflow.client import EngineClient
from pegaflow.shm import SharedKVCache
from pegaflow.vllm import PegaKVConnector
from pegaflow.vllm.metadata import BlockTransfer, PegaConnectorMetadata
from pegaflow_testing.fake_vllm import FakeKVCacheConfig, FakeRole, ModelShape, make_vllm_config

pytestmark = pytest.mark.node


class Rig:
    """One worker connector on its own host KV cache, filled with random bytes."""

    def __init__(self, endpoint: str, shape: ModelShape, **extra):
        config = {"pegaflow.endpoint": endpoint, **{f"pegaflow.{k}": v for k, v in extra.items()}}
        self.shape = shape
        vllm_config = make_vllm_config(shape, f"engine-{uuid.uuid4().hex[:8]}", config)
        self.cache = SharedKVCache(
            shape.num_layers, shape.num_gpu_blocks, shape.block_size, shape.num_kv_heads, shape.head_size
        )
        rng = np.random.default_rng()
        for i in range(shape.num_layers):
            view = self.cache.layer(i).view(np.uint8)
            view[...] = rng.integers(0, 256, view.shape, dtype=np.uint8)
        self.connector = PegaKVConnector(vllm_config, FakeRole.WORKER, FakeKVCacheConfig(shape.num_gpu_blocks))
        self.side = self.connector.worker_side
        self.connector.register_kv_caches({n: self.cache.layer(i) for i, n in enumerate(self.cache.layer_names)})
        assert self.side.link.wait_connected(10)
        self.closed = False

    def step(self, saves=(), holds=(), finished=(), loads=()) -> tuple[set[str], set[str]]:
        """One vLLM step of the worker: bind, start_load_kv, (forward), wait_for_save, get_finished, clear."""
        meta = PegaConnectorMetadata(loads=list(loads), saves=list(saves), hold_req_ids=list(holds))
        self.connector.bind_connector_metadata(meta)
        self.connector.start_load_kv(None)
        self.connector.wait_for_save()
        sending, recving = self.connector.get_finished(set(finished))
        self.connector.clear_connector_metadata()
        return sending or set(), recving or set()

    def totals(self) -> dict:
        return self.connector.counters.totals()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.connector.shutdown()
        self.cache.close()
        self.cache.unlink()


@pytest.fixture
def rigs():
    made = []

    def make(endpoint: str, shape: ModelShape, **extra) -> Rig:
        rig = Rig(endpoint, shape, **extra)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.close()


def _shape() -> ModelShape:
    return ModelShape(model=f"async/model-{uuid.uuid4().hex[:10]}", num_layers=2, head_size=16, num_gpu_blocks=64)


def _transfer(req_id: str, block_ids, tag: str | None = None) -> BlockTransfer:
    tag = tag or uuid.uuid4().hex
    hashes = [hashlib.sha256(f"{tag}/{req_id}/{b}".encode()).digest() for b in block_ids]
    return BlockTransfer(req_id, list(block_ids), hashes)


def _assert_loads_back_byte_exact(rigs, source: Rig, transfers: list[BlockTransfer]) -> None:
    """A second worker of the same namespace loads the blocks into other block ids and compares every byte."""
    reader = rigs(source.side.settings.endpoint, source.shape)
    ids = [b for t in transfers for b in t.block_ids]
    hashes = [h for t in transfers for h in t.hashes]
    targets = list(range(len(ids)))  # other block ids of another cache
    _, recving = reader.step(loads=[BlockTransfer("read-back", targets, hashes)])
    deadline = time.monotonic() + 20
    while "read-back" not in recving:
        assert time.monotonic() < deadline, "read-back load never finished"
        time.sleep(0.01)
        _, recving = reader.step()
    assert reader.connector.get_block_ids_with_load_errors() == set()
    for layer in range(source.shape.num_layers):
        src, dst = source.cache.layer(layer), reader.cache.layer(layer)
        for s, d in zip(ids, targets):
            assert np.array_equal(src[s], dst[d]), f"layer {layer}: block {s} did not come back as saved"


def _hits(endpoint: str, namespace: str, hashes: list[bytes]) -> int:
    with EngineClient(endpoint, timeout_s=10) as client:
        return client.query(namespace, hashes).hit_blocks


class Paused:
    """The node process stopped (SIGSTOP) while inside: its Save calls stay in flight. Resumed on exit."""

    def __init__(self, node):
        self.node = node

    def __enter__(self):
        os.killpg(self.node.process.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        if self.node.alive:
            os.killpg(self.node.process.pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def own_node(start_module_node):
    """A node these tests may pause (the session node is shared with every other test)."""
    return start_module_node(pool_size="64mb")


# ---- several in flight ----


def test_several_saves_in_flight_complete_and_load_back_byte_exact(own_node, rigs):
    shape = _shape()
    rig = rigs(own_node.endpoint, shape, max_saves_in_flight=4, max_blocks_per_save=1)
    transfers = [_transfer("r1", range(0, 12)), _transfer("r2", range(12, 24)), _transfer("r3", range(24, 40))]
    with Paused(own_node):  # the first four one-block Saves are submitted before the node answers any
        rig.step(saves=transfers)
        wait_until(lambda: rig.side.saves_in_flight() == 4, 5, "four Saves in flight")
    assert rig.side.saves_idle(20)
    totals = rig.totals()
    assert totals["saves"] == 40 and totals["saved_blocks"] == 40 and not totals.get("save_failures")
    assert totals["save_in_flight_max"] == 4
    assert _hits(own_node.endpoint, rig.connector.identity.namespace, [h for t in transfers for h in t.hashes]) == 40
    _assert_loads_back_byte_exact(rigs, rig, transfers)


def test_in_flight_bound_makes_the_saver_wait_never_the_forward(own_node, rigs):
    shape = _shape()
    rig = rigs(own_node.endpoint, shape, max_saves_in_flight=2, max_blocks_per_save=2)
    steps = [_transfer(f"r{i}", range(4 * i, 4 * i + 4)) for i in range(5)]  # 2 Saves per step
    with Paused(own_node):
        longest = 0.0
        for transfer in steps:
            began = time.perf_counter()
            rig.step(saves=[transfer])
            longest = max(longest, time.perf_counter() - began)
        wait_until(lambda: rig.side.saves_in_flight() == 2, 5, "two Saves in flight")
        time.sleep(0.2)
        assert rig.side.saves_in_flight() == 2  # the bound holds while the node does not answer
        assert longest < 2.0, f"a step took {longest:.3f} s: the forward thread waited on the node"
    assert rig.side.saves_idle(20)
    totals = rig.totals()
    assert totals["save_in_flight_max"] == 2
    assert totals["save_backpressure_waits"] >= 1
    assert totals["saved_blocks"] == 20 and not totals.get("save_queue_drops")
    _assert_loads_back_byte_exact(rigs, rig, steps)


# ---- failures ----


def test_failing_save_is_reported_for_its_request_only(node, rigs):
    shape = _shape()
    rig = rigs(node.endpoint, shape, max_saves_in_flight=4)
    good = [_transfer("good1", [1, 2, 3]), _transfer("good2", [4, 5])]
    bad = _transfer("bad", [6, 10_000])  # block 10000 is beyond the registered 64: the node refuses that Save
    rig.step(saves=[good[0]])
    rig.step(saves=[bad])
    rig.step(saves=[good[1]])
    assert rig.side.saves_idle(20)
    assert list(rig.side.failed_save_requests) == ["bad"]
    assert "INVALID_ARGUMENT" in rig.side.failed_save_requests["bad"]
    totals = rig.totals()
    assert totals["save_failures"] == 1 and totals["save_failed_requests"] == 1 and totals["save_failed_blocks"] == 2
    assert totals["saved_blocks"] == 5  # a block is counted saved only when its Save succeeded
    # A clear refusal: nothing reads the blocks, so the held request is released at once.
    for req_id in ("good1", "bad", "good2"):
        assert rig.step(holds=[req_id], finished=[req_id])[0] == {req_id}
    assert _hits(node.endpoint, rig.connector.identity.namespace, bad.hashes[:1]) == 0
    _assert_loads_back_byte_exact(rigs, rig, good)


def test_request_finished_while_its_save_runs_is_reported_only_after_the_save_ended(own_node, rigs):
    shape = _shape()
    rig = rigs(own_node.endpoint, shape)
    transfer = _transfer("r1", range(8))
    namespace = rig.connector.identity.namespace
    with Paused(own_node):
        assert rig.step(saves=[transfer]) == (set(), set())
        wait_until(lambda: rig.side.saves_in_flight() == 1, 5, "the Save in flight")
        # vLLM finishes the request: request_finished returned True, the hold arrives with the next step.
        assert rig.step(holds=["r1"], finished=["r1"])[0] == set()
        for _ in range(5):
            time.sleep(0.05)
            assert rig.step()[0] == set()  # still being copied: vLLM must not free the blocks
    sending: set[str] = set()
    deadline = time.monotonic() + 20
    while not sending:
        assert time.monotonic() < deadline, "r1 never reported in finished_sending"
        sending = rig.step()[0]
        if not sending:
            time.sleep(0.01)
    assert sending == {"r1"}
    assert _hits(own_node.endpoint, namespace, transfer.hashes) == 8  # sealed by the time vLLM got the blocks back
    _assert_loads_back_byte_exact(rigs, rig, [transfer])


# ---- lifetime ----


def _saver_threads(rig: Rig) -> list[threading.Thread]:
    return [t for t in (rig.side._saver, rig.side._loader) if t is not None and t.is_alive()]


def test_shutdown_waits_for_saves_in_flight(own_node, rigs):
    shape = _shape()
    rig = rigs(own_node.endpoint, shape, max_blocks_per_save=4)
    transfer = _transfer("r1", range(16))
    with Paused(own_node):
        rig.step(saves=[transfer])
        wait_until(lambda: rig.side.saves_in_flight() == 4, 5, "four Saves in flight")
        threading.Timer(0.5, lambda: os.killpg(own_node.process.pid, signal.SIGCONT)).start()
        began = time.monotonic()
        rig.connector.shutdown()
        rig.closed = True
    assert time.monotonic() - began >= 0.4  # it waited for the node
    assert rig.side.saves_in_flight() == 0 and _saver_threads(rig) == []
    totals = rig.totals()
    assert totals["saved_blocks"] == 16 and not totals.get("save_failures")
    assert _hits(own_node.endpoint, rig.connector.identity.namespace, transfer.hashes) == 16


def test_shutdown_ends_saves_that_outlive_the_save_deadline_without_leaking(own_node, rigs):
    shape = _shape()
    # The deadline must leave room for both steps' Saves to be in flight at once: at 800 ms the first two had once
    # ended at their deadline (a loaded CI box) before the last two were sent.
    rig = rigs(own_node.endpoint, shape, max_blocks_per_save=4, save_timeout_ms=2500)
    with Paused(own_node):
        rig.step(saves=[_transfer("r1", range(8))])
        rig.step(saves=[_transfer("r2", range(8, 16))])
        wait_until(lambda: rig.side.saves_in_flight() == 4, 5, "four Saves in flight")
        began = time.monotonic()
        rig.connector.shutdown()
        rig.closed = True
        took = time.monotonic() - began
    assert took < 8, f"shutdown took {took:.1f} s"
    assert rig.side.saves_in_flight() == 0 and _saver_threads(rig) == []  # no call or thread outlives it
    totals = rig.totals()
    assert totals["save_failures"] == 4 and not totals.get("saved_blocks")
    assert set(rig.side.failed_save_requests) == {"r1", "r2"}


def test_node_killed_with_saves_in_flight_ends_them_as_failures_within_the_timeout(start_node, rigs):
    node = start_node(pool_size="64mb")
    shape = _shape()
    rig = rigs(node.endpoint, shape, max_blocks_per_save=4, retry_interval_ms=200)
    os.killpg(node.process.pid, signal.SIGSTOP)
    try:
        rig.step(saves=[_transfer("r1", range(8)), _transfer("r2", range(8, 12))])
        wait_until(lambda: rig.side.saves_in_flight() == 3, 5, "three Saves in flight")
        assert rig.step(holds=["r1", "r2"], finished=["r1", "r2"])[0] == set()
        began = time.monotonic()
    finally:
        start_node.forget(node)  # SIGKILL: the stopped process dies with its Saves unanswered
    sending: set[str] = set()
    while sending != {"r1", "r2"}:
        assert time.monotonic() - began < 15, f"only {sending} released after the node was killed"
        sending |= rig.step()[0]
        time.sleep(0.02)
    assert rig.side.saves_in_flight() == 0
    totals = rig.totals()
    assert totals["save_failures"] == 3 and totals["save_failed_blocks"] == 12 and not totals.get("saved_blocks")
    assert set(rig.side.failed_save_requests) == {"r1", "r2"}
