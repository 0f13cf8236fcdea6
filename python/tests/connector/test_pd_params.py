"""The P/D hand-off's untrusted input: ``kv_transfer_params`` as API clients send them (no node needed)."""

from __future__ import annotations

import contextlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pegaflow.vllm.pd import (
    MAX_BLOCKS,
    Handoff,
    InvalidTransferParams,
    parse_handoff,
    parse_request_params,
)

NOW_MS = int(time.time() * 1000)


def _good(**change) -> dict:
    fields = {
        "version": 1,
        "namespace": "m|bfloat16|packed-nhd|b16|l4|kv2x64|tp1",
        "block_size": 16,
        "block_hashes": ["ab" * 32, "cd" * 32],
        "holder": "n1",
        "expires_unix_ms": NOW_MS + 30_000,
    }
    fields.update(change)
    return {"do_remote_prefill": True, "do_remote_decode": False, "pegaflow": fields}


def test_a_handoff_round_trips_through_its_params():
    handoff = Handoff("ns", 16, (b"\x01" * 32, b"\x02" * 32), "n1", NOW_MS + 1000)
    parsed = parse_request_params(handoff.to_params(), now_ms=NOW_MS)
    assert parsed.handoff == handoff and not parsed.remote_decode


def test_params_without_a_handoff_ask_nothing_or_ask_for_remote_decode():
    assert parse_request_params(None) is None
    assert parse_request_params({}) is None
    assert parse_request_params({"remote_engine_id": "x", "do_remote_decode": False}) is None
    assert parse_request_params({"do_remote_decode": True}).remote_decode


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ("x", "kv_transfer_params: expected an object"),
        ({"do_remote_decode": "true"}, "do_remote_decode: expected true or false"),
        ({"do_remote_prefill": 1, "pegaflow": {}}, "do_remote_prefill"),
        ({"do_remote_prefill": True, "do_remote_decode": True}, "both true"),
        ({"do_remote_prefill": True}, "'pegaflow' is missing"),
        (_good(version=2), "pegaflow.version: 2 is outside 1..1"),
        (_good(version=True), "pegaflow.version: expected an integer, got bool"),
        (_good(namespace=""), "pegaflow.namespace"),
        (_good(namespace="x" * 5000), "pegaflow.namespace"),
        (_good(block_size=0), "pegaflow.block_size"),
        (_good(block_size=16.0), "pegaflow.block_size: expected an integer"),
        (_good(block_hashes=[]), "pegaflow.block_hashes: expected a list"),
        (_good(block_hashes="abcd"), "pegaflow.block_hashes: expected a list"),
        (_good(block_hashes=["ab", "xyz1"]), "pegaflow.block_hashes[1]"),
        (_good(block_hashes=["abc"]), "pegaflow.block_hashes[0]"),
        (_good(block_hashes=["ab" * 65]), "pegaflow.block_hashes[0]"),
        (_good(block_hashes=[None]), "pegaflow.block_hashes[0]"),
        (_good(block_hashes=["ab"] * (MAX_BLOCKS + 1)), "pegaflow.block_hashes"),
        (_good(holder="n1/../x"), "pegaflow.holder"),
        (_good(holder=7), "pegaflow.holder"),
        (_good(expires_unix_ms=-1), "pegaflow.expires_unix_ms"),
        (_good(expires_unix_ms=NOW_MS + 10**10), "pegaflow.expires_unix_ms"),
        (_good(expires_unix_ms="soon"), "pegaflow.expires_unix_ms"),
        (_good(extra=1), "unknown field"),
    ],
)
def test_malformed_params_are_refused_naming_the_field(params, fragment):
    with pytest.raises(InvalidTransferParams) as raised:
        parse_request_params(params, now_ms=NOW_MS)
    assert fragment in str(raised.value)


def test_a_handoff_missing_fields_names_them():
    with pytest.raises(InvalidTransferParams, match=r"missing field\(s\) \['block_hashes', 'holder'\]"):
        parse_handoff({k: v for k, v in _good()["pegaflow"].items() if k not in ("holder", "block_hashes")})


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        _json,
        st.dictionaries(st.sampled_from(["do_remote_prefill", "do_remote_decode", "pegaflow", "x"]), _json),
        st.builds(
            lambda fields: {"do_remote_prefill": True, "pegaflow": fields},
            st.dictionaries(
                st.sampled_from(["version", "namespace", "block_size", "block_hashes", "holder", "expires_unix_ms"]),
                _json,
            ),
        ),
    )
)
def test_any_json_value_is_parsed_or_refused_never_anything_else(params):
    with contextlib.suppress(InvalidTransferParams):  # anything else (TypeError, KeyError, ...) fails the test
        parse_request_params(params, now_ms=NOW_MS)
