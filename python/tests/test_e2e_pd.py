"""Prefill/decode disaggregation end to end: stand-in OpenAI servers (the real connector in both roles over the
vLLM-shaped harness) on two different nodes of a three-node cluster, with and without ``./pegaflow proxy``.

The fake model's KV bytes and tokens depend only on the token prefix, so a decode engine that computed on wrong KV
bytes is caught by its byte check (``mismatches``) before it computes, and every answer must equal the one the
model gives for the prompt (``expected_text``).
"""

from __future__ import annotations

import secrets
import time
import uuid

import pytest
from e2e_support import wait_until
from pd_support import expected_text, get_json, get_text, post, proxy, sse_events, standin

from pegaflow.client import FabricClient
from pegaflow_testing.localnode import LocalCluster, free_port

pytestmark = [pytest.mark.node, pytest.mark.timeout(150)]

BLOCK = 16
PROMPT_BLOCKS = 8
REMOTE_DECODE = {"do_remote_decode": True, "do_remote_prefill": False}


def _prompt() -> str:
    # One token per byte; PROMPT_BLOCKS full blocks and a partial one. Random: no earlier test saved these blocks.
    return secrets.token_hex(PROMPT_BLOCKS * BLOCK // 2) + "tail!"


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster.start(3, pool_size="64mb") as c:
        yield c


@pytest.fixture(scope="module")
def prefill(cluster):
    with standin(cluster["n1"].endpoint, "prefill-n1") as server:
        yield server


@pytest.fixture(scope="module")
def decode(cluster):
    with standin(cluster["n2"].endpoint, "decode-n2") as server:
        yield server


@pytest.fixture(scope="module")
def pd_proxy(prefill, decode):
    with proxy([prefill.url], [decode.url]) as server:
        yield server


def _totals(server) -> dict:
    return get_json(server.url + "/stats")["totals"]


def _delta(after: dict, before: dict, key: str) -> float:
    return after.get(key, 0) - before.get(key, 0)


def _prefill_leg(server, prompt: str, rid: str) -> dict:
    status, body = post(
        server.url + "/v1/completions",
        {"model": "m", "prompt": prompt, "max_tokens": 1, "stream": False, "kv_transfer_params": REMOTE_DECODE},
        headers={"X-Request-Id": rid},
    )
    assert status == 200, body
    params = body["kv_transfer_params"]
    assert params["do_remote_prefill"] is True and "pegaflow" in params, params
    return params


def _decode_leg(server, prompt: str, params, rid: str, max_tokens: int = 6) -> tuple[int, dict]:
    return post(
        server.url + "/v1/completions",
        {"model": "m", "prompt": prompt, "max_tokens": max_tokens, "kv_transfer_params": params},
        headers={"X-Request-Id": rid},
    )


def _last_completed(server, rid: str) -> dict:
    done = [c for c in get_json(server.url + "/stats")["completed"] if c["x_request_id"] == rid]
    assert done, f"{server.name} completed nothing for {rid}"
    return done[-1]


def test_decode_engine_on_n2_loads_byte_exact_the_kv_the_prefill_engine_on_n1_computed(prefill, decode):
    prompt, rid = _prompt(), uuid.uuid4().hex
    before = _totals(decode)
    params = _prefill_leg(prefill, prompt, rid)
    handoff = params["pegaflow"]
    assert len(handoff["block_hashes"]) == PROMPT_BLOCKS and handoff["holder"] == "n1", handoff
    assert handoff["expires_unix_ms"] > time.time() * 1000

    status, body = _decode_leg(decode, prompt, params, rid)
    assert status == 200, body
    assert body["choices"][0]["text"] == expected_text(prompt, 6)
    after = _totals(decode)
    stats = get_json(decode.url + "/stats")
    assert stats["mismatches"] == [], stats["mismatches"]
    done = _last_completed(decode, rid)
    assert done["external_tokens"] == PROMPT_BLOCKS * BLOCK, done
    assert _delta(after, before, "pd_claimed_blocks") == PROMPT_BLOCKS
    assert _delta(after, before, "loaded_blocks") == PROMPT_BLOCKS
    assert _delta(after, before, "load_failed_blocks") == 0
    assert rid in stats["request_ids"]


def test_decode_waits_for_a_slow_prefill_save_instead_of_racing_it(cluster, decode):
    with standin(cluster["n1"].endpoint, "slow-prefill-n1", "--delay-saves-s", "3") as slow:
        prompt, rid = _prompt(), uuid.uuid4().hex
        before = _totals(decode)
        started = time.monotonic()
        params = _prefill_leg(slow, prompt, rid)
        answered_s = time.monotonic() - started
        assert answered_s < 3.0, f"the prefill answer waited for its save ({answered_s:.1f} s)"
        # The hand-off goes out while the save is still sleeping: the blocks are not sealed anywhere yet.
        status, body = _decode_leg(decode, prompt, params, rid)
        assert status == 200, body
        assert body["choices"][0]["text"] == expected_text(prompt, 6)
        after = _totals(decode)
        assert get_json(decode.url + "/stats")["mismatches"] == []
        assert _delta(after, before, "load_failed_blocks") == 0, "decode raced the save"
        assert _delta(after, before, "loaded_blocks") == PROMPT_BLOCKS
        assert after.get("pd_seal_wait_seconds_max", 0) >= 1.5, after
        assert _last_completed(decode, rid)["external_tokens"] == PROMPT_BLOCKS * BLOCK


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"do_remote_prefill": "yes", "pegaflow": {}}, "do_remote_prefill"),
        ({"do_remote_prefill": True}, "'pegaflow' is missing"),
        ({"do_remote_prefill": True, "pegaflow": []}, "kv_transfer_params.pegaflow"),
        ({"do_remote_prefill": True, "do_remote_decode": True, "pegaflow": {}}, "both true"),
        ({"do_remote_prefill": True, "pegaflow": {"version": 1}}, "missing field"),
        ({"do_remote_decode": 1}, "do_remote_decode"),
    ],
)
def test_decode_engine_refuses_malformed_kv_transfer_params_per_request(decode, params, field):
    prompt = _prompt()
    status, body = _decode_leg(decode, prompt, params, uuid.uuid4().hex, max_tokens=3)
    assert status == 200, body
    assert body["choices"][0]["text"] == expected_text(prompt, 3)  # computed locally
    assert field in body["kv_transfer_params"]["pegaflow_error"], body["kv_transfer_params"]


def test_decode_engine_refuses_bad_fields_of_a_real_handoff_and_keeps_serving(prefill, decode):
    prompt, rid = _prompt(), uuid.uuid4().hex
    good = _prefill_leg(prefill, prompt, rid)
    cases = {
        "block_hashes[2]": {"block_hashes": [*good["pegaflow"]["block_hashes"][:2], "zz"]},
        "block_hashes": {"block_hashes": []},
        "namespace": {"namespace": "another/model|bfloat16"},
        "block_size": {"block_size": 32},
        "version": {"version": 2},
        "expires_unix_ms": {"expires_unix_ms": True},
        "holder": {"holder": "n1; rm -rf /"},
        "unknown field": {"extra": 1},
        "block_hashes[0] is not the hash": {"block_hashes": ["00" * 32] * 3},
    }
    before = _totals(decode)
    for field, change in cases.items():
        bad = {**good, "pegaflow": {**good["pegaflow"], **change}}
        status, body = _decode_leg(decode, prompt, bad, uuid.uuid4().hex, max_tokens=2)
        assert status == 200, (field, body)
        assert body["choices"][0]["text"] == expected_text(prompt, 2), field
        assert field in body["kv_transfer_params"]["pegaflow_error"], (field, body["kv_transfer_params"])
    assert _delta(_totals(decode), before, "pd_refused_params") == len(cases)
    status, _ = post(decode.url + "/v1/completions", {"prompt": prompt, "kv_transfer_params": [1]})
    assert status == 400  # not an object: vLLM's request model refuses it before the engine sees it
    # The engine still serves a valid hand-off.
    status, body = _decode_leg(decode, prompt, good, rid)
    assert status == 200 and body["choices"][0]["text"] == expected_text(prompt, 6)


def test_proxy_serves_completions_and_chat_across_two_nodes_streaming_and_not(pd_proxy, prefill, decode):
    prompt, rid = _prompt(), uuid.uuid4().hex
    before = _totals(decode)
    status, body = post(
        pd_proxy.url + "/v1/completions",
        {"model": "m", "prompt": prompt, "max_tokens": 5},
        headers={"X-Request-Id": rid},
    )
    assert status == 200, body
    assert body["choices"][0]["text"] == expected_text(prompt, 5)
    assert rid in get_json(prefill.url + "/stats")["request_ids"]
    assert rid in get_json(decode.url + "/stats")["request_ids"]
    assert _delta(_totals(decode), before, "pd_claimed_blocks") == PROMPT_BLOCKS
    assert _last_completed(prefill, rid)["output_token_ids"].__len__() == 1  # the prefill leg: max_tokens=1

    status, text = post(pd_proxy.url + "/v1/completions", {"prompt": _prompt() + "s", "max_tokens": 4, "stream": True})
    assert status == 200, text
    events = sse_events(text)
    assert events[-1] == "[DONE]" and len(events) >= 5, events

    content = "hello " * 30
    status, body = post(
        pd_proxy.url + "/v1/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": content}], "max_tokens": 3},
    )
    assert status == 200, body
    assert body["choices"][0]["message"]["content"] == expected_text(f"user: {content}\nassistant:", 3)

    # Kamon publishes once a second: the legs show up within a few ticks.
    wait_until(
        lambda: (
            'pegaflow_proxy_leg_duration_seconds_count{leg="decode",outcome="ok"}'
            in get_text(pd_proxy.url + "/metrics")
        ),
        10.0,
        "the proxy's /metrics shows the decode leg's latency",
    )
    assert 'pegaflow_proxy_leg_duration_seconds_count{leg="prefill",outcome="ok"}' in get_text(
        pd_proxy.url + "/metrics"
    )


def test_proxy_answers_502_naming_the_leg_that_is_down(prefill, decode):
    dead = f"http://127.0.0.1:{free_port()}"
    with proxy([dead], [decode.url]) as p:
        status, body = post(p.url + "/v1/completions", {"prompt": "x" * 40, "max_tokens": 2})
        assert status == 502, body
        assert "prefill" in body["error"]["message"] and dead in body["error"]["message"], body
    with proxy([prefill.url], [dead]) as p:
        status, body = post(p.url + "/v1/completions", {"prompt": "y" * 40, "max_tokens": 2})
        assert status == 502, body
        assert "decode" in body["error"]["message"] and dead in body["error"]["message"], body


def test_prefill_node_killed_between_the_legs_decode_recomputes_and_answers(cluster, decode):
    """Last in this module: n3 does not come back."""
    with standin(cluster["n3"].endpoint, "prefill-n3") as doomed:
        prompt, rid = _prompt(), uuid.uuid4().hex
        params = _prefill_leg(doomed, prompt, rid)
        hashes = [bytes.fromhex(h) for h in params["pegaflow"]["block_hashes"]]
        namespace = params["pegaflow"]["namespace"]
        with FabricClient(cluster["n2"].endpoint, timeout_s=5.0) as fabric:
            wait_until(
                lambda: all("n3" in b.node_ids for b in fabric.locate(namespace, hashes).blocks),
                30.0,
                "the directory lists n3 as the holder of the handed-off blocks",
            )
        cluster["n3"].kill()
        before = _totals(decode)
        status, body = _decode_leg(decode, prompt, params, rid)
        assert status == 200, body
        assert body["choices"][0]["text"] == expected_text(prompt, 6)
        after = _totals(decode)
        assert get_json(decode.url + "/stats")["mismatches"] == []
        failed = _delta(after, before, "load_failed_blocks")
        assert failed > 0, after
        assert _delta(after, before, "loaded_blocks") + failed == PROMPT_BLOCKS
