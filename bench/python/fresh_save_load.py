#!/usr/bin/env python3
"""The control path of a save of NEW blocks and of a load, over the same-host command channel: what the client sees
beyond the copy, split into the node's phases, with the CPU each side spends per call.

    python3 bench/python/fresh_save_load.py [--blocks 625] [--iterations 300] [--warmup 100] [--pool-size 8mb]
        [--jvm-opt=-XX:StartFlightRecording=filename=/tmp/n.jfr,settings=profile] [--out FILE]

It starts a node as a plain JVM (the reactor's jar and lib/, host copy engine, a small pool so that it fills and
every save evicts, like the H200 run whose 16 GiB pool was full after a few saves), registers a host stand-in of a
vLLM KV cache (a shared-memory file of 32 layers with 32-byte blocks: a 625-block copy is 625 KiB, so what is timed
is the control path) and opens the command channel. Then, round-robin in one loop, timed with
``time.perf_counter_ns`` around each call:

- ``save new``: a Save of ``--blocks`` blocks under hashes never saved before (sha256 of a counter, computed before
  the timer), so the node reserves (evicting once the pool is full), copies and seals each call;
- ``load, reply_when_done``: a Load of the blocks the last save stored, to the end the client sees (one call);
- ``load, flag + futex``: the same with a load flag, waited for with FUTEX_WAIT;
- ``save sealed``: a Save of blocks sealed already (the node's fast path, nothing copied), for reference.

The node's phases (``pegaflow_save_phase_seconds`` / ``pegaflow_load_phase_seconds``) and its per-call time on the
channel (``pegaflow_engine_call_duration_seconds{path="shm"}``) are read from its metrics before and after each
kind's own loop of ``--node-calls`` calls (Kamon ticks once a second: the loops wait around it), as means per call;
the node's CPU (each thread's ``/proc/PID/task/TID/schedstat``, also reported by thread) and the client's
(``time.process_time``) over the same loops give CPU per call.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from control_path import JavaNode, register_host_cache, stats_us, tiny_host_cache  # noqa: E402 - after sys.path

from pegaflow import channel as channel_module  # noqa: E402 - after sys.path
from pegaflow.client import EngineClient  # noqa: E402 - after sys.path
from pegaflow.flag import LoadFlagFile, LoadState  # noqa: E402 - after sys.path

LAYERS = 32
NAMESPACE = "fresh-save-load/bench"
SAVE_PHASES = ("queue", "reserve", "copy", "seal", "reply")
LOAD_PHASES = ("pin", "queue", "copy", "commit", "reply")


class Worker:
    """One registered host KV cache with a command channel, and the calls this benchmark times."""

    def __init__(self, endpoint: str, blocks: int):
        self.blocks = blocks
        self.cache = tiny_host_cache(blocks)
        self.client = EngineClient(endpoint, timeout_s=30, command_channel=True)
        self.ctx = register_host_cache(self.client, "fresh-bench", NAMESPACE, self.cache)
        self.session = self.client.open_session(self.ctx)
        if channel_module.lookup(endpoint, self.ctx) is None:
            raise RuntimeError("the node opened no command channel for this context")
        self.flags = LoadFlagFile(slots=2)
        self.slot = self.flags.slot(0)
        self.src = list(range(blocks))
        self.dst = list(range(blocks, 2 * blocks))
        self.cache.fill_random(self.src, seed=1)
        self.counter = 0
        self.last_saved: list[bytes] = []
        self.sealed = self.next_hashes()
        self.save(self.sealed)

    def next_hashes(self) -> list[bytes]:
        base = self.counter
        self.counter += self.blocks
        return [hashlib.sha256(b"fresh/%d" % i).digest() for i in range(base, base + self.blocks)]

    def save(self, hashes: list[bytes]):
        reply = self.client.save(self.ctx, list(zip(self.src, hashes)))
        assert self.client.last_path == "shm", self.client.last_path
        return reply

    def save_new(self, hashes: list[bytes]) -> None:
        reply = self.save(hashes)
        assert reply.blocks_stored == self.blocks and reply.blocks_sealed == self.blocks, reply
        self.last_saved = hashes

    def save_sealed(self) -> None:
        reply = self.save(self.sealed)
        assert reply.blocks_skipped == self.blocks, reply

    def load_reply_when_done(self) -> None:
        reply = self.client.load(self.ctx, list(zip(self.dst, self.last_saved)), reply_when_done=True)
        assert self.client.last_path == "shm", self.client.last_path
        assert reply.done_state == 1 and reply.blocks_loaded == self.blocks, reply

    def load_flag(self) -> None:
        self.slot.reset()
        reply = self.client.load(self.ctx, list(zip(self.dst, self.last_saved)), self.slot)
        assert self.client.last_path == "shm" and not reply.failed_block_ids, reply
        assert self.slot.wait(30, strategy="futex") is LoadState.DONE

    def close(self) -> None:
        self.session.close()
        self.client.close()
        self.flags.close()
        self.flags.unlink()
        self.cache.close()
        self.cache.unlink()


class CacheFlush:
    """Writes one byte per 64-byte line of a buffer larger than the last-level cache: what the node's threads had
    cached is gone by the next call (as after a GPU copy of a GiB). Nothing when ``mb`` is 0."""

    def __init__(self, mb: int):
        self.buf = np.zeros(mb << 20, dtype=np.uint8) if mb else None
        self.k = 0

    def __call__(self) -> None:
        if self.buf is not None:
            self.k = (self.k + 1) & 0xFF
            self.buf[::64] = self.k


def scrape(url: str) -> dict[str, float]:
    """The node's histogram sums and counts (and counters) this report reads, by a short key."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^pegaflow_(save|load)_phase_seconds_bucket\{(.*)\}\s+(\S+)$", line)
        if m:
            phase = re.search(r'phase="([^"]+)"', m.group(2)).group(1)
            le = re.search(r'le="([^"]+)"', m.group(2)).group(1)
            out[f"{m.group(1)}.{phase}.le.{le}"] = float(m.group(3))
            continue
        m = re.match(
            r"^(pegaflow_(?:save|load)_phase_seconds)_(sum|count)\{(.*)\}\s+(\S+)$",
            line,
        )
        if m:
            phase = re.search(r'phase="([^"]+)"', m.group(3)).group(1)
            out[f"{m.group(1).split('_')[1]}.{phase}.{m.group(2)}"] = float(m.group(4))
            continue
        m = re.match(r"^pegaflow_engine_call_duration_seconds_bucket\{(.*)\}\s+(\S+)$", line)
        if m and 'path="shm"' in m.group(1):
            op = re.search(r'op="([^"]+)"', m.group(1)).group(1)
            le = re.search(r'le="([^"]+)"', m.group(1)).group(1)
            out[f"call.{op}.le.{le}"] = float(m.group(2))
            continue
        m = re.match(r"^pegaflow_engine_call_duration_seconds_(sum|count)\{(.*)\}\s+(\S+)$", line)
        if m and 'path="shm"' in m.group(2):
            op = re.search(r'op="([^"]+)"', m.group(2)).group(1)
            out[f"call.{op}.{m.group(1)}"] = float(m.group(3))
            continue
        m = re.match(r"^pegaflow_block_evictions_total(?:\{.*\})?\s+(\S+)$", line)
        if m:
            out["evictions"] = out.get("evictions", 0.0) + float(m.group(1))
    return out


def bucket_median_us(before: dict[str, float], after: dict[str, float], key: str) -> float:
    """The median of one phase over a loop, from the histogram's cumulative buckets (linear inside the bucket that
    holds it: coarse, 50/100/250/500/1000 us bounds, but not moved by a few descheduled calls as a mean is)."""
    bounds = sorted(
        (float(k.rsplit(".le.", 1)[1]), after[k] - before.get(k, 0.0))
        for k in after
        if k.startswith(key + ".le.") and not k.endswith("+Inf")
    )
    total = after.get(key + ".count", 0) - before.get(key + ".count", 0)
    if not total:
        return float("nan")
    low, below = 0.0, 0.0
    for le, cumulative in bounds:
        if cumulative >= total / 2:
            inside = cumulative - below
            return (low + (le - low) * ((total / 2 - below) / inside if inside else 1.0)) * 1e6
        low, below = le, cumulative
    return float("inf")


JFR_EVENTS = (
    "jdk.ExecutionSample#period=1ms",
    "jdk.JavaMonitorEnter#threshold=0ms",
    "jdk.ThreadPark#threshold=0ms",
)


def jcmd(args, node: JavaNode, *command: str) -> None:
    tool = os.path.join(os.path.dirname(args.java), "jcmd")
    subprocess.run(
        [tool, str(node.process.pid), *command],
        check=True,
        capture_output=True,
        timeout=60,
    )


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds by thread group (the thread's name, digits dropped: 'pegaflow-copy-', 'GC Thread#'...), from
    each thread's schedstat (nanoseconds on a CPU; /proc's stat counts 10 ms ticks)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            on_cpu_ns = int((task / "schedstat").read_text().split()[0])
        except OSError:
            continue  # the thread ended
        group = re.sub(r"[0-9]+$", "", name)
        out[group] = out.get(group, 0.0) + on_cpu_ns / 1e9
    return out


def node_side(node: JavaNode, worker: Worker, kind: str, call, n: int, flush: CacheFlush) -> dict[str, float]:
    """Means per call of the node's phases and CPU, and the client's CPU, over ``n`` calls of one kind."""
    time.sleep(1.5)
    before = scrape(node.metrics_url)
    threads0 = thread_cpu_s(node.process.pid)
    ccpu0, wall0 = time.process_time(), time.perf_counter()
    flush_wall = flush_cpu = 0.0
    for _ in range(n):
        f0, fc0 = time.perf_counter(), time.process_time()
        flush()
        flush_wall += time.perf_counter() - f0
        flush_cpu += time.process_time() - fc0
        call()
    ccpu1, wall1 = time.process_time(), time.perf_counter()
    threads1 = thread_cpu_s(node.process.pid)
    time.sleep(1.5)
    after = scrape(node.metrics_url)
    op, phases = ("save", SAVE_PHASES) if kind.startswith("save") else ("load", LOAD_PHASES)
    row: dict[str, float] = {}
    for phase in phases:
        key = f"{op}.{phase}"
        count = after.get(key + ".count", 0) - before.get(key + ".count", 0)
        total = after.get(key + ".sum", 0) - before.get(key + ".sum", 0)
        row[phase] = total / count * 1e6 if count else float("nan")
        row[phase + ".p50"] = bucket_median_us(before, after, key)
        row[phase + ".n"] = count
    cop = "Save" if op == "save" else "Load"
    count = after.get(f"call.{cop}.count", 0) - before.get(f"call.{cop}.count", 0)
    total = after.get(f"call.{cop}.sum", 0) - before.get(f"call.{cop}.sum", 0)
    row["channel"] = total / count * 1e6 if count else float("nan")
    row["channel.p50"] = bucket_median_us(before, after, f"call.{cop}")
    row["node_cpu"] = (sum(threads1.values()) - sum(threads0.values())) / n * 1e6
    row["client_cpu"] = (ccpu1 - ccpu0 - flush_cpu) / n * 1e6
    row["wall"] = (wall1 - wall0 - flush_wall) / n * 1e6
    by_thread = {g: (t - threads0.get(g, 0.0)) / n * 1e6 for g, t in threads1.items()}
    row["threads"] = {g: us for g, us in sorted(by_thread.items(), key=lambda kv: -kv[1]) if us >= 5}
    row["evictions"] = (after.get("evictions", 0) - before.get("evictions", 0)) / n
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--blocks", type=int, default=625)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument(
        "--node-calls",
        type=int,
        default=200,
        help="calls per kind for the node-side means",
    )
    p.add_argument(
        "--pool-size",
        default="8mb",
        help="small, so the pool fills and every save evicts",
    )
    p.add_argument(
        "--java",
        default=os.path.join(os.environ.get("JAVA_HOME", "/usr"), "bin", "java"),
    )
    p.add_argument("--classpath", default="fabric/target/pegaflow-fabric.jar:fabric/target/lib/*")
    p.add_argument(
        "--jvm-opt",
        action="append",
        default=[],
        help="a JVM flag for the node (repeatable)",
    )
    p.add_argument(
        "--jfr",
        help="record the node with JFR (jcmd; profile settings, 1 ms samples, lock and park events) over the timed "
        "rounds only, into this file",
    )
    p.add_argument(
        "--flush-mb",
        type=int,
        default=0,
        help="before each call (untimed) write one byte per cache line of this many MB, so the node meets cold "
        "caches as after a GPU copy (a save's DMA writes through the host's last-level cache); 0: off",
    )
    p.add_argument("--node-log", default="/tmp/pegaflow-node-fresh-save-load.log")
    p.add_argument(
        "--label",
        default="",
        help="a name for this run in the report (e.g. before / after)",
    )
    p.add_argument("--out", help="also write the report here")
    args = p.parse_args()

    node = JavaNode(args.java, args.classpath, Path(args.node_log), args.pool_size, args.jvm_opt)
    worker = None
    try:
        worker = Worker(node.endpoint, args.blocks)
        w = worker
        series = {
            "save new (reserve + evict, copy, seal)": "save_new",
            "load, reply_when_done": w.load_reply_when_done,
            "load, flag + futex wait": w.load_flag,
            "save sealed (nothing to copy)": w.save_sealed,
        }
        samples: dict[str, list[int]] = {name: [] for name in series}
        flush = CacheFlush(args.flush_mb)
        clock = time.perf_counter_ns
        for it in range(args.warmup + args.iterations):
            for name, call in series.items():
                if call == "save_new":
                    hashes = w.next_hashes()
                    flush()
                    start = clock()
                    w.save_new(hashes)
                else:
                    flush()
                    start = clock()
                    call()
                if it >= args.warmup:
                    samples[name].append(clock() - start)
            if args.jfr and it == args.warmup - 1:
                jcmd(
                    args,
                    node,
                    "JFR.start",
                    "name=fresh",
                    "settings=profile",
                    *JFR_EVENTS,
                    f"filename={args.jfr}",
                )
        if args.jfr:
            jcmd(args, node, "JFR.stop", "name=fresh")

        fresh = [w.next_hashes() for _ in range(args.node_calls)]  # before the loop: its sha256s are no call's

        def save_new_call():
            w.save_new(fresh.pop())

        sides = {
            "save new": node_side(node, w, "save", save_new_call, args.node_calls, flush),
            "load, reply_when_done": node_side(node, w, "load", w.load_reply_when_done, args.node_calls, flush),
            "load, flag + futex": node_side(node, w, "load", w.load_flag, args.node_calls, flush),
        }
        load_avg = os.getloadavg()
    finally:
        if worker is not None:
            worker.close()
        node.stop()

    lines = report(args, {k: stats_us(v) for k, v in samples.items()}, sides, load_avg)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


def report(args, stats, sides, load_avg) -> list[str]:
    label = f" ({args.label})" if args.label else ""
    lines = [
        f"### Fresh saves and loads over the command channel{label}",
        "",
        (
            f"`bench/python/fresh_save_load.py`, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}; "
            f"load average at the end {load_avg[0]:.2f} {load_avg[1]:.2f} {load_avg[2]:.2f}."
        ),
        "",
        "    " + shlex.join(["python3", "bench/python/fresh_save_load.py", *sys.argv[1:]]),
        "",
        (
            f"{args.blocks} blocks of {LAYERS} layers x 32 bytes per call, pool {args.pool_size}; {args.iterations} "
            f"rounds after {args.warmup} warm-up rounds, every row once per round; "
            ""
            f"caches flushed before each call: {f'{args.flush_mb} MB written' if args.flush_mb else 'no'}."
        ),
        "",
        "| client-visible (µs) | n | p50 | p90 | p99 | mean |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in stats.items():
        lines.append(f"| {name} | {s['n']} | {s['p50']:.0f} | {s['p90']:.0f} | {s['p99']:.0f} | {s['mean']:.0f} |")
    lines += [
        "",
        (
            f"Node side, means per call over {args.node_calls} calls of one kind (µs; `channel` = the node's time "
            "from taking the slot to writing DONE; `outside` = the loop's wall time per call minus `channel`; each "
            "phase's mean, and in brackets its median from the histogram's buckets):"
        ),
        "",
        "| kind | phases | channel | outside | node CPU | client CPU | evictions/call |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for kind, row in sides.items():
        names = SAVE_PHASES if kind.startswith("save") else LOAD_PHASES
        phases = ", ".join(f"{ph} {row[ph]:.0f} ({row[ph + '.p50']:.0f})" for ph in names if row.get(ph + ".n"))
        lines.append(
            f"| {kind} | {phases} | {row['channel']:.0f} ({row['channel.p50']:.0f}) | "
            f"{row['wall'] - row['channel']:.0f} | "
            f"{row['node_cpu']:.0f} | {row['client_cpu']:.0f} | {row['evictions']:.0f} |"
        )
    lines += [
        "",
        "Node CPU per call by thread (µs, /proc/PID/task; names as the kernel keeps them, digits dropped):",
        "",
    ]
    for kind, row in sides.items():
        parts = ", ".join(f"{g} {us:.0f}" for g, us in row["threads"].items())
        lines.append(f"- {kind}: {parts}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
