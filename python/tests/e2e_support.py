"""Helpers shared by the end-to-end tests (test_e2e_*.py): names, hashes, error checks, waiting, file bytes."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest

from pegaflow.errors import EngineError


def unique(prefix: str) -> str:
    """A name no other test uses (namespaces, instance ids): tests share one node."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def random_hashes(count: int, rng: np.random.Generator | None = None) -> list[bytes]:
    """32 random bytes each, like vLLM's sha256 block hashes."""
    rng = rng or np.random.default_rng()
    return [rng.bytes(32) for _ in range(count)]


def refs(block_ids, hashes) -> list[list]:
    """The JSON form of blocks for a WorkerProcess: [[block_id, hash_hex], ...]."""
    return [[int(b), h.hex()] for b, h in zip(block_ids, hashes, strict=True)]


@contextlib.contextmanager
def expect_error(code: grpc.StatusCode, *fragments: str):
    """Expects an EngineError with ``code`` whose details contain every fragment (the field it names, the range)."""
    with pytest.raises(EngineError) as raised:
        yield raised
    error = raised.value
    assert error.code == code, f"expected {code.name}, got {error.code.name}: {error.details}"
    for fragment in fragments:
        assert fragment in error.details, f"{error.code.name} details {error.details!r} lack {fragment!r}"


def wait_until(predicate, timeout_s: float, what: str, pause_s: float = 0.05):
    """Polls ``predicate`` until it returns a truthy value (returned) or fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what} (last: {value!r})")
        time.sleep(pause_s)


# ---- the bytes of a shared-memory KV cache file, located through its registrations ----


def file_bytes(path: str | os.PathLike) -> np.ndarray:
    """A private copy of the whole file (what the worker's memory holds right now)."""
    return np.frombuffer(Path(path).read_bytes(), dtype=np.uint8).copy()


def segment_ranges(registration, block_id: int) -> list[tuple[int, int]]:
    """[start, end) file ranges of one block of one layer, in segment order (the order the node copies them)."""
    start = registration.region.shm.offset_bytes + block_id * registration.block_stride_bytes
    return [(start + s.offset_bytes, start + s.offset_bytes + s.length_bytes) for s in registration.segments]


def read_block(data: np.ndarray, registration, block_id: int) -> bytes:
    return b"".join(data[a:b].tobytes() for a, b in segment_ranges(registration, block_id))


def write_block(data: np.ndarray, registration, block_id: int, content: bytes) -> None:
    at = 0
    for a, b in segment_ranges(registration, block_id):
        data[a:b] = np.frombuffer(content[at : at + b - a], dtype=np.uint8)
        at += b - a
    assert at == len(content)


def first_difference(actual: np.ndarray, expected: np.ndarray, registrations) -> str:
    """Where two file images differ, as (layer, block, byte) when a registered block covers it."""
    diff = np.flatnonzero(actual != expected)
    if diff.size == 0:
        return "no difference"
    offset = int(diff[0])
    where = "outside every registered block (padding or gap)"
    for registration in registrations:
        for block in range(registration.num_blocks):
            for a, b in segment_ranges(registration, block):
                if a <= offset < b:
                    where = f"layer {registration.layer_index} block {block} byte {offset - a} of a segment"
    return f"{diff.size} bytes differ; the first at file offset {offset}: {where}"
