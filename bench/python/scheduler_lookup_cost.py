#!/usr/bin/env python3
"""Scheduler-side lookup cost per step with many waiting requests that miss, against a real node.

    .venv/bin/python bench/python/scheduler_lookup_cost.py [--endpoint HOST:PORT] [--waiting 256] [--steps 300]
                                                           [--prompt-tokens 1024] [--python-root DIR] [--out FILE]

vLLM asks the connector about every waiting request it tries to schedule, in every step the request stays waiting
(``get_num_new_matched_tokens``), then calls ``build_connector_meta``. This drives a scheduler-role
``PegaKVConnector`` that way: ``--waiting`` requests with distinct prompts (nothing of them in the pool), each asked
about once per step for ``--steps`` steps, and times each step with ``time.perf_counter`` (the connector's part of
a scheduler step only; a model step takes tens of milliseconds). Without --endpoint it starts its own node.
``--python-root`` imports ``pegaflow`` from another checkout's python/ (to measure an older connector).
Prints a summary and writes it (machine, command, numbers) as Markdown to --out.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", help="a running node's gRPC address (default: start one)")
    parser.add_argument("--waiting", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--prompt-tokens", type=int, default=1024)
    parser.add_argument("--python-root", default=str(ROOT / "python"), help="where pegaflow is imported from")
    parser.add_argument("--out", help="write the Markdown summary here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "python"))  # pegaflow_testing (the node launcher, the vLLM-shaped stand-ins)
    sys.path.insert(0, args.python_root)

    from pegaflow.vllm.connector import PegaKVConnector
    from pegaflow_testing.fake_vllm import (
        FakeCachedRequestData,
        FakeKVCacheConfig,
        FakeRequest,
        FakeRole,
        FakeSchedulerOutput,
        ModelShape,
        make_vllm_config,
        prompt,
    )
    from pegaflow_testing.localnode import LocalNode

    node = None if args.endpoint else LocalNode.start(pool_size="64mb")
    endpoint = args.endpoint or node.endpoint
    shape = ModelShape(model=f"bench/lookup-cost-{time.time_ns()}", num_gpu_blocks=4096)
    config = make_vllm_config(shape, "bench-engine", {"pegaflow.endpoint": endpoint})
    connector = PegaKVConnector(config, FakeRole.SCHEDULER, FakeKVCacheConfig(shape.num_gpu_blocks))
    empty = FakeSchedulerOutput([], FakeCachedRequestData([], set(), [], {}, [], [], []), {}, 0, set())
    try:
        waiting = [
            FakeRequest(f"w{i}", prompt(1000 + i, args.prompt_tokens), 1, shape.block_size) for i in range(args.waiting)
        ]
        step_s = []
        load_start = Path("/proc/loadavg").read_text().strip()
        for _ in range(args.steps):
            started = time.perf_counter()
            for request in waiting:  # (None, False): this step's Query budget was spent, asked next step
                assert connector.get_num_new_matched_tokens(request, 0) in ((0, False), (None, False))
            connector.build_connector_meta(empty)
            step_s.append(time.perf_counter() - started)
        totals = connector.counters.totals()
        load_end = Path("/proc/loadavg").read_text().strip()
    finally:
        connector.shutdown()
        if node is not None:
            node.stop()

    ms = np.asarray(step_s) * 1e3
    later = ms[len(ms) // 2 :]
    queries = int(totals.get("lookups", 0))
    rows = [
        ("every step", ms),
        ("first step (first lookups, up to the per-step budget)", ms[:1]),
        (f"steps {len(ms) // 2 + 1}-{len(ms)}", later),
    ]
    lines = [
        "# Scheduler-side lookup cost per step, waiting requests that miss",
        "",
        "Produced by `bench/python/scheduler_lookup_cost.py` on"
        f" {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}.",
        "",
        "## Machine and command",
        "",
        f"- cpu: {platform.processor() or platform.machine()}, nproc {len(__import__('os').sched_getaffinity(0))}",
        f"- os: {platform.platform()}; python {platform.python_version()}",
        f"- load average at start: {load_start}; at end: {load_end}",
        f"- pegaflow imported from: {args.python_root}",
        "",
        "    " + shlex.join([sys.executable, *sys.argv]),
        "",
        f"{args.waiting} waiting requests of {args.prompt_tokens} tokens (distinct prompts, none in the pool), each"
        f" asked about once per step for {args.steps} steps, then build_connector_meta; node "
        f"{'started by the script (64 MiB pool)' if node else endpoint}, loopback.",
        "",
        "| steps | n | p50 ms | p90 ms | p99 ms | max ms | mean ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, values in rows:
        lines.append(
            f"| {name} | {len(values)} | {np.percentile(values, 50):.3f} | {np.percentile(values, 90):.3f}"
            f" | {np.percentile(values, 99):.3f} | {values.max():.3f} | {values.mean():.3f} |"
        )
    lines += [
        "",
        f"Queries sent: {queries} for {args.waiting} requests over {args.steps} steps"
        f" ({queries / args.waiting:.1f} per request); answered from a remembered miss:"
        f" {int(totals.get('lookup_miss_remembered', 0))}; deferred by the per-step Query budget:"
        f" {int(totals.get('lookup_deferred', 0))}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
