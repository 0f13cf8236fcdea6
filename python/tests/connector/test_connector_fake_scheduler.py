"""The real connector driven by the fake vLLM scheduler loop and fake workers (pegaflow_testing.fake_vllm) against a
real node process: saves, hits, byte-exact loads, leases, preemption, TP, MLA, roles, shared namespaces.

Every load is checked byte for byte by the fake workers before they compute on it (``engine.mismatches``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from connector_support import leases_settled, wait_until

from pegaflow.client import EngineClient
from pegaflow.vllm.metadata import BlockTransfer, PegaConnectorMetadata
from pegaflow_testing.fake_vllm import FakeRequest, ModelShape, prompt

pytestmark = pytest.mark.node

BS = 16


def _shape(engines, **kwargs) -> ModelShape:
    return ModelShape(model=engines.model(), **kwargs)


def _check_clean(*engines_) -> None:
    for engine in engines_:
        assert engine.mismatches == [], engine.mismatches
        assert not engine.scheduler.requests, f"requests left: {list(engine.scheduler.requests)}"


@pytest.mark.parametrize("tensor_kind", ["numpy", "torch"])
def test_fake_scheduler_cold_request_saves_and_second_instance_loads_byte_exact(node, engines, tensor_kind):
    if tensor_kind == "torch":
        pytest.importorskip("torch", reason="torch is optional (pip install torch)")
    shape = _shape(engines)
    first = engines(node, shape, tensor_kind=tensor_kind)
    first.add_request("cold", prompt(1, 100), max_tokens=3)
    first.run()
    cold = first.scheduler.results["cold"]
    assert cold.external_tokens == 0 and cold.held_for_saves  # blocks held until its saves were reported done
    totals = first.totals()
    assert totals["saved_blocks"] == 6  # 102 computed tokens: 6 full blocks
    assert totals.get("save_failures", 0) == 0 and totals["lookups"] >= 1

    second = engines(node, shape, tensor_kind=tensor_kind)
    second.add_request("warm", prompt(1, 100) + prompt(2, 20), max_tokens=3)
    second.run()
    warm = second.scheduler.results["warm"]
    assert warm.external_tokens == 96  # the 6 full blocks of the shared prefix
    assert second.verified_blocks == 6
    totals = second.totals()
    assert totals["loads"] == 1 and totals["loaded_blocks"] == 6 and totals.get("load_failed_blocks", 0) == 0
    assert totals["hit_blocks"] == 6
    assert totals["saved_blocks"] == 1  # only the block past the prefix is new
    # vLLM's stats path: per-step PegaKVConnectorStats, aggregated over workers and the scheduler side.
    assert sum(step.get("loaded_blocks", 0) for step in second.scheduler.stats_log) == 6
    _check_clean(first, second)
    wait_until(lambda: leases_settled(second), 5, "every lease released")


def test_fake_scheduler_full_prompt_hit_recomputes_only_the_last_token(node, engines):
    shape = _shape(engines)
    tokens = prompt(3, 64)  # exactly 4 blocks
    first = engines(node, shape)
    first.add_request("a", tokens, max_tokens=1)
    first.run()
    second = engines(node, shape)
    second.add_request("b", tokens, max_tokens=2)
    second.run()
    assert second.scheduler.results["b"].external_tokens == 64  # the whole prompt, loaded asynchronously
    # vLLM then recomputes the last token: the worker checks the 63 tokens before it (3 full blocks + 15).
    assert second.verified_blocks == 3
    assert second.totals()["loaded_blocks"] == 4
    _check_clean(first, second)


def test_fake_scheduler_local_prefix_hit_then_external_remainder(node, engines):
    shape = _shape(engines)
    tokens = prompt(4, 100)
    first = engines(node, shape)
    first.add_request("all", tokens, max_tokens=1)
    first.run()
    second = engines(node, shape, enable_prefix_caching=True)
    second.add_request("short", tokens[:40], max_tokens=1)  # computes 2 blocks locally (hits them in the pool)
    second.run()
    second.add_request("long", tokens, max_tokens=2)
    second.run()
    long = second.scheduler.results["long"]
    assert long.local_tokens == 32 and long.external_tokens == 64  # lookup starts after the local prefix hit
    assert second.verified_blocks >= 6
    _check_clean(first, second)


def test_fake_scheduler_chunked_prefill_and_decode_save_every_full_block(node, engines):
    shape = _shape(engines)
    first = engines(node, shape, max_num_batched_tokens=24)  # prefill in chunks of at most 24 tokens
    request = first.add_request("chat", prompt(5, 70), max_tokens=30)  # decode fills blocks 5 and 6
    first.run()
    assert first.scheduler.step_count > 30
    assert first.totals()["saved_blocks"] == 6  # 99 computed tokens
    second = engines(node, shape)
    second.add_request("follow-up", request.all_token_ids + prompt(6, 5), max_tokens=1)
    second.run()
    assert second.scheduler.results["follow-up"].external_tokens == 96
    assert second.verified_blocks == 6
    _check_clean(first, second)


def test_fake_scheduler_kv_planes_layout_round_trip(node, engines):
    shape = _shape(engines, layout="kv_planes")
    extra = {"pegaflow.kv_layout": "kv_planes-nhd"}
    first = engines(node, shape, extra=extra)
    first.add_request("a", prompt(7, 80), max_tokens=2)
    first.run()
    second = engines(node, shape, extra=extra)
    second.add_request("b", prompt(7, 80), max_tokens=2)
    second.run()
    assert "|kv_planes-nhd|" in second.namespace
    assert second.scheduler.results["b"].external_tokens == 80 and second.verified_blocks == 4
    _check_clean(first, second)


def test_repeated_lookups_reuse_one_lease_and_release_it(node, engines):
    shape = _shape(engines)
    first = engines(node, shape)
    first.add_request("a", prompt(8, 64), max_tokens=1)
    first.run()
    second = engines(node, shape)
    connector = second.connector
    request = FakeRequest("probe", prompt(8, 64), 4, BS)
    answers = [connector.get_num_new_matched_tokens(request, 0) for _ in range(5)]
    assert answers == [(64, True)] * 5
    totals = connector.counters.totals()
    assert totals["leases_taken"] == 1 and totals["lookup_cached"] == 4
    old = connector.scheduler_side._lookups["probe"].lease_id
    assert connector.get_num_new_matched_tokens(request, 16) == (48, True)  # a different local hit: new lease
    new = connector.scheduler_side._lookups["probe"].lease_id
    assert new != old
    assert connector.request_finished(request, []) == (False, None)  # never scheduled: nothing to hold
    wait_until(lambda: leases_settled(second), 5, "both leases released")
    with EngineClient(node.endpoint) as client:
        assert not client.release(old).released and not client.release(new).released


def test_abort_during_async_load_and_abort_before_scheduling(node, engines):
    shape = _shape(engines)
    first = engines(node, shape)
    first.add_request("a", prompt(9, 96), max_tokens=1)
    first.run()
    second = engines(node, shape)
    second.add_request("loading", prompt(9, 96), max_tokens=4)
    second.add_request("never", prompt(10, 40), max_tokens=4)
    second.scheduler.abort_request("never")  # request_finished for a request that was never scheduled
    so = second.schedule()
    assert (
        so.kv_connector_metadata.loads and second.scheduler.requests["loading"].status.name == "WAITING_FOR_REMOTE_KVS"
    )
    second.scheduler.abort_request("loading")  # vLLM keeps its blocks until the load is reported done
    second.update(so, second.execute(so))
    second.run()
    assert second.scheduler.results["loading"].status == "FINISHED_ABORTED"
    assert second.scheduler.results["never"].held_for_saves is False
    _check_clean(first, second)
    wait_until(lambda: leases_settled(second), 5, "leases released")


def test_two_engine_instances_share_one_namespace_interleaved(node, engines):
    shape = _shape(engines)
    a, b = engines(node, shape), engines(node, shape)
    assert (
        a.namespace == b.namespace
        and a.vllm_config.kv_transfer_config.engine_id != b.vllm_config.kv_transfer_config.engine_id
    )
    a.add_request("a1", prompt(11, 80), max_tokens=2)
    b.add_request("b1", prompt(12, 80), max_tokens=2)
    while a.scheduler.has_work() or b.scheduler.has_work():  # both instances step side by side
        for engine in (a, b):
            if engine.scheduler.has_work():
                engine.step()
    a.add_request("a2", prompt(12, 80) + prompt(13, 8), max_tokens=2)  # what b computed
    b.add_request("b2", prompt(11, 80) + prompt(14, 8), max_tokens=2)  # what a computed
    a.run()
    b.run()
    assert a.scheduler.results["a2"].external_tokens == 80 and b.scheduler.results["b2"].external_tokens == 80
    assert a.verified_blocks == b.verified_blocks == 5
    _check_clean(a, b)


def _preemption_run(node, engines, *, fence: bool):
    shape = _shape(engines, num_gpu_blocks=14)
    first = engines(node, shape, max_num_batched_tokens=64)
    first.call_workers("delay_saves", 0.15)  # every Save waits first: preemptions find saves in flight
    if not fence:
        first.call_workers("disable_preemption_fence")
    requests = [first.add_request(f"r{i}", prompt(20 + i, 60), max_tokens=40) for i in range(3)]
    first.run(max_steps=2000)
    assert first.scheduler.total_preemptions > 0
    second = engines(node, replace(shape, num_gpu_blocks=64))
    for r in requests:  # everything the first instance computed, as new prompts
        second.add_request(f"again-{r.request_id}", r.all_token_ids, max_tokens=1)
    second.run()
    return first, second


def test_fake_scheduler_preemption_mid_save_is_fenced_and_the_pool_stays_exact(node, engines):
    first, second = _preemption_run(node, engines, fence=True)
    totals = first.totals()
    assert totals["preemption_fences"] > 0
    # Saves of the preempted requests were pending: unsent ones dropped, or the one being copied waited for.
    assert totals.get("save_dropped_blocks", 0) + totals.get("preemption_fence_waits", 0) > 0
    assert sum(r.external_tokens for r in second.scheduler.results.values()) > 0
    _check_clean(first, second)  # no loaded byte differs from what the model wrote


def test_preemption_without_the_fence_would_corrupt_the_pool(node, engines):
    """Negative control for the test above: with the fence switched off, saves read blocks already reused."""
    _first, second = _preemption_run(node, engines, fence=False)
    assert second.mismatches, "expected corrupted blocks without the fence; the preemption test would have no teeth"


def test_preemption_fence_waits_for_a_save_being_copied_and_drops_queued_ones(node, engines):
    """The fence's two cases made deterministic: one save is being copied (slowly), one is queued behind it (one
    Save in flight at a time, so the second waits for a place)."""
    shape = _shape(engines)
    engine = engines(node, shape, extra={"pegaflow.max_saves_in_flight": 1})
    worker = engine.workers[0].worker
    side = worker.connector.worker_side
    worker.delay_saves(0.4)
    hashes = [bytes([i]) * 32 for i in range(4)]
    first = PegaConnectorMetadata(saves=[BlockTransfer("victim", [1, 2], hashes[:2])])
    second = PegaConnectorMetadata(saves=[BlockTransfer("victim", [3, 4], hashes[2:])])
    for meta in (first, second):
        worker.connector.bind_connector_metadata(meta)
        worker.connector.wait_for_save()
        worker.connector.clear_connector_metadata()
    wait_until(lambda: side.saves_in_flight() == 1, 5, "the first save in flight")
    started = time.monotonic()
    worker.connector.handle_preemptions(PegaConnectorMetadata(preempted_req_ids=["victim"]))
    waited = time.monotonic() - started
    # Returned once the copy being made was done: nothing reads the victim's blocks any more.
    assert 0.1 < waited < 5 and not side._save_reading.get("victim")
    # The saver thread, woken by the same reply, then skips the queued job's dropped chunk and forgets its entry.
    wait_until(lambda: not side._saves_in_flight, 2, "the dropped job's entry gone")
    totals = worker.connector.counters.totals()
    assert totals["preemption_fence_waits"] == 1 and totals["save_dropped_blocks"] == 2
    with EngineClient(node.endpoint) as client:
        assert client.query(engine.namespace, hashes[:2]).hit_blocks == 2  # the copied save landed
        assert client.query(engine.namespace, hashes[2:]).hit_blocks == 0  # the queued one was never sent


def test_preemption_fence_waits_for_every_save_of_the_victim_in_flight(node, engines):
    """Several Saves in flight (the default): the fence returns only once all of the victim's have ended."""
    shape = _shape(engines)
    engine = engines(node, shape)
    worker = engine.workers[0].worker
    side = worker.connector.worker_side
    worker.delay_saves(0.4)
    hashes = [bytes([0x40 + i]) * 32 for i in range(4)]
    for meta in (
        PegaConnectorMetadata(saves=[BlockTransfer("victim", [1, 2], hashes[:2])]),
        PegaConnectorMetadata(saves=[BlockTransfer("victim", [3, 4], hashes[2:])]),
    ):
        worker.connector.bind_connector_metadata(meta)
        worker.connector.wait_for_save()
        worker.connector.clear_connector_metadata()
    wait_until(lambda: side.saves_in_flight() == 2, 5, "both saves in flight")
    started = time.monotonic()
    worker.connector.handle_preemptions(PegaConnectorMetadata(preempted_req_ids=["victim"]))
    waited = time.monotonic() - started
    assert 0.1 < waited < 5 and side.saves_in_flight() == 0 and not side._save_reading
    totals = worker.connector.counters.totals()
    assert totals["preemption_fence_waits"] == 1 and not totals.get("save_dropped_blocks")
    with EngineClient(node.endpoint) as client:
        assert client.query(engine.namespace, hashes).hit_blocks == 4  # both landed before the fence returned


def test_tp2_with_two_worker_processes(node, engines):
    shape = _shape(engines, num_kv_heads=4)
    engine = engines(node, shape, tp_size=2, workers="processes")
    assert engine.namespace.endswith("|tp2")
    regs = engine.call_workers("registration")
    assert [r["layers"] for r in regs] == [4, 4] and regs[0]["instance_id"] == regs[1]["instance_id"]
    engine.add_request("first", prompt(30, 90), max_tokens=2)
    engine.run()
    engine.add_request("second", prompt(30, 90), max_tokens=2)  # no local prefix caching: served by the pool
    engine.run()
    assert engine.scheduler.results["second"].external_tokens == 80
    assert engine.verified_blocks == 2 * 5  # each rank checked its own shard
    per_rank = engine.call_workers("connector_totals")
    assert [t["loaded_blocks"] for t in per_rank] == [5, 5]
    assert [t["saved_blocks"] for t in per_rank] == [5, 5]
    _check_clean(engine)


def test_mla_is_stored_once_and_loaded_by_every_rank(node, engines):
    shape = _shape(engines, layout="mla", head_size=288, num_kv_heads=1)  # latent 576
    tp2 = engines(node, shape, tp_size=2)
    tp2.add_request("a", prompt(31, 64), max_tokens=2)
    tp2.run()
    per_rank = tp2.call_workers("connector_totals")
    assert per_rank[0]["saved_blocks"] == 4 and per_rank[1].get("saved_blocks", 0) == 0  # rank 0 alone saves
    regs = tp2.call_workers("registration")
    assert regs[0]["instance_id"] == regs[1]["instance_id"]  # one instance: the node keys contexts by rank
    assert all(r["replicated"] for r in regs)  # the node keeps one copy of each block's latent cache
    tp2.add_request("b", prompt(31, 64) + prompt(32, 4), max_tokens=1)
    tp2.run()
    assert [t["loaded_blocks"] for t in tp2.call_workers("connector_totals")] == [4, 4]
    tp1 = engines(node, shape, tp_size=1)  # MLA namespaces leave TP out: a TP=1 instance shares the blocks
    tp1.add_request("c", prompt(31, 64) + prompt(33, 4), max_tokens=1)
    tp1.run()
    assert tp1.namespace == tp2.namespace and tp1.scheduler.results["c"].external_tokens == 64
    _check_clean(tp2, tp1)


def test_full_cuda_graph_replay_needs_no_layer_hooks(node, engines):
    shape = _shape(engines)
    first = engines(node, shape, full_cudagraph=True)
    first.add_request("a", prompt(40, 50), max_tokens=2)
    first.run()
    second = engines(node, shape, full_cudagraph=True)
    second.add_request("b", prompt(40, 50), max_tokens=2)
    second.run()
    assert second.scheduler.results["b"].external_tokens == 48 and second.verified_blocks == 3
    assert type(second.connector).requires_piecewise_for_cudagraph({}) is False
    _check_clean(first, second)


def test_producer_saves_only_and_consumer_loads_only(node, engines):
    shape = _shape(engines)
    producer = engines(node, shape, kv_role="kv_producer")
    producer.add_request("p", prompt(41, 48), max_tokens=1)
    producer.add_request("p2", prompt(41, 48), max_tokens=1)
    producer.run()
    assert producer.totals().get("lookups", 0) == 0 and producer.scheduler.results["p2"].external_tokens == 0
    consumer = engines(node, shape, kv_role="kv_consumer")
    consumer.add_request("c", prompt(41, 48) + prompt(42, 20), max_tokens=1)
    consumer.run()
    totals = consumer.totals()
    assert consumer.scheduler.results["c"].external_tokens == 48 and totals.get("saves", 0) == 0
    _check_clean(producer, consumer)


@pytest.mark.timeout(120)
def test_demo_module_runs_through_the_connector(node):
    result = subprocess.run(
        [sys.executable, "-m", "pegaflow_testing.vllm_demo", "--endpoint", node.endpoint, "--prompt-tokens", "128"],
        cwd=Path(__file__).resolve().parents[2],  # python/: pegaflow_testing is imported from the checkout
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 blocks hit, 8 loaded" in result.stdout and "8 verified byte-exact" in result.stdout
    assert result.stdout.strip().endswith("OK")
