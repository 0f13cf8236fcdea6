"""Failures under the fake vLLM scheduler loop with the real connector: blocks evicted between lookup and load, the
node killed between lookup and load and during a load, lookups while the node is down, and the node restarted on
the same address while the engines keep running (workers re-register by themselves).

These tests kill their node, so they start their own (not the shared session node) on a small pool.
"""

from __future__ import annotations

import os
import subprocess
import time

import numpy as np
import pytest
from connector_support import run_until_recving, wait_until

from pegaflow.client import EngineClient
from pegaflow.shm import HOST_DEVICE, SharedKVCache
from pegaflow_testing.fake_vllm import ModelShape, prompt
from pegaflow_testing.localnode import START_TIMEOUT_S, LocalNode, node_jar_missing, repo_root

pytestmark = pytest.mark.node

POOL = "8mb"  # 256 blocks of the default fake model (4 layers x 8 KiB)
FAST = {"pegaflow.retry_interval_ms": 200, "pegaflow.session_timeout_ms": 3000}


class _Node:
    """A node this module may kill and restart on the same ports."""

    def __init__(self):
        self.node = LocalNode.start(pool_size=POOL)

    @property
    def endpoint(self) -> str:
        return self.node.endpoint

    def kill(self) -> None:
        self.node.kill()

    def restart(self) -> None:
        old = self.node
        old.kill()
        grpc_port = int(old.endpoint.rsplit(":", 1)[1])
        metrics_port = int(old.metrics_url.rsplit(":", 1)[1].split("/")[0])
        with open(old.log_path, "ab") as log:
            process = subprocess.Popen(
                old.argv,
                cwd=repo_root(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.node = LocalNode(process, grpc_port, metrics_port, old.log_path, old.argv)
        try:
            self.node.wait_serving(START_TIMEOUT_S)
        except BaseException:
            self.node.kill()
            raise

    def stop(self) -> None:
        if self.node.alive:
            self.node.stop()
        else:
            self.node.kill()


@pytest.fixture(scope="module")
def own_node():
    missing = node_jar_missing()
    if missing:
        if os.environ.get("PEGAFLOW_REQUIRE_NODE") == "1":
            pytest.fail(f"node not built: run ./pegaflow build ({missing})", pytrace=False)
        pytest.skip("node not built: run ./pegaflow build")
    node = _Node()
    yield node
    node.stop()


def _fill_pool(endpoint: str, shape: ModelShape, blocks: int = 256) -> None:
    """Saves ``blocks`` unrelated blocks of the same size: the LRU evicts every unpinned block of that size."""
    with (
        SharedKVCache(shape.num_layers, blocks, shape.block_size, shape.num_kv_heads, shape.head_size) as cache,
        EngineClient(endpoint, timeout_s=30) as client,
    ):
        reply = client.register_context(
            f"filler-{time.monotonic_ns()}",
            f"filler-{time.monotonic_ns()}",
            0,
            1,
            0,
            shape.num_layers,
            HOST_DEVICE,
            cache.layer_registrations(),
        )
        with client.open_session(reply.context_id):
            rng = np.random.default_rng()
            saved = client.save(reply.context_id, [(b, rng.bytes(32)) for b in range(blocks)])
            assert saved.blocks_sealed == blocks


@pytest.mark.parametrize("policy", ["recompute", "fail"])
def test_blocks_evicted_between_lookup_and_load_are_reported_as_load_errors(own_node, engines, policy):
    shape = ModelShape(model=engines.model())
    first = engines(own_node.endpoint, shape)
    tokens = prompt(50, 128)
    first.add_request("a", tokens, max_tokens=1)
    first.run()
    # No lease: nothing protects the hits between the lookup and the load.
    second = engines(own_node.endpoint, shape, extra={"pegaflow.lease_ttl_ms": 0}, load_failure_policy=policy)
    second.add_request("b", tokens, max_tokens=2)
    so = second.schedule()
    assert [len(load.block_ids) for load in so.kv_connector_metadata.loads] == [8]
    _fill_pool(own_node.endpoint, shape)
    target = set(so.kv_connector_metadata.loads[0].block_ids)
    # Reported in finished_recving all the same, with every block among the load errors by then.
    assert run_until_recving(second, so, "b") == [target]
    second.run()
    result = second.scheduler.results["b"]
    totals = second.totals()
    assert totals["load_failed_blocks"] == 8 and totals["load_failures"] == 1
    if policy == "recompute":
        assert result.status == "FINISHED_LENGTH_CAPPED" and len(result.output_token_ids) == 2
    else:
        assert result.status == "FINISHED_ERROR"
    assert second.mismatches == [] and not second.scheduler.requests


@pytest.mark.timeout(180)
def test_node_killed_and_restarted_while_engines_keep_running(own_node, engines):
    shape = ModelShape(model=engines.model())
    tokens = prompt(60, 96)  # 6 blocks
    saver = engines(own_node.endpoint, shape, extra=FAST)
    saver.add_request("saved", tokens, max_tokens=1)
    saver.run()

    # A load that will still be in flight when the node dies (its flag never flips: stands in for a slow copy).
    slow = engines(own_node.endpoint, shape, extra=FAST)
    slow.call_workers("hold_load_flags")
    slow.add_request("slow", tokens, max_tokens=1)
    so = slow.schedule()
    slow.update(so, slow.execute(so))
    assert slow.call_workers("wait_loads_issued") == [True]
    assert slow.call_workers("in_flight_loads") == [["slow"]]

    # A lookup that found the blocks, then the node dies before the workers' Load.
    late = engines(own_node.endpoint, shape, extra=FAST)
    late.add_request("late", tokens + prompt(61, 4), max_tokens=1)
    so = late.schedule()
    assert so.kv_connector_metadata.loads
    own_node.kill()
    assert [len(errors) for errors in run_until_recving(late, so, "late")] == [6]
    late.run()  # recomputed without the node
    assert late.scheduler.results["late"].status == "FINISHED_LENGTH_CAPPED"

    # The in-flight load is failed once the worker learns the node process is gone; the request recomputes.
    slow.run(max_steps=3000)
    assert slow.totals()["load_failed_blocks"] == 6

    # Lookups while the node is down answer 0 hits at once; the request runs without the cache.
    late.add_request("while-down", tokens, max_tokens=1)
    started = time.monotonic()
    late.step()
    assert time.monotonic() - started < 1.0
    late.run()
    assert late.scheduler.results["while-down"].external_tokens == 0

    own_node.restart()
    for engine in (saver, slow, late):
        assert all(engine.call_workers("connected", 30.0)), "a worker did not re-register after the restart"
        assert engine.totals()["reconnects"] == 1

    # The restarted node starts empty: the first request after it misses and saves, the next one hits it.
    wait_until(lambda: saver.connector.scheduler_side._node_down_until_s < time.monotonic(), 5, "lookups resume")
    saver.add_request("after-restart", tokens + prompt(62, 8), max_tokens=1)
    saver.run()
    assert saver.scheduler.results["after-restart"].external_tokens == 0
    late.add_request("hit-after-restart", tokens + prompt(63, 8), max_tokens=1)
    time.sleep(0.3)  # past the retry interval of late's own failed lookups
    late.run()
    assert late.scheduler.results["hit-after-restart"].external_tokens == 96
    for engine in (saver, slow, late):
        assert engine.mismatches == []
