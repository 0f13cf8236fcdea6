"""The P/D hand-off inside the vLLM-shaped scheduler loop (its asserts: lookups side-effect free, held blocks
released only through finished_sending), two engines of one model on one real node: a prefill engine hands its
prompt to a decode engine through ``kv_transfer_params``. Across nodes: ``tests/test_e2e_pd.py``."""

from __future__ import annotations

import time

import pytest
from connector_support import wait_until

from pegaflow_testing.fake_vllm import ModelShape, prompt

pytestmark = [pytest.mark.node, pytest.mark.timeout(90)]

REMOTE_DECODE = {"do_remote_decode": True, "do_remote_prefill": False}
BLOCKS = 10


def _prefill(engine, tokens, req_id="p") -> dict:
    """Runs the prefill leg until vLLM hands the answer (with its kv_transfer_params) to the client."""
    engine.add_request(req_id, tokens, max_tokens=1, kv_transfer_params=REMOTE_DECODE)
    for _ in range(2000):
        engine.step()
        if req_id in engine.scheduler.results:
            return engine.scheduler.results[req_id]
        time.sleep(0.002)
    raise AssertionError("the prefill request did not finish")


def test_a_slow_save_is_waited_for_then_the_decode_engine_loads_the_whole_prompt_byte_exact(node, engines):
    shape = ModelShape(model=engines.model("pd"), num_gpu_blocks=64)
    prefill = engines(node, shape)
    decode = engines(node, shape)
    prefill.call_workers("delay_saves", 1.5)
    tokens = prompt(7, BLOCKS * shape.block_size + 3)

    result = _prefill(prefill, tokens)
    params = result.kv_transfer_params
    assert result.held_for_saves  # vLLM keeps the blocks until the saves are done
    assert params["do_remote_prefill"] is True and len(params["pegaflow"]["block_hashes"]) == BLOCKS
    assert params["pegaflow"]["namespace"] == decode.namespace

    decode.add_request("d", tokens, max_tokens=3, kv_transfer_params=params)
    decode.run(max_steps=20_000)
    prefill.run(max_steps=20_000)  # the held blocks come back through finished_sending
    done = decode.scheduler.results["d"]
    assert done.external_tokens == BLOCKS * shape.block_size
    assert decode.mismatches == [] and decode.verified_blocks == BLOCKS
    totals = decode.totals()
    assert totals.get("load_failed_blocks", 0) == 0 and totals["loaded_blocks"] == BLOCKS
    assert totals["pd_seal_wait_seconds_max"] >= 1.0, totals
    assert done.kv_transfer_params is None
    wait_until(lambda: prefill.totals().get("pd_leases_taken", 0) == 1, 10.0, "the producer leased the blocks")


def test_params_for_another_namespace_are_refused_and_the_request_is_computed_locally(node, engines):
    shape = ModelShape(model=engines.model("pd"), num_gpu_blocks=64)
    prefill = engines(node, shape)
    other = engines(node, ModelShape(model=engines.model("other"), num_gpu_blocks=64))
    tokens = prompt(8, BLOCKS * shape.block_size)
    params = _prefill(prefill, tokens).kv_transfer_params

    other.add_request("d", tokens, max_tokens=2, kv_transfer_params=params)
    other.run(max_steps=2000)
    done = other.scheduler.results["d"]
    assert done.external_tokens == 0 and done.status == "FINISHED_LENGTH_CAPPED"
    assert "namespace" in done.kv_transfer_params["pegaflow_error"], done.kv_transfer_params
    assert other.totals()["pd_refused_params"] == 1


def test_a_prefill_request_without_a_full_block_hands_nothing_off(node, engines):
    prefill = engines(node)
    result = _prefill(prefill, prompt(9, 5))
    assert result.kv_transfer_params is None
