"""End to end: eight worker PROCESSES, each with its own shared-memory KV cache and namespace, save and load
against one node at the same time, round after round, and check every byte they get back."""

from __future__ import annotations

import contextlib

import pytest
from e2e_support import unique
from kv_worker import WorkerProcess

from pegaflow.shm import KV_PLANES, PACKED

pytestmark = pytest.mark.node

WORKERS = 8
ROUNDS = 5
BLOCKS = 8  # per round; loaded back into 8 other block ids
# 4 layers x 2 KV heads x head 64, 16-token blocks, bf16: 8 KiB per layer, 32 KiB per block.
SHAPE = {"num_layers": 4, "num_blocks": 2 * BLOCKS, "block_size": 16, "num_kv_heads": 2, "head_size": 64}


@pytest.mark.timeout(120)
def test_eight_concurrent_worker_processes_save_and_load_byte_exact(node):
    before = node.fresh_metrics()
    with contextlib.ExitStack() as stack:
        workers = [stack.enter_context(WorkerProcess(node.endpoint, f"worker{i}")) for i in range(WORKERS)]
        namespaces = [unique(f"concurrent{i}") for i in range(WORKERS)]
        for i, (worker, namespace) in enumerate(zip(workers, namespaces)):
            cache = {**SHAPE, "layout": KV_PLANES if i % 2 else PACKED}
            worker.call("register", cache=cache, namespace=namespace, instance_id=unique("engine"))
        # All eight run their rounds at once; only then are the replies collected.
        for i, (worker, namespace) in enumerate(zip(workers, namespaces)):
            worker.send("rounds", namespace=namespace, rounds=ROUNDS, blocks=BLOCKS, seed=1000 + i)
        results = [worker.reply("rounds", timeout_s=90) for worker in workers]

    problems = {w.name: r["mismatches"] for w, r in zip(workers, results) if r["mismatches"]}
    assert not problems, problems
    after = node.fresh_metrics()
    inserted = after.value("pegaflow_block_insertions_total") - before.value("pegaflow_block_insertions_total")
    assert inserted == WORKERS * ROUNDS * BLOCKS
    assert after.value("pegaflow_engine_contexts") == before.value("pegaflow_engine_contexts"), "all unregistered"
