#!/usr/bin/env python3
"""The vLLM connector's worker side under a stream of vLLM-like steps: time vLLM's thread spends in the connector
per step, and what slow saves cost (blocks held after a request finished, steps that found no free block), with
one Save at a time vs several in flight, in the same run, against one real node.

    .venv/bin/python bench/python/async_save_steps.py [--steps 300] [--forward-ms 5] [--variants seq,async4,async8]
                                                      [--main-root DIR] [--endpoint HOST:PORT] [--out FILE]

One worker connector (role WORKER) over a host KV cache (a shared-memory file the node maps; the host stands in for
the GPU) is driven the way vLLM's model runner drives it, step by step: ``handle_preemptions`` (a preempted
request's blocks go straight back to the free list, as vLLM reuses them), ``bind_connector_metadata``,
``start_load_kv``, the forward (a sleep of ``--forward-ms``), ``wait_for_save``, ``get_finished``,
``clear_connector_metadata``. A small scheduler stands in for vLLM's: a request of ``--prompt-blocks`` full blocks
arrives every step and is prefilled in chunks (``--budget-blocks`` per step for all requests), each newly full block
is saved, a request that finished prefill is finished (``max_tokens=1``, the P/D prefill pattern) and held until the
worker reports it in ``finished_sending``; its blocks are free again only then. Every ``--preempt-every`` steps the
newest running request is preempted (its blocks reused at once, the fence waits for its Saves in flight) and
prefilled again later. After the last step it keeps stepping (forward sleeps included) until nothing is held.

Variants (each its own process and namespace, one after another, on the same node):
``seq`` = ``pegaflow.max_saves_in_flight: 1`` (one Save after another, the connector before this key),
``asyncN`` = N in flight, ``main`` = the connector of another checkout (``--main-root``, its python/; it has no
in-flight key), e.g. ``git archive main python | tar -x -C /tmp/pf-main``.

Reported per variant: the connector's time on vLLM's thread per step (mean, p50, p99, max; the forward's sleep not
counted), the preemption fences' share of it, the time from a request's finish until ``finished_sending`` (its blocks
held), steps in which a request found no free block, blocks saved, Save calls' mean latency, saves dropped, most in
flight at once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", help="a running node's gRPC address (default: start one)")
    p.add_argument("--pool-size", default="1gb")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--forward-ms", type=float, default=5.0)
    p.add_argument("--prompt-blocks", type=int, default=24)
    p.add_argument("--budget-blocks", type=int, default=32, help="blocks prefilled per step, all requests together")
    p.add_argument("--preempt-every", type=int, default=25)
    p.add_argument("--gpu-blocks", type=int, default=384)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--head-size", type=int, default=128)
    p.add_argument("--max-blocks-per-save", type=int, default=8)
    p.add_argument("--variants", default="seq,async4,async8")
    p.add_argument("--main-root", help="another checkout's root: adds variant 'main' (its connector)")
    p.add_argument("--out", help="write the Markdown summary here")
    p.add_argument("--run-variant", help=argparse.SUPPRESS)  # internal: one variant in this process
    return p


# ---------------------------------------------------------------- one variant (its own process)


def run_variant(args) -> dict:
    from pegaflow.shm import SharedKVCache
    from pegaflow.vllm.connector import PegaKVConnector
    from pegaflow.vllm.metadata import BlockTransfer, PegaConnectorMetadata
    from pegaflow_testing.fake_vllm import FakeKVCacheConfig, FakeRole, ModelShape, make_vllm_config

    variant = args.run_variant
    tag = f"{variant}-{time.time_ns()}"
    shape = ModelShape(
        model=f"bench/async-save-{tag}",
        num_layers=args.layers,
        num_kv_heads=args.kv_heads,
        head_size=args.head_size,
        num_gpu_blocks=args.gpu_blocks,
    )
    extra = {"pegaflow.endpoint": args.endpoint, "pegaflow.max_blocks_per_save": args.max_blocks_per_save}
    if variant.startswith("async"):
        extra["pegaflow.max_saves_in_flight"] = int(variant[len("async") :])
    elif variant == "seq":
        extra["pegaflow.max_saves_in_flight"] = 1
    config = make_vllm_config(shape, f"bench-{tag}", extra)
    cache = SharedKVCache(shape.num_layers, shape.num_gpu_blocks, shape.block_size, shape.num_kv_heads, shape.head_size)
    connector = PegaKVConnector(config, FakeRole.WORKER, FakeKVCacheConfig(shape.num_gpu_blocks))
    try:
        connector.register_kv_caches({n: cache.layer(i) for i, n in enumerate(cache.layer_names)})
        if not connector.worker_side.link.wait_connected(30):
            raise RuntimeError("the worker did not register with the node")
        return _drive(args, connector, BlockTransfer, PegaConnectorMetadata, tag)
    finally:
        connector.shutdown()
        cache.close()
        cache.unlink()


def _drive(args, connector, BlockTransfer, PegaConnectorMetadata, tag: str) -> dict:
    free = deque(range(args.gpu_blocks))
    waiting: deque[str] = deque()  # requests to prefill (new, or preempted)
    running: dict[str, list[int]] = {}  # req id -> its blocks so far
    held: dict[str, tuple[float, list[int]]] = {}  # finished, waiting for finished_sending: (finish time, blocks)
    to_finish: list[str] = []  # finished in the last step: hold + finished ids go with this step
    step_s, fence_s, release_ms = [], [], []
    stalls = preemptions = 0
    forward = args.forward_ms / 1e3
    counter = 0

    def hashes(req_id: str, start: int, count: int) -> list[bytes]:
        return [hashlib.sha256(f"{tag}/{req_id}/{i}".encode()).digest() for i in range(start, start + count)]

    step = 0
    drain_deadline = None
    while True:
        if step < args.steps:
            waiting.append(f"r{counter}")
            counter += 1
        elif not held and not running and not waiting and not to_finish:
            break
        elif drain_deadline is None:
            drain_deadline = time.monotonic() + 60
        elif time.monotonic() > drain_deadline:
            raise RuntimeError(f"{len(held)} requests still held 60 s after the last step")
        # ---- the stand-in scheduler ----
        preempted = []
        if args.preempt_every and step % args.preempt_every == args.preempt_every - 1 and running:
            victim = next(reversed(running))
            free.extend(running.pop(victim))  # vLLM reuses the blocks in this very step
            waiting.appendleft(victim)
            preempted.append(victim)
            preemptions += 1
        budget = args.budget_blocks if step < args.steps or waiting or running else 0
        saves = []
        for req_id in list(running) + list(waiting):
            if budget <= 0:
                break
            blocks = running.get(req_id, [])
            want = min(budget, args.prompt_blocks - len(blocks))
            if len(free) < want:
                stalls += 1
                break
            new = [free.popleft() for _ in range(want)]
            if req_id not in running:
                waiting.remove(req_id)
            running[req_id] = blocks + new
            saves.append(BlockTransfer(req_id, new, hashes(req_id, len(blocks), want)))
            budget -= want
        finishing, to_finish = to_finish, [r for r, b in running.items() if len(b) == args.prompt_blocks]
        for req_id in to_finish:
            held[req_id] = (time.perf_counter(), running.pop(req_id))
        meta = PegaConnectorMetadata(saves=saves, preempted_req_ids=preempted, hold_req_ids=finishing)
        # ---- the worker's step, as vLLM's model runner calls it ----
        began = time.perf_counter()
        if preempted:
            connector.handle_preemptions(meta)
            fence_s.append(time.perf_counter() - began)
        connector.bind_connector_metadata(meta)
        connector.start_load_kv(None)
        in_connector = time.perf_counter() - began
        time.sleep(forward)
        began = time.perf_counter()
        connector.wait_for_save()
        sending, _ = connector.get_finished(set(finishing))
        connector.get_block_ids_with_load_errors()
        connector.clear_connector_metadata()
        in_connector += time.perf_counter() - began
        step_s.append(in_connector)
        now = time.perf_counter()
        for req_id in sending or ():
            finished_at, blocks = held.pop(req_id)
            free.extend(blocks)
            release_ms.append((now - finished_at) * 1e3)
        step += 1
    totals = connector.counters.totals()
    ms = np.asarray(step_s) * 1e3
    return {
        "steps": step,
        "requests": counter,
        "step_ms_mean": float(ms.mean()),
        "step_ms_p50": float(np.percentile(ms, 50)),
        "step_ms_p99": float(np.percentile(ms, 99)),
        "step_ms_max": float(ms.max()),
        "step_ms_sum": float(ms.sum()),
        "fence_ms_sum": float(sum(fence_s) * 1e3),
        "fence_ms_max": float(max(fence_s, default=0) * 1e3),
        "preemptions": preemptions,
        "release_ms_p50": float(np.percentile(release_ms, 50)) if release_ms else 0.0,
        "release_ms_p99": float(np.percentile(release_ms, 99)) if release_ms else 0.0,
        "alloc_stalls": stalls,
        "saved_blocks": int(totals.get("saved_blocks", 0)),
        "save_calls": int(totals.get("saves", 0)),
        "save_ms_mean": 1e3 * totals.get("save_seconds_sum", 0) / max(1, totals.get("saves", 0)),
        "dropped_blocks": int(totals.get("save_dropped_blocks", 0)),
        "queue_drops": int(totals.get("save_queue_drops", 0)),
        "save_failures": int(totals.get("save_failures", 0)),
        "in_flight_max": int(totals.get("save_in_flight_max", 1 if totals.get("saves") else 0)),
        "backpressure_waits": int(totals.get("save_backpressure_waits", 0)),
    }


# ---------------------------------------------------------------- the driver


def _child(args, variant: str, python_root: Path) -> dict:
    argv = [sys.executable, __file__, "--run-variant", variant, "--endpoint", args.endpoint]
    for key in (
        "steps",
        "forward_ms",
        "prompt_blocks",
        "budget_blocks",
        "preempt_every",
        "gpu_blocks",
        "layers",
        "kv_heads",
        "head_size",
        "max_blocks_per_save",
    ):
        argv += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    # pegaflow from python_root; pegaflow_testing (the stand-ins) from this checkout, whatever the variant.
    env = dict(os.environ, PYTHONPATH=f"{python_root}{os.pathsep}{ROOT / 'python'}", PYTHONUNBUFFERED="1")
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"variant {variant} failed:\n{done.stdout}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    args = _parser().parse_args()
    if args.run_variant:
        print(json.dumps(run_variant(args)))
        return 0
    sys.path.insert(0, str(ROOT / "python"))
    from pegaflow_testing.localnode import LocalNode

    variants = [(v, ROOT / "python") for v in args.variants.split(",") if v]
    if args.main_root:
        variants.insert(0, ("main", Path(args.main_root).resolve() / "python"))
    node = None if args.endpoint else LocalNode.start(pool_size=args.pool_size)
    args.endpoint = args.endpoint or node.endpoint
    load_start = Path("/proc/loadavg").read_text().strip()
    results = {}
    try:
        for variant, python_root in variants:
            results[variant] = _child(args, variant, python_root)
            print(variant, json.dumps(results[variant]), flush=True)
    finally:
        if node is not None:
            node.stop()
    load_end = Path("/proc/loadavg").read_text().strip()
    block_bytes = args.layers * 16 * args.kv_heads * 2 * args.head_size * 2
    lines = [
        "| variant | connector ms/step mean | p50 | p99 | max | fences ms (sum, max)"
        " | finish → finished_sending p50 / p99 ms | steps without a free block | blocks saved | Save calls"
        " | ms per Save | dropped | most in flight |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, r in results.items():
        lines.append(
            f"| {variant} | {r['step_ms_mean']:.3f} | {r['step_ms_p50']:.3f} | {r['step_ms_p99']:.3f}"
            f" | {r['step_ms_max']:.2f} | {r['fence_ms_sum']:.1f}, {r['fence_ms_max']:.1f}"
            f" | {r['release_ms_p50']:.1f} / {r['release_ms_p99']:.1f} | {r['alloc_stalls']} | {r['saved_blocks']}"
            f" | {r['save_calls']} | {r['save_ms_mean']:.2f} | {r['dropped_blocks']} | {r['in_flight_max']} |"
        )
    steps_taken = ", ".join(f"{v} {r['steps']}" for v, r in results.items())
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/python/async_save_steps.py", *sys.argv[1:]])
    summary = "\n".join(
        [
            f"- machine: {platform.node()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores;"
            f" load average {load_start} at start, {load_end} at end",
            f"- command: `{command}`",
            f"- workload: {args.steps} steps of {args.forward_ms} ms forward; a request of {args.prompt_blocks}"
            f" blocks ({block_bytes // 1024} KiB each: {args.layers} layers x {args.kv_heads} KV heads x"
            f" {args.head_size}, bf16) arrives every step, {args.budget_blocks} blocks prefilled per step,"
            f" Saves of at most {args.max_blocks_per_save} blocks, {args.gpu_blocks} GPU blocks, a preemption"
            f" every {args.preempt_every} steps; steps taken (with the drain): {steps_taken}",
            "",
            *lines,
        ]
    )
    print(summary)
    if args.out:
        Path(args.out).write_text(summary + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
