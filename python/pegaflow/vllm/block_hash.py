"""vLLM's ``sha256_cbor`` block hashes, reproduced without vLLM (for the vLLM-shaped stand-ins, the demo and checks).

With ``--prefix-caching-hash-algo sha256_cbor`` vLLM hashes block ``i`` of a request as
``SHA-256(canonical CBOR of [parent, [token ids...], extra_keys or null])`` where ``parent`` is block ``i-1``'s hash
and block 0's parent is ``NONE_HASH`` = ``SHA-256(CBOR text "vllm-none-hash")`` (unless ``PYTHONHASHSEED`` is set:
then vLLM seeds ``NONE_HASH`` from that value, see ``none_hash``). Only full blocks have hashes. Every process, node
and language computes the same bytes, which is what lets two vLLM instances share blocks through PegaFlow. The
default ``sha256`` algorithm hashes a pickle instead: reproducible only among Python processes of one version.

The connector itself never hashes: it uses ``request.block_hashes`` as vLLM computed them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

DEFAULT_NONE_HASH_SEED = "vllm-none-hash"

__all__ = ["DEFAULT_NONE_HASH_SEED", "block_hashes", "cbor", "hash_block_tokens", "none_hash"]


def cbor(value) -> bytes:
    """Canonical CBOR of the few types a block hash input holds: int, bytes, str, list/tuple, None."""
    out = bytearray()
    _encode(out, value)
    return bytes(out)


def _head(out: bytearray, major: int, n: int) -> None:
    if n < 24:
        out.append(major << 5 | n)
    elif n < 1 << 8:
        out += bytes((major << 5 | 24, n))
    elif n < 1 << 16:
        out.append(major << 5 | 25)
        out += n.to_bytes(2, "big")
    elif n < 1 << 32:
        out.append(major << 5 | 26)
        out += n.to_bytes(4, "big")
    elif n < 1 << 64:
        out.append(major << 5 | 27)
        out += n.to_bytes(8, "big")
    else:
        raise ValueError(f"integer {n} does not fit CBOR's 64-bit heads")


def _encode(out: bytearray, value) -> None:
    if value is None:
        out.append(0xF6)
    elif isinstance(value, bool):
        out.append(0xF5 if value else 0xF4)
    elif isinstance(value, int):
        if value >= 0:
            _head(out, 0, value)
        else:
            _head(out, 1, -1 - value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        _head(out, 2, len(raw))
        out += raw
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        _head(out, 3, len(raw))
        out += raw
    elif isinstance(value, (list, tuple)):
        _head(out, 4, len(value))
        for item in value:
            _encode(out, item)
    else:
        raise TypeError(f"cannot hash a {type(value).__name__} (block hash inputs are ints, bytes, str, lists)")


def none_hash(seed: str = DEFAULT_NONE_HASH_SEED) -> bytes:
    """The parent hash of block 0: SHA-256 of the CBOR text ``seed`` (vLLM uses PYTHONHASHSEED when it is set)."""
    return hashlib.sha256(cbor(seed)).digest()


def hash_block_tokens(parent: bytes | None, token_ids: Sequence[int], extra_keys=None) -> bytes:
    """One block's hash, chained to ``parent`` (``None`` = first block)."""
    parent = none_hash() if parent is None else parent
    return hashlib.sha256(cbor([parent, list(token_ids), extra_keys])).digest()


def block_hashes(token_ids: Sequence[int], block_size: int, parent: bytes | None = None) -> list[bytes]:
    """The hashes of every full block of ``token_ids`` (a trailing partial block has none)."""
    if block_size <= 0:
        raise ValueError(f"block_size must be > 0, got {block_size}")
    hashes = []
    for start in range(0, len(token_ids) - block_size + 1, block_size):
        parent = hash_block_tokens(parent, token_ids[start : start + block_size])
        hashes.append(parent)
    return hashes
