"""What driving the connector with vLLM's own Scheduler found (issue [8 of 12]), each shown with the vLLM-shaped harness
(pegaflow_testing.fake_vllm) against a real node: saves lost after preemption, misses re-queried every step,
redundant saves of locally cached blocks, a request held without blocks, vLLM 0.29's layouts. Each test failed on
the connector of bcac5f4.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from connector_support import leases_settled, wait_until

from pegaflow.client import EngineClient
from pegaflow.vllm.config import ConnectorSettings, EngineIdentity
from pegaflow.vllm.scheduler import SchedulerSide
from pegaflow.vllm.stats import ConnectorCounters
from pegaflow_testing.fake_vllm import (
    FakeCachedRequestData,
    FakeKVCacheBlocks,
    FakeNewRequestData,
    FakeRequest,
    FakeSchedulerOutput,
    ModelShape,
    make_vllm_config,
    prompt,
)

pytestmark = pytest.mark.node

BS = 16

# vLLM 0.29's standardized layouts -> the byte order of one layer's block, which names the namespace's layout.
STORED_AS = {
    "LBNHC": "packed-nhd",
    "BLNHC": "packed-nhd",
    "LBHNC": "packed-hnd",
    "BLHNC": "packed-hnd",
    "BHLNC": "packed-hnd",
    "LHBNC": "packed-hnd",
}


def _shape(engines, **kwargs) -> ModelShape:
    return ModelShape(model=engines.model(), **kwargs)


def _computed_blocks(request) -> int:
    """Full blocks whose KV the model computed: the last sampled token never went through a forward."""
    return min(len(request.block_hashes), (request.num_tokens - 1) // BS)


def _in_pool(client: EngineClient, namespace: str, hashes: list[bytes]) -> int:
    return client.query(namespace, hashes).hit_blocks


# ---- 1: saves dropped by the preemption fence are saved again ----


@pytest.mark.parametrize("prefix_caching", [False, True], ids=["recomputed", "local-prefix-hit"])
def test_blocks_whose_saves_a_preemption_dropped_arrive_after_the_request_resumes(node, engines, prefix_caching):
    """Slow saves + a small GPU pool: requests are preempted while their saves are queued, the workers' fence drops
    those saves, the requests resume (recomputing, or finding their blocks in vLLM's prefix cache) and finish.
    Every block any of them computed must end up in the pool."""
    shape = _shape(engines, num_gpu_blocks=14)
    engine = engines(node, shape, max_num_batched_tokens=64, enable_prefix_caching=prefix_caching)
    engine.call_workers("delay_saves", 0.15)  # every Save waits first: preemptions find saves queued
    requests = [engine.add_request(f"r{i}", prompt(40 + i, 60), max_tokens=40) for i in range(3)]
    engine.run(max_steps=3000)
    totals = engine.totals()
    assert engine.scheduler.total_preemptions > 0 and totals.get("save_dropped_blocks", 0) > 0, totals
    with EngineClient(node.endpoint) as client:
        found = {
            r.request_id: (_in_pool(client, engine.namespace, r.block_hashes), _computed_blocks(r)) for r in requests
        }
    assert all(hit >= computed for hit, computed in found.values()), f"(in pool, computed) per request: {found}"
    assert totals["save_replans"] >= 1
    assert engine.mismatches == []


# ---- 2: a waiting request's misses are remembered, retried on a bounded schedule ----


def _scheduler_side(endpoint: str, shape: ModelShape, **extra) -> SchedulerSide:
    config = make_vllm_config(shape, "engine-s", {"pegaflow.endpoint": endpoint, **extra})
    settings = ConnectorSettings.from_extra_config(config.kv_transfer_config.kv_connector_extra_config)
    return SchedulerSide(EngineIdentity.from_vllm_config(config, settings), settings, ConnectorCounters())


def _empty_step() -> FakeSchedulerOutput:
    cached = FakeCachedRequestData([], set(), [], {}, [], [], [])
    return FakeSchedulerOutput([], cached, {}, 0, set())


def _wait_in_queue(side: SchedulerSide, request, seconds: float) -> int:
    """vLLM asks about a waiting request (twice) in every step it stays waiting; returns the steps taken."""
    deadline = time.monotonic() + seconds
    steps = 0
    while time.monotonic() < deadline:
        for _ in range(2):
            assert side.get_num_new_matched_tokens(request, 0) == (0, False)
        side.build_connector_meta(_empty_step())
        steps += 1
        time.sleep(0.002)
    return steps


def test_a_request_waiting_many_steps_asks_the_node_a_bounded_number_of_times(node, engines):
    side = _scheduler_side(node.endpoint, _shape(engines))  # defaults: retries after 0.1, 0.2, 0.4, 0.8 s, ...
    try:
        steps = _wait_in_queue(side, FakeRequest("waiting", prompt(50, 64), 2, BS), 2.0)
        lookups = side.counters.totals()["lookups"]
        assert steps > 200 and 2 <= lookups <= 7, f"{lookups} Queries in {steps} steps"
    finally:
        side.shutdown()


def test_a_waiting_request_stops_asking_once_its_retries_are_used_up(node, engines):
    shape = _shape(engines)
    side = _scheduler_side(node.endpoint, shape, **{"pegaflow.miss_retry_ms": 20, "pegaflow.miss_retries": 3})
    try:
        steps = _wait_in_queue(side, FakeRequest("waiting", prompt(50, 64), 2, BS), 1.5)
        totals = side.counters.totals()
        assert totals["lookups"] == 1 + 3, totals  # the first miss, then 3 retries (20, 40, 80 ms later)
        assert totals["lookup_miss_remembered"] >= 2 * steps - 4
    finally:
        side.shutdown()


def test_a_remembered_miss_is_retried_and_finds_blocks_saved_meanwhile(node, engines):
    shape = _shape(engines)
    side = _scheduler_side(node.endpoint, shape, **{"pegaflow.miss_retry_ms": 50})
    try:
        tokens = prompt(51, 64)
        waiting = FakeRequest("waiting", tokens + prompt(52, 8), 2, BS)
        assert side.get_num_new_matched_tokens(waiting, 0) == (0, False)
        assert side.get_num_new_matched_tokens(waiting, 0) == (0, False)  # remembered: not asked again yet
        assert side.counters.totals()["lookups"] == 1
        producer = engines(node, shape)  # another instance computes and saves the prefix meanwhile
        producer.add_request("producer", tokens, max_tokens=2)
        producer.run()
        answer = wait_until(
            lambda: side.get_num_new_matched_tokens(waiting, 0)[0], 5, "the retried lookup finds the prefix"
        )
        assert answer == 64
        assert side.counters.totals()["lookups"] <= 4
    finally:
        side.shutdown()


def test_a_longer_local_prefix_hit_asks_again_at_once(node, engines):
    shape = _shape(engines)
    side = _scheduler_side(node.endpoint, shape, **{"pegaflow.miss_retry_ms": 60_000})
    try:
        waiting = FakeRequest("waiting", prompt(53, 64), 2, BS)
        assert side.get_num_new_matched_tokens(waiting, 0) == (0, False)
        assert side.get_num_new_matched_tokens(waiting, 0) == (0, False)
        assert side.counters.totals()["lookups"] == 1
        assert side.get_num_new_matched_tokens(waiting, 32) == (0, False)  # vLLM's local hit grew: a new question
        assert side.counters.totals()["lookups"] == 2
    finally:
        side.shutdown()


def test_one_step_sends_at_most_its_query_budget_and_defers_the_rest_to_the_next(node, engines):
    side = _scheduler_side(node.endpoint, _shape(engines), **{"pegaflow.max_queries_per_step": 2})
    try:
        arrivals = [FakeRequest(f"new{i}", prompt(80 + i, 32), 2, BS) for i in range(5)]
        first = [side.get_num_new_matched_tokens(r, 0) for r in arrivals]
        assert first == [(0, False)] * 2 + [(None, False)] * 3  # None: vLLM keeps them waiting, asks next step
        side.build_connector_meta(_empty_step())
        second = [side.get_num_new_matched_tokens(r, 0) for r in arrivals]
        assert second == [(0, False)] * 4 + [(None, False)]  # two remembered misses, two new Queries
        assert side.counters.totals()["lookups"] == 4
    finally:
        side.shutdown()


# ---- 3: blocks found in vLLM's own prefix cache are not saved again ----


def test_blocks_found_in_the_local_prefix_cache_are_not_saved_again_nor_held_for(node, engines):
    shape = _shape(engines)
    engine = engines(node, shape, enable_prefix_caching=True)
    tokens = prompt(54, 64)
    engine.add_request("first", tokens, max_tokens=2)
    engine.run()
    assert engine.totals()["save_requested_blocks"] == 4  # 65 tokens computed: 4 full blocks
    engine.add_request("second", tokens + prompt(55, 8), max_tokens=2)  # its 4 full blocks are all cached locally
    engine.run()
    second = engine.scheduler.results["second"]
    assert second.local_tokens == 64 and second.external_tokens == 0
    totals = engine.totals()
    assert totals["save_requested_blocks"] == 4, "the locally cached blocks were saved a second time"
    assert totals["save_skipped_local_blocks"] == 4
    assert second.held_for_saves is False  # nothing to wait for: vLLM frees its blocks at once
    assert engine.mismatches == []


def test_a_locally_cached_block_whose_save_a_preemption_dropped_is_saved_by_the_request_that_finds_it(node, engines):
    shape = _shape(engines)
    engine = engines(node, shape, enable_prefix_caching=True)
    side = engine.connector.scheduler_side
    tokens = prompt(56, 64)
    victim = engine.add_request("victim", tokens, max_tokens=8)
    engine.step()  # prefill: 4 full blocks planned for saving
    assert side._requests["victim"].saved_upto == 4
    side._replan_after_preemption(side._requests["victim"])  # vLLM preempted it: the fence dropped those saves
    engine.scheduler.abort_request(victim.request_id)
    engine.run()
    engine.add_request("finder", tokens + prompt(57, 8), max_tokens=2)
    engine.run()
    assert engine.scheduler.results["finder"].local_tokens == 64
    assert engine.totals().get("save_skipped_local_blocks", 0) == 0  # unconfirmed: saved, not skipped
    with EngineClient(node.endpoint) as client:
        assert _in_pool(client, engine.namespace, victim.block_hashes[:4]) == 4


# ---- 4: a request with no blocks is not held ----


def _scheduled_new(req_id: str, tokens: list[int], block_ids: list[int]) -> FakeSchedulerOutput:
    cached = FakeCachedRequestData([], set(), [], {}, [], [], [])
    new = FakeNewRequestData(req_id, tokens, (block_ids,), 0)
    return FakeSchedulerOutput([new], cached, {req_id: len(tokens)}, len(tokens), set())


def test_request_finished_without_blocks_is_not_held_even_after_saves(node, engines):
    side = _scheduler_side(node.endpoint, _shape(engines))
    try:
        request = FakeRequest("preempted-then-aborted", prompt(58, 48), 2, BS)
        side.update_state_after_alloc(request, FakeKVCacheBlocks([7, 8, 9]), 0)
        meta = side.build_connector_meta(_scheduled_new(request.request_id, request.prompt_token_ids, [7, 8, 9]))
        assert [len(t.block_ids) for t in meta.saves] == [3]  # saves were issued for it
        preempted = replace(_empty_step(), preempted_req_ids={request.request_id})
        side.build_connector_meta(preempted)  # its blocks are freed
        assert side.request_finished(request, []) == (False, None)  # vLLM frees it now; no finished_sending follows
        assert side.build_connector_meta(_empty_step()).hold_req_ids == []
    finally:
        side.shutdown()


def test_a_preempted_request_aborted_while_waiting_is_freed_at_once(node, engines):
    shape = _shape(engines, num_gpu_blocks=14)
    engine = engines(node, shape, max_num_batched_tokens=64)
    engine.call_workers("delay_saves", 0.05)
    for i in range(3):
        engine.add_request(f"r{i}", prompt(60 + i, 60), max_tokens=40)
    for _ in range(400):
        engine.step()
        preempted = [r for r in engine.scheduler.waiting if r.num_preemptions]
        if preempted:
            break
    else:
        pytest.fail("no request was preempted")
    victim = preempted[0].request_id
    engine.scheduler.abort_request(victim)
    assert engine.scheduler.results[victim].held_for_saves is False
    engine.run(max_steps=3000)
    assert engine.mismatches == []


# ---- 5: vLLM 0.29's standardized layouts: one allocation per group, strided per-layer views ----


@pytest.mark.parametrize("layout", sorted(STORED_AS))
def test_vllm_029_group_allocation_round_trips_byte_exact_in_every_standard_layout(node, engines, layout):
    """CacheConfig.kv_cache_layout names the layout; no pegaflow.kv_layout is set: the connector reads vLLM's."""
    shape = _shape(engines, layout=layout)
    first = engines(node, shape)
    expected_tag = STORED_AS[layout]
    assert f"|{expected_tag}|" in first.namespace
    reg = first.call_workers("registration")[0]
    assert reg["layers"] == shape.num_layers and reg["regions"] == 1  # every layer a region of the one allocation
    # Blocks-first layouts interleave a block's layers: the group is registered once and copied one run per block.
    assert reg["entries"] == (1 if layout in ("BLNHC", "BLHNC") else shape.num_layers)
    first.add_request("cold", prompt(70, 100), max_tokens=2)
    first.run()
    second = engines(node, shape)
    second.add_request("warm", prompt(70, 100) + prompt(71, 20), max_tokens=2)
    second.run()
    assert second.scheduler.results["warm"].external_tokens == 96
    assert second.verified_blocks == 6 and second.mismatches == [] and first.mismatches == []
    wait_until(lambda: leases_settled(second), 5, "every lease released")


def test_instances_with_the_same_block_bytes_in_different_vllm_layouts_share_blocks(node, engines):
    """LBNHC (layers outermost) and BLNHC (blocks outermost) keep a layer's block in the same byte order."""
    model = engines.model()
    lbnhc = engines(node, ModelShape(model=model, layout="LBNHC"))
    blnhc = engines(node, ModelShape(model=model, layout="BLNHC"))
    assert lbnhc.namespace == blnhc.namespace
    lbnhc.add_request("a", prompt(72, 64), max_tokens=2)
    lbnhc.run()
    blnhc.add_request("b", prompt(72, 64) + prompt(73, 8), max_tokens=2)
    blnhc.run()
    assert blnhc.scheduler.results["b"].external_tokens == 64 and blnhc.verified_blocks == 4
    assert blnhc.mismatches == []
