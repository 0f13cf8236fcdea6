"""A worker's whole KV round trip against a running node, once per cache layout, with every byte checked.

    python3 -m pegaflow.demo_workload --endpoint 127.0.0.1:50055 [--blocks 64] [--layers 8]

For each layout (vLLM's current packed layout and the older K/V planes) it acts as one vLLM worker: a
SharedKVCache in /dev/shm registered as its own context in its own namespace, with a Session open; random bytes in
``--blocks`` blocks, saved under random 32-byte hashes (like vLLM's sha256 block hashes); the blocks scribbled
over; a Query that leases the prefix; a Load (consuming the lease) into other block ids; the loaded bytes compared
with what was saved. One summary line per layout; exit status 0 only if every block of every layout came back
exactly (1 on a mismatch or short count, 2 on a failed call).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from dataclasses import dataclass

import numpy as np

from pegaflow.client import EngineClient
from pegaflow.errors import EngineError
from pegaflow.flag import LoadFlagFile, LoadState
from pegaflow.shm import HOST_DEVICE, KV_PLANES, PACKED, SharedKVCache

# Per-layer geometry of a Llama-8B-like model (8 KV heads of 128, 16-token blocks, bf16): 64 KiB per layer per block.
BLOCK_SIZE = 16
NUM_KV_HEADS = 8
HEAD_SIZE = 128
LEASE_TTL_MS = 30_000
LOAD_TIMEOUT_S = 30.0


@dataclass
class LayoutResult:
    layout: str
    blocks: int
    saved: int
    hit: int
    loaded: int
    verified: int
    bytes_moved: int
    save_ms: float
    load_ms: float

    @property
    def ok(self) -> bool:
        return self.saved == self.hit == self.loaded == self.verified == self.blocks

    def summary(self) -> str:
        return (
            f"{self.layout}: {self.saved} blocks saved, {self.hit} hit, {self.loaded} loaded, {self.verified} verified "
            f"({self.bytes_moved / 1e6:.1f} MB, save {self.save_ms:.1f} ms, load {self.load_ms:.1f} ms)"
        )


def run_layout(client: EngineClient, layout: str, blocks: int, layers: int, seed: int) -> LayoutResult:
    """One worker context in its own namespace: fill, save, scribble, query+lease, load elsewhere, verify."""
    rng = np.random.default_rng(seed)
    run = uuid.uuid4().hex[:8]
    # The namespace names what makes blocks interchangeable: model geometry, dtype, layout, TP.
    namespace = f"demo-{layout}-l{layers}-h{NUM_KV_HEADS}x{HEAD_SIZE}-b{BLOCK_SIZE}-bf16-tp1"
    src = list(range(blocks))
    dst = list(range(2 * blocks - 1, blocks - 1, -1))  # other block ids, in reverse order
    hashes = [rng.bytes(32) for _ in src]
    with (
        SharedKVCache(layers, 2 * blocks, BLOCK_SIZE, NUM_KV_HEADS, HEAD_SIZE, layout=layout) as cache,
        LoadFlagFile(slots=1) as flags,
    ):
        reply = client.register_context(
            f"demo-{run}", namespace, 0, 1, 0, layers, HOST_DEVICE, cache.layer_registrations()
        )
        with client.open_session(reply.context_id):
            cache.fill_random(src, seed)
            expected = [[cache.block_bytes(layer, b) for layer in range(layers)] for b in src]

            started = time.perf_counter()
            saved = client.save(reply.context_id, list(zip(src, hashes)))
            save_ms = (time.perf_counter() - started) * 1e3
            cache.scribble(src + dst)

            query = client.query(namespace, hashes, lease_ttl_ms=LEASE_TTL_MS)
            slot = flags.slot(0)
            slot.reset()
            started = time.perf_counter()
            client.load(reply.context_id, list(zip(dst, hashes)), slot, lease_id=query.lease_id)
            state = slot.wait(LOAD_TIMEOUT_S)
            load_ms = (time.perf_counter() - started) * 1e3
            loaded = slot.loaded if state is not LoadState.PENDING else 0

            verified = sum(
                all(cache.block_bytes(layer, d) == expected[i][layer] for layer in range(layers))
                for i, d in enumerate(dst)
            )
    return LayoutResult(
        layout=layout,
        blocks=blocks,
        saved=saved.blocks_stored + saved.blocks_skipped,
        hit=query.hit_blocks,
        loaded=loaded,
        verified=verified,
        bytes_moved=blocks * reply.block_bytes,
        save_ms=save_ms,
        load_ms=load_ms,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m pegaflow.demo_workload", description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True, help="the node's gRPC address, HOST:PORT")
    parser.add_argument("--blocks", type=int, default=64, help="blocks saved and loaded per layout (default 64)")
    parser.add_argument("--layers", type=int, default=8, help="model layers (default 8)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one)")
    args = parser.parse_args(argv)
    if args.blocks < 1 or args.layers < 1:
        parser.error("--blocks and --layers must be at least 1")
    seed = args.seed if args.seed is not None else int(np.random.default_rng().integers(1 << 31))

    ok = True
    with EngineClient(args.endpoint, timeout_s=30.0) as client:
        for i, layout in enumerate((PACKED, KV_PLANES)):
            try:
                result = run_layout(client, layout, args.blocks, args.layers, seed + i)
            except EngineError as e:
                print(f"{layout}: FAILED: {e}", flush=True)
                return 2
            print(result.summary() + ("" if result.ok else "  MISMATCH"), flush=True)
            ok = ok and result.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
