"""End to end: a separate worker PROCESS saves vLLM-shaped blocks into a real node and loads them back elsewhere.

The worker (tests/kv_worker.py) owns its KV cache in /dev/shm and talks gRPC to the node; this test process maps
the same file read-only as an observer and checks the bytes itself: after the load, the file must equal its
pre-load image with exactly the target blocks' segments replaced by the saved bytes (so a load that touched
padding, gaps, neighbours or the source blocks fails too).
"""

from __future__ import annotations

import numpy as np
import pytest
from e2e_support import file_bytes, first_difference, random_hashes, read_block, refs, unique, write_block
from kv_worker import WorkerProcess

from pegaflow.shm import KV_PLANES, PACKED, SCRIBBLE_BYTE, SharedKVCache

pytestmark = pytest.mark.node

# Llama-ish per-layer geometry, kept small: 8 layers x 8 KV heads x head 128, 16-token blocks, bf16 -> 64 KiB per
# layer per block, 512 KiB per block.
SHAPE = {"num_layers": 8, "num_blocks": 64, "block_size": 16, "num_kv_heads": 8, "head_size": 128, "dtype": "bfloat16"}
LAYER_BLOCK_BYTES = 16 * 8 * 2 * 128 * 2
SAVED = 32

LAYOUTS = {
    "packed": {"layout": PACKED},
    "kv_planes": {"layout": KV_PLANES},
    "packed_padded_stride_and_layer_gaps": {
        "layout": PACKED,
        "block_stride_padding_bytes": 4096,
        "layer_gap_bytes": 12288,
    },
    "kv_planes_padded_stride_and_layer_gaps": {
        "layout": KV_PLANES,
        "block_stride_padding_bytes": 2048,
        "layer_gap_bytes": 6144,
    },
}


@pytest.mark.parametrize("layout", list(LAYOUTS), ids=list(LAYOUTS))
def test_worker_process_round_trips_blocks_byte_exact_into_other_block_ids(node, layout):
    cache = {**SHAPE, **LAYOUTS[layout]}
    namespace = unique(f"roundtrip-{layout}")
    rng = np.random.default_rng()
    src = list(range(SAVED))
    dst = [SHAPE["num_blocks"] - 1 - i for i in range(SAVED)]  # other ids, in reverse order
    hashes = random_hashes(SAVED, rng)

    with WorkerProcess(node.endpoint, f"roundtrip-{layout}") as worker:
        registered = worker.call("register", cache=cache, namespace=namespace, instance_id=unique("engine"))
        assert registered["block_bytes"] == SHAPE["num_layers"] * LAYER_BLOCK_BYTES
        assert registered["slot_bytes"] == SHAPE["num_layers"] * LAYER_BLOCK_BYTES
        with SharedKVCache(**cache, path=registered["path"], create=False) as observer:
            registrations = observer.layer_registrations()
        if "layer_gap_bytes" in LAYOUTS[layout]:
            assert len({r.region.shm.path for r in registrations}) == 1, "layers share one file"
            assert registrations[0].block_stride_bytes > LAYER_BLOCK_BYTES // len(registrations[0].segments)

        worker.call("fill", blocks=src, seed=int(rng.integers(1 << 31)))
        filled = file_bytes(registered["path"])
        saved_bytes = {(r.layer_index, b): read_block(filled, r, b) for r in registrations for b in src}
        assert all(len(set(v)) > 1 for v in saved_bytes.values()), "fill_random wrote every block"

        assert worker.call("save", blocks=refs(src, hashes)) == {
            "blocks_stored": SAVED,
            "blocks_skipped": 0,
            "blocks_sealed": SAVED,
        }
        assert np.array_equal(file_bytes(registered["path"]), filled), "a save must not write the worker's memory"

        worker.call("scribble", blocks=src)
        scribbled = file_bytes(registered["path"])
        assert read_block(scribbled, registrations[0], src[0]) == bytes([SCRIBBLE_BYTE]) * LAYER_BLOCK_BYTES

        unknown = random_hashes(1, rng)
        assert (
            worker.call("query", namespace=namespace, hashes=[h.hex() for h in hashes + unknown])["hit_blocks"] == SAVED
        )

        loaded = worker.call("load", blocks=refs(dst, hashes))
        assert loaded["failed_block_ids"] == [] and loaded["blocks_scheduled"] == SAVED
        assert (loaded["state"], loaded["loaded"], loaded["failed"]) == ("DONE", SAVED, 0)
        assert loaded["duration_ns"] > 0

        expected = scribbled.copy()
        for r in registrations:
            for s, d in zip(src, dst):
                write_block(expected, r, d, saved_bytes[r.layer_index, s])
        actual = file_bytes(registered["path"])
        assert np.array_equal(actual, expected), first_difference(actual, expected, registrations)
