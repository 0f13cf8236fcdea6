#!/usr/bin/env python3
"""Soak: N worker processes save, query and load with byte checks against a pool that evicts constantly.

    .venv/bin/python bench/python/soak.py [--workers 4] [--duration-s 60] [--pool-size 32mb] [--blocks 8]
                                          [--universe 20000] [--hot 300] [--endpoint HOST:PORT]
                                          [--out bench/results/soak.md]

Without --endpoint it starts its own node (``./pegaflow node`` on free loopback ports, --pool-size) and stops it
afterwards. Every worker is a process of its own with its own shared-memory KV cache (4 layers, 64 blocks, 16 KiB
per layer per block), a registered context and a Session, all in one namespace, so workers hit each other's blocks.
The bytes of a block are a function of its hash (hash = blake2b(seed), bytes = a generator seeded by the seed and
the layer), so any worker can check any block it loads. One round of a worker:

1. picks ``--blocks`` consecutive seeds, half the time from a hot range of ``--hot`` seeds (hits), else from the
   whole ``--universe`` (misses, and new blocks that push others out of the pool);
2. writes their bytes into blocks 0..n-1 and Saves them;
3. Queries the same hashes with a 5 s lease;
4. Loads the hit prefix (with the lease) into blocks 32.., waits for the flag (Session.wait_for_load) and compares
   every loaded block with the bytes its hash stands for: a difference is a mismatch (must be 0).

Records ops/s, p50/p99 per RPC (Save, Query, Load reply, Load until the flag), errors by RPC and code, blocks
checked, mismatches, the node's RSS (VmRSS) before and after and its pool metrics; writes them, with the machine and
the command, as Markdown to --out. Not part of the test suite (it runs for --duration-s).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import platform
import shlex
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

NAMESPACE_PREFIX = "soak"
LAYERS, NUM_BLOCKS, BLOCK_SIZE, HEADS, HEAD = 4, 64, 16, 2, 128  # 16 KiB per layer per block (bf16, K and V)
LOAD_BASE = 32
LEASE_TTL_MS = 5000


def block_hash(seed: int) -> bytes:
    return hashlib.blake2b(seed.to_bytes(8, "little"), digest_size=32).digest()


def block_content(seed: int, layer: int, length: int) -> bytes:
    return np.random.default_rng([seed, layer]).bytes(length)


class Worker:
    """One worker process: its cache, context, session and flag; the run's counters."""

    def __init__(self, endpoint: str, namespace: str, index: int):
        from pegaflow.client import EngineClient
        from pegaflow.flag import LoadFlagFile
        from pegaflow.shm import HOST_DEVICE, SharedKVCache

        self.namespace = namespace
        self.cache = SharedKVCache(LAYERS, NUM_BLOCKS, BLOCK_SIZE, HEADS, HEAD)
        self.flags = LoadFlagFile(slots=1)
        self.engine = EngineClient(endpoint, timeout_s=20.0)
        regs = self.cache.layer_registrations()
        self.ranges = [
            [
                [
                    (r.region.shm.offset_bytes + b * r.block_stride_bytes + s.offset_bytes, s.length_bytes)
                    for s in r.segments
                ]
                for b in range(NUM_BLOCKS)
            ]
            for r in regs
        ]
        self.block_layer_bytes = sum(s.length_bytes for s in regs[0].segments)
        fd = os.open(self.cache.path, os.O_RDWR)
        try:
            import mmap

            self.file = mmap.mmap(fd, self.cache.size_bytes)
        finally:
            os.close(fd)
        self.context = self.engine.register_context(
            f"soak-{index}-{os.getpid()}", namespace, 0, 1, 0, LAYERS, HOST_DEVICE, regs
        ).context_id
        self.session = self.engine.open_session(self.context)
        self.latency_ns: dict[str, list[int]] = {"Save": [], "Query": [], "Load": [], "Load until flag": []}
        self.errors: Counter = Counter()
        self.rounds = 0
        self.checked = 0
        self.mismatches = 0
        self.failed_loads = 0

    def write(self, block_id: int, seed: int) -> None:
        for layer in range(LAYERS):
            content = block_content(seed, layer, self.block_layer_bytes)
            at = 0
            for start, length in self.ranges[layer][block_id]:
                self.file[start : start + length] = content[at : at + length]
                at += length

    def read(self, block_id: int, layer: int) -> bytes:
        return b"".join(self.file[start : start + length] for start, length in self.ranges[layer][block_id])

    def timed(self, rpc: str, call):
        from pegaflow.errors import EngineError

        start = time.perf_counter_ns()
        try:
            reply = call()
        except EngineError as e:
            self.errors[(rpc, e.code.name)] += 1
            return None
        self.latency_ns[rpc].append(time.perf_counter_ns() - start)
        return reply

    def round(self, rng: np.random.Generator, blocks: int, universe: int, hot: int) -> None:
        from pegaflow.flag import LoadState

        top = hot if rng.random() < 0.5 else universe
        first = int(rng.integers(0, max(1, top - blocks)))
        seeds = list(range(first, first + blocks))
        hashes = [block_hash(s) for s in seeds]
        for i, seed in enumerate(seeds):
            self.write(i, seed)
        self.timed("Save", lambda: self.engine.save(self.context, list(zip(range(blocks), hashes))))
        hits = self.timed("Query", lambda: self.engine.query(self.namespace, hashes, lease_ttl_ms=LEASE_TTL_MS))
        self.rounds += 1
        if hits is None or hits.hit_blocks == 0:
            if hits is not None and hits.lease_id:
                self.engine.release(hits.lease_id)
            return
        n = hits.hit_blocks
        slot = self.flags.slot(0)
        slot.reset()
        started = time.perf_counter_ns()
        refs = [(LOAD_BASE + i, hashes[i]) for i in range(n)]
        reply = self.timed("Load", lambda: self.engine.load(self.context, refs, slot, lease_id=hits.lease_id))
        if reply is None:
            return
        state = self.session.wait_for_load(slot, 20.0)
        self.latency_ns["Load until flag"].append(time.perf_counter_ns() - started)
        failed = set(reply.failed_block_ids)
        if state is not LoadState.DONE and not failed:
            self.failed_loads += 1
            return
        for i in range(n):
            if LOAD_BASE + i in failed:
                continue
            self.checked += 1
            for layer in range(LAYERS):
                if self.read(LOAD_BASE + i, layer) != block_content(seeds[i], layer, self.block_layer_bytes):
                    self.mismatches += 1
                    break

    def close(self) -> None:
        self.session.close()
        self.engine.close()
        self.file.close()
        self.cache.close()
        self.cache.unlink()
        self.flags.close()
        self.flags.unlink()


def run_worker(endpoint, namespace, index, duration_s, args, results):
    worker = Worker(endpoint, namespace, index)
    rng = np.random.default_rng(1000 + index)
    first = time.time()
    deadline = first + duration_s
    try:
        while time.time() < deadline:
            worker.round(rng, args["blocks"], args["universe"], args["hot"])
    finally:
        results.put(
            {
                "span": (first, time.time()),
                "latency_ns": worker.latency_ns,
                "errors": dict(worker.errors),
                "rounds": worker.rounds,
                "checked": worker.checked,
                "mismatches": worker.mismatches,
                "failed_loads": worker.failed_loads,
            }
        )
        worker.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def node_pid(endpoint_port: int) -> int | None:
    """The JVM listening on the port (for --endpoint runs on this machine), via ss."""
    try:
        out = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        if f":{endpoint_port} " in line and "pid=" in line:
            return int(line.split("pid=")[1].split(",")[0])
    return None


def pct(ns: list[int], q: float) -> float:
    return float(np.percentile(np.asarray(ns, dtype=np.float64), q)) / 1e6 if ns else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--pool-size", default="32mb")
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--universe", type=int, default=20_000)
    parser.add_argument("--hot", type=int, default=300)
    parser.add_argument("--endpoint")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "soak.md"))
    args = parser.parse_args(argv)

    from pegaflow_testing.localnode import LocalNode

    node = None
    if args.endpoint:
        endpoint = args.endpoint
        pid = node_pid(int(endpoint.rsplit(":", 1)[1]))
        node_desc = f"an existing node at {endpoint}"
    else:
        node = LocalNode.start(pool_size=args.pool_size)
        endpoint, pid = node.endpoint, node.process.pid
        node_desc = f"started by the script (./pegaflow node, {args.pool_size} pool, host copy engine)"
    load_start = Path("/proc/loadavg").read_text().strip()
    namespace = f"{NAMESPACE_PREFIX}-{os.getpid()}"
    try:
        rss_before = rss_kib(pid) if pid else -1
        metrics_before = node.scrape() if node else None
        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        params = {"blocks": args.blocks, "universe": args.universe, "hot": args.hot}
        procs = [
            ctx.Process(target=run_worker, args=(endpoint, namespace, i, args.duration_s, params, results))
            for i in range(args.workers)
        ]
        for p in procs:
            p.start()
        collected = [results.get(timeout=args.duration_s + 120) for _ in procs]
        for p in procs:
            p.join(30)
        time.sleep(1.5)  # the node's 1 s metric sampling
        rss_after = rss_kib(pid) if pid else -1
        metrics_after = node.fresh_metrics() if node else None
    finally:
        if node is not None:
            node.stop()
    load_end = Path("/proc/loadavg").read_text().strip()

    latency: dict[str, list[int]] = {}
    errors: Counter = Counter()
    for r in collected:
        for rpc, samples in r["latency_ns"].items():
            latency.setdefault(rpc, []).extend(samples)
        for key, n in r["errors"].items():
            errors[key] += n
    # Each worker's rate over its own span (it starts after its spawn and imports), summed.
    spans = [max(r["span"][1] - r["span"][0], 1e-3) for r in collected]
    elapsed = sum(spans) / len(spans)
    rounds_per_s = sum(r["rounds"] / span for r, span in zip(collected, spans))
    rounds = sum(r["rounds"] for r in collected)
    checked = sum(r["checked"] for r in collected)
    mismatches = sum(r["mismatches"] for r in collected)
    failed_loads = sum(r["failed_loads"] for r in collected)
    rpcs = sum(len(latency.get(k, [])) for k in ("Save", "Query", "Load")) + sum(errors.values())

    lines = [
        "# Soak: save / query / load with byte checks against a constantly evicting pool",
        "",
        f"Produced by `bench/python/soak.py` on {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}.",
        "",
        "## Machine",
        "",
        f"- {platform.machine()}, nproc {os.cpu_count()}: the shared 2-core VM (other helpers' builds and tests ran at",
        "  the same time; the load average says how busy it was). Workers, node and client share the 2 cores.",
        f"- os: {platform.platform()}",
        f"- python: {platform.python_version()}",
        f"- load average at start: {load_start}",
        f"- load average at end: {load_end}",
        "",
        "## Command",
        "",
        "    " + shlex.join(["python3", "bench/python/soak.py", *(argv if argv is not None else sys.argv[1:])]),
        "",
        f"Node: {node_desc}. {args.workers} worker processes, {args.duration_s:.0f} s, {args.blocks} blocks per round, "
        f"{LAYERS} layers x 16 KiB per block ({LAYERS * 16} KiB per block in the pool), seeds from a hot range of "
        f"{args.hot} or a universe of {args.universe} (half each), leases of {LEASE_TTL_MS} ms.",
        "",
        "## Results",
        "",
        f"- rounds (Save + Query + Load + flag wait + check): {rounds} in {elapsed:.1f} s per worker: "
        f"{rounds_per_s:.1f} rounds/s, {rounds_per_s * rpcs / max(rounds, 1):.1f} RPCs/s",
        f"- blocks loaded and byte-checked: {checked}; mismatches: **{mismatches}**",
        f"- loads whose flag did not say DONE (without failed blocks in the reply): {failed_loads}",
        f"- errors by RPC and code: {dict(errors) if errors else 'none'}",
        f"- node RSS: {rss_before / 1024:.0f} MiB before, {rss_after / 1024:.0f} MiB after",
    ]
    if metrics_before is not None and metrics_after is not None:

        def delta(name):
            return metrics_after.value(name, default=0.0) - metrics_before.value(name, default=0.0)

        lines.append(
            f"- pool: {delta('pegaflow_block_insertions_total'):.0f} insertions, "
            f"{delta('pegaflow_block_evictions_total'):.0f} evictions during the run; "
            f"{metrics_after.value('pegaflow_store_blocks', default=0.0, state='sealed'):.0f} sealed blocks at the end"
        )

        def mib(metrics, name, **labels):
            return metrics.value(name, default=0.0, **labels) / 2**20

        lines.append(
            f"- JVM heap in use: {mib(metrics_before, 'pegaflow_jvm_memory_used_bytes', area='heap'):.0f} MiB before, "
            f"{mib(metrics_after, 'pegaflow_jvm_memory_used_bytes', area='heap'):.0f} MiB after (limit "
            f"{mib(metrics_after, 'pegaflow_jvm_memory_max_bytes', area='heap'):.0f} MiB); threads "
            f"{metrics_before.value('pegaflow_jvm_threads', default=0.0):.0f} before, "
            f"{metrics_after.value('pegaflow_jvm_threads', default=0.0):.0f} after; contexts registered after the "
            f"workers closed their sessions: {metrics_after.value('pegaflow_engine_contexts', default=0.0):.0f}, "
            f"leases active: {metrics_after.value('pegaflow_leases_active', default=0.0):.0f}"
        )
    lines += [
        "",
        "| RPC | n | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for rpc in ("Save", "Query", "Load", "Load until flag"):
        ns = latency.get(rpc, [])
        worst = max(ns) / 1e6 if ns else float("nan")
        lines.append(f"| {rpc} | {len(ns)} | {pct(ns, 50):.2f} | {pct(ns, 99):.2f} | {worst:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)
    return 0 if mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
