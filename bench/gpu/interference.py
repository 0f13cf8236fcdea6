#!/usr/bin/env python3
"""How much PegaFlow's copies slow a model running on the same GPU: a compute-bound bf16 matmul loop (standing for
decode's big matrix products) and a memory-bound one (decode's weight-streaming GEMV), timed while 10K-token saves
and loads run back to back, against the same loops with the node idle, per copy mode and kernel grid size.

Runnable on any NVIDIA GPU machine with torch and the pegaflow Python package (python/ on PYTHONPATH):

    python3 bench/gpu/interference.py --java /tmp/jre/bin/java --classpath "$CP" --seconds 2 --rounds 2 \
        --out /tmp/interference.md      # the default sweep (9 configs) takes about 3 minutes

What it does:
 1. Starts a "model" process: it loops forever on the GPU, each sample one compute-bound iteration (--mm-size square
    bf16 products, random data) and one memory-bound iteration (a 16-row bf16 GEMV over a weight matrix far larger
    than L2), each timed with CUDA events, and sends (monotonic time, compute ms, memory ms) samples back.
 2. For each config MODE:CTAS[:PRIORITY[:CHUNK_MIB]] (MODE staged, kernel, batch or memcpy: -Dpegaflow.cuda.mode;
    CTAS: -Dpegaflow.cuda.grid-ctas, the copy kernels' grid, i.e. their share of the SMs; PRIORITY low or default:
    -Dpegaflow.cuda.stream-priority; CHUNK_MIB: -Dpegaflow.cuda.staging-chunk-bytes, ramping up from 4 MiB; left
    out: the node's defaults) it starts `pegaflow node --devices 0`, registers a Llama-3.1-8B-shaped KV cache (32
    layers, 64 KiB blocks, CUDA IPC, like kv_ipc_e2e.py), times a few saves and loads alone (the model paused: the
    copy throughput on an otherwise idle GPU), then alternates idle
    phases (the node does nothing) and busy phases (Save of 625 blocks = 10K tokens under fresh hashes, then Load of
    625 saved blocks into other block ids, back to back) of --seconds each, --rounds times, and checks that the last
    load landed byte for byte.
 3. Slowdown = median model iteration time in busy phases / in idle phases of the same config - 1 (samples within
    50 ms of a phase change are dropped). Also the copies' GB/s under contention.
Prints a markdown table (also to --out) and a recommendation: the config that moves bytes fastest with both
slowdowns <= --limit (else the least harmful one), as the JVM options that select it.

Note: the node is another process, so its kernels and the model's are in different CUDA contexts: without MPS the
GPU time-slices between contexts, and the DMA engines run beside either. That is how vLLM and the node share a GPU.
So every copy kernel the node launches costs the model a context switch, whatever its grid: fewer, larger staging
chunks and zero-kernel modes (batch) are what should help there; a small grid and low stream priority matter where
the kernels do run side by side (MPS, or a copy engine inside the model's process).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

LAYERS, KV_HEADS, HEAD, BLOCK_SIZE = 32, 8, 128, 16
PAGE = BLOCK_SIZE * KV_HEADS * 2 * HEAD * 2  # 64 KiB: one block of one layer, bf16
EDGE_S = 0.05


# ---- the model process ----


def model_loop(device: int, mm_size: int, mm_reps: int, gemv_reps: int, conn, stop, pause) -> None:
    """Runs until ``stop`` is set, idles while ``pause`` is; sends (t_monotonic, compute_ms, memory_ms) lists."""
    import torch

    torch.cuda.set_device(device)
    gen = torch.Generator(device="cuda").manual_seed(7)
    a = torch.randn(mm_size, mm_size, device="cuda", dtype=torch.bfloat16, generator=gen)
    b = torch.randn(mm_size, mm_size, device="cuda", dtype=torch.bfloat16, generator=gen)
    c = torch.empty(mm_size, mm_size, device="cuda", dtype=torch.bfloat16)
    # Decode-like GEMV: 16 tokens x a 8192 x 28672 weight (448 MiB of bf16, ~9x the L2), read once per product.
    w = torch.randn(28672, 8192, device="cuda", dtype=torch.bfloat16, generator=gen)
    x = torch.randn(16, 8192, device="cuda", dtype=torch.bfloat16, generator=gen)
    y = torch.empty(16, 28672, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):  # cuBLAS set-up and clocks out of the samples
        torch.matmul(a, b, out=c)
        torch.matmul(x, w.t(), out=y)
    torch.cuda.synchronize()
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
    batch = []
    last_send = time.monotonic()
    conn.send(("ready", mm_size))
    while not stop.is_set():
        if pause.is_set():
            time.sleep(0.002)
            continue
        ev[0].record()
        for _ in range(mm_reps):
            torch.matmul(a, b, out=c)
        ev[1].record()
        ev[2].record()
        for _ in range(gemv_reps):
            torch.matmul(x, w.t(), out=y)
        ev[3].record()
        ev[3].synchronize()
        batch.append((time.monotonic(), ev[0].elapsed_time(ev[1]), ev[2].elapsed_time(ev[3])))
        if time.monotonic() - last_send > 0.5:
            conn.send(("samples", batch))
            batch = []
            last_send = time.monotonic()
    conn.send(("samples", batch))
    conn.send(("done", None))


# ---- the node ----


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_config(text: str):
    """MODE:CTAS[:PRIORITY[:CHUNK_MIB]] -> (label, JVM options)."""
    parts = text.split(":")
    mode = parts[0]
    if (
        mode not in ("staged", "kernel", "memcpy", "batch")
        or len(parts) < 2
        or not parts[1].isdigit()
        or len(parts) > 4
    ):
        raise SystemExit(
            f"--configs: {text!r} is not MODE:CTAS[:PRIORITY[:CHUNK_MIB]] (MODE staged, kernel, memcpy, batch)"
        )
    jvm = [f"-Dpegaflow.cuda.mode={mode}", f"-Dpegaflow.cuda.grid-ctas={int(parts[1])}"]
    if len(parts) > 2:
        if parts[2] not in ("low", "default"):
            raise SystemExit(f"--configs: {text!r}: PRIORITY is low or default")
        jvm.append(f"-Dpegaflow.cuda.stream-priority={parts[2]}")
    if len(parts) > 3:
        if not parts[3].isdigit() or int(parts[3]) < 1:
            raise SystemExit(f"--configs: {text!r}: CHUNK_MIB is a whole number of MiB")
        mib = int(parts[3])
        jvm.append(f"-Dpegaflow.cuda.staging-chunk-bytes={mib << 20}")
        jvm.append(f"-Dpegaflow.cuda.staging-first-chunk-bytes={min(mib, 4) << 20}")
    return text, jvm


def start_node(args, label: str, config_jvm: list, grpc_port: int, log_path: Path) -> subprocess.Popen:
    node_args = [
        "node",
        "--devices",
        str(args.device),
        "--pool-size",
        args.pool_size,
        "--addr",
        f"127.0.0.1:{grpc_port}",
        "--cluster-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
    ]
    jvm = [*config_jvm, *args.jvm_opt]
    if args.java:
        cmd = [
            args.java,
            "--enable-native-access=ALL-UNNAMED",
            "--sun-misc-unsafe-memory-access=allow",
            *jvm,
            "-cp",
            args.classpath,
            "io.pegaflow.fabric.cli.Main",
            *node_args,
        ]
        env = None
    else:
        cmd = [str(ROOT / "pegaflow"), *node_args]
        env = {**os.environ, "PEGAFLOW_JVM_OPTS": " ".join(jvm)}
    with open(log_path, "w") as log:
        return subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
            env=env,
        )


def wait_ready(endpoint: str, node: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    from pegaflow.client import FabricClient

    deadline = time.monotonic() + timeout_s
    with FabricClient(endpoint, timeout_s=2) as fabric:
        while time.monotonic() < deadline:
            if node.poll() is not None:
                raise RuntimeError(f"node exited with {node.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                fabric.health()
                return
            except Exception:  # noqa: BLE001 - not up yet: poll until the deadline
                time.sleep(0.2)
    raise RuntimeError(f"node not ready after {timeout_s} s:\n{log_path.read_text()[-3000:]}")


def stop_node(endpoint: str, node: subprocess.Popen) -> None:
    from pegaflow.client import FabricClient

    try:
        with FabricClient(endpoint, timeout_s=2) as fabric:
            fabric.shutdown(fabric.health().node_id, "interference bench done")
        node.wait(timeout=30)
    except Exception:  # noqa: BLE001 - a node that does not stop cleanly is killed
        node.kill()
        node.wait(timeout=10)


def block_hash(tag: str, i: int) -> bytes:
    return hashlib.sha256(f"{tag}/{i}".encode()).digest()


# ---- one config ----


def run_config(args, label: str, config_jvm: list, kv, phases: list, stats: dict, pause) -> None:
    import torch

    from pegaflow import cuda as pf_cuda
    from pegaflow.client import EngineClient
    from pegaflow.flag import LoadFlagFile, LoadState

    layers, pages, src_ids, dst_ids = kv
    n = len(src_ids)
    grpc_port = free_port()
    endpoint = f"127.0.0.1:{grpc_port}"
    log_path = Path(args.node_log_dir) / f"pegaflow-node-interference-{label.replace(':', '-')}.log"
    node = start_node(args, label, config_jvm, grpc_port, log_path)
    flags = LoadFlagFile(slots=2)
    client = None
    session = None
    try:
        wait_ready(endpoint, node, log_path, 180)
        uuid, registrations = pf_cuda.layer_registrations(layers)
        client = EngineClient(endpoint, timeout_s=60)
        reg = client.register_context("interference", "interference/tp1", 0, 1, 0, LAYERS, uuid, registrations)
        session = client.open_session(reg.context_id)
        ctx = reg.context_id
        slot = flags.slot(0)
        keep = [block_hash(f"keep-{label}", i) for i in range(n)]
        r = client.save(ctx, list(zip(src_ids, keep)))
        assert r.blocks_sealed == n, r
        client.query("interference/tp1", keep, lease_ttl_ms=600_000)  # the loaded blocks stay while saves evict
        reference = [pg[torch.tensor(src_ids, device="cuda")].clone() for pg in pages]
        torch.cuda.synchronize()

        def save_and_load(tag: int) -> None:
            hs = [block_hash(f"busy-{label}-{tag}", i) for i in range(n)]
            r = client.save(ctx, list(zip(src_ids, hs)))
            assert r.blocks_sealed + r.blocks_skipped == n, r
            slot.reset()
            resp = client.load(ctx, list(zip(dst_ids, keep)), slot)
            assert not resp.failed_block_ids, resp
            assert slot.wait(60) is LoadState.DONE

        save_and_load(-1)  # warm-up
        # The copies alone: the model paused (it finishes its current sample first), the GPU otherwise idle.
        pause.set()
        time.sleep(0.1)
        t0 = time.monotonic()
        for alone in range(args.alone_pairs):
            save_and_load(-2 - alone)
        alone_gbps = 2 * args.alone_pairs * n * LAYERS * PAGE / (time.monotonic() - t0) / 1e9
        pause.clear()
        pairs, busy_s, tag = 0, 0.0, 0
        for _ in range(args.rounds):
            t0 = time.monotonic()
            time.sleep(args.seconds)
            phases.append((label, "idle", t0, time.monotonic()))
            t0 = time.monotonic()
            while time.monotonic() - t0 < args.seconds:
                save_and_load(tag)
                tag += 1
                pairs += 1
            t1 = time.monotonic()
            phases.append((label, "busy", t0, t1))
            busy_s += t1 - t0
        dst_t = torch.tensor(dst_ids, device="cuda")
        exact = all(torch.equal(pg[dst_t], ref) for pg, ref in zip(pages, reference))
        nbytes = n * LAYERS * PAGE
        stats[label] = {
            "pairs": pairs,
            "gbps": 2 * pairs * nbytes / busy_s / 1e9,
            "alone_gbps": alone_gbps,
            "exact": exact,
        }
        print(
            f"{label}: alone {alone_gbps:.1f} GB/s; {pairs} save+load pairs in {busy_s:.1f} s busy, "
            f"byte-exact: {exact}",
            flush=True,
        )
    finally:
        if session is not None:
            session.close()
        if client is not None:
            client.close()
        flags.close()
        flags.unlink()
        stop_node(endpoint, node)


def summarize(samples: list, phases: list, label: str, which: int):
    """Median (ms) of model iterations in idle and busy phases of ``label``; ``which`` 1 = compute, 2 = memory."""

    def inside(kind):
        out = []
        for lab, k, t0, t1 in phases:
            if lab == label and k == kind:
                # a sample ends at s[0] and began (s[1] + s[2]) ms earlier: keep it only if it lies wholly inside
                out.extend(
                    s[which] for s in samples if t0 + EDGE_S <= s[0] - (s[1] + s[2]) / 1e3 and s[0] <= t1 - EDGE_S
                )
        return out

    idle, busy = inside("idle"), inside("busy")
    if not idle or not busy:
        return None
    busy_sorted = sorted(busy)
    p99 = busy_sorted[min(len(busy_sorted) - 1, int(0.99 * len(busy_sorted)))]
    return statistics.median(idle), statistics.median(busy), p99, len(idle), len(busy)


# The sweep: the node's defaults (staged, 32 CTAs, low priority, 64 MiB chunks), then one knob changed at a time, the
# most telling first (a --budget-s cut drops the tail): the old 16 MiB chunks, no kernels at all (batch), the grid
# small and full, the priority, the rest of the grids, and kernel mode (known to be the worst) last.
DEFAULT_CONFIGS = ",".join(
    [
        "staged:32:low:64",
        "staged:32:low:16",
        "batch:32",
        "staged:8:low:64",
        "staged:128:low:64",
        "staged:32:default:64",
        "staged:16:low:64",
        "staged:4:low:64",
        "kernel:32",
    ]
)


def recommend(rows: list, limit: float) -> list[str]:
    """The fastest config (copies while the model runs) within ``limit`` on both workloads, else the least harmful."""
    if not rows:
        return ["recommendation: none (no config completed byte-exact)"]
    within = [r for r in rows if r[2] <= limit and r[3] <= limit]
    if within:
        best = max(within, key=lambda r: r[4]["gbps"])
        head = f"recommendation: {best[0]}, the fastest config within {limit:.0f}% on both workloads"
    else:
        best = min(rows, key=lambda r: max(r[2], r[3]))
        head = (
            f"recommendation: {best[0]}, the least harmful config (no config kept both slowdowns within {limit:.0f}%)"
        )
    label, jvm, cs, ms, st = best
    return [
        f"{head}: compute {cs:+.1f}%, memory {ms:+.1f}%, copies {st['gbps']:.1f} GB/s while the model runs, "
        f"{st['alone_gbps']:.1f} GB/s alone",
        '  select it with PEGAFLOW_JVM_OPTS="'
        + " ".join(jvm)
        + '"'
        + (" (the node's defaults)" if label == "staged:32:low:64" else ""),
    ]


def main() -> int:
    started = time.monotonic()  # --budget-s counts from here: the model's and the KV cache's set-up included
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", type=int, default=0)
    p.add_argument(
        "--configs",
        default=DEFAULT_CONFIGS,
        help="MODE:CTAS[:PRIORITY[:CHUNK_MIB]],...",
    )
    p.add_argument("--seconds", type=float, default=2.0, help="length of each idle and busy phase")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument(
        "--alone-pairs",
        type=int,
        default=3,
        help="save+load pairs timed with the model paused",
    )
    p.add_argument("--limit", type=float, default=5.0, help="acceptable slowdown, percent")
    p.add_argument(
        "--budget-s", type=float, default=None, help="skip the configs that would end past this many seconds"
    )
    p.add_argument("--mm-size", type=int, default=8192)
    p.add_argument("--mm-reps", type=int, default=4)
    p.add_argument("--gemv-reps", type=int, default=20)
    p.add_argument("--blocks", type=int, default=2048, help="KV blocks per layer (>= 2 * 625)")
    p.add_argument(
        "--save-blocks",
        type=int,
        default=625,
        help="625 blocks of 16 tokens = 10K tokens",
    )
    p.add_argument("--pool-size", default="8gb")
    p.add_argument("--java", help="java binary; default: start the node with ./pegaflow")
    p.add_argument("--classpath", default="fabric/target/pegaflow-fabric.jar:fabric/target/lib/*")
    p.add_argument("--jvm-opt", action="append", default=[], help="extra node JVM option")
    p.add_argument("--node-log-dir", default="/tmp")
    p.add_argument("--out", help="also write the report here")
    args = p.parse_args()
    configs = [parse_config(c) for c in args.configs.split(",")]
    if args.blocks < 2 * args.save_blocks:
        raise SystemExit("--blocks must be at least 2 * --save-blocks")

    import torch

    torch.cuda.set_device(args.device)
    props = torch.cuda.get_device_properties(args.device)
    report: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        report.append(line)

    say(f"GPU {args.device}: {props.name}, {props.multi_processor_count} SMs, torch {torch.__version__}")

    # The KV cache (one allocation per layer, like vLLM), random bytes.
    nb, n = args.blocks, args.save_blocks
    layers, pages = {}, []
    for layer in range(LAYERS):
        raw = torch.empty(nb * PAGE, dtype=torch.uint8, device="cuda")
        raw.random_()
        phys = raw.view(torch.bfloat16).view(nb, BLOCK_SIZE, KV_HEADS, 2 * HEAD)
        layers[f"model.layers.{layer}.self_attn.attn"] = phys.permute(0, 2, 1, 3)
        pages.append(raw.view(nb, PAGE))
    perm = torch.randperm(nb, generator=torch.Generator().manual_seed(3)).tolist()
    kv = (layers, pages, perm[:n], perm[n : 2 * n])
    torch.cuda.synchronize()

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    pause = ctx.Event()
    model = ctx.Process(
        target=model_loop,
        args=(
            args.device,
            args.mm_size,
            args.mm_reps,
            args.gemv_reps,
            child,
            stop,
            pause,
        ),
        daemon=True,
    )
    model.start()
    if not parent.poll(120):
        raise SystemExit("the model process did not start within 120 s")
    parent.recv()
    samples: list = []
    finished = threading.Event()

    def drain() -> None:
        """Reads the model's samples as they come, so that its pipe never fills and stalls the loop."""
        try:
            while True:
                kind, payload = parent.recv()
                if kind == "samples":
                    samples.extend(payload)
                elif kind == "done":
                    break
        except (EOFError, OSError):
            pass
        finished.set()

    reader = threading.Thread(target=drain, name="model-samples", daemon=True)
    reader.start()

    phases: list = []
    stats: dict = {}
    failures = []
    notes = []
    try:
        longest = 0.0
        for index, (label, config_jvm) in enumerate(configs):
            elapsed = time.monotonic() - started
            if args.budget_s is not None and index > 0 and elapsed + 1.2 * longest > args.budget_s:
                skipped = [c[0] for c in configs[index:]]
                print(f"budget {args.budget_s:.0f} s: skipping {', '.join(skipped)}", flush=True)
                notes.append(f"SKIPPED for the time budget (--budget-s {args.budget_s:.0f}): {', '.join(skipped)}")
                break
            t_config = time.monotonic()
            try:
                run_config(args, label, config_jvm, kv, phases, stats, pause)
            except Exception as e:  # noqa: BLE001 - report the config as failed, go on with the others
                pause.clear()
                failures.append(f"{label}: {e}")
                print(f"{label} FAILED: {e}", flush=True)
            longest = max(longest, time.monotonic() - t_config)
    finally:
        stop.set()
        finished.wait(30)
        model.join(timeout=10)
        if model.is_alive():
            model.kill()

    say()
    say(
        "| config (mode:grid CTAs[:priority[:chunk MiB]]) | copies alone GB/s | compute idle ms | compute busy ms | "
        "compute slowdown | compute busy p99 | memory idle ms | memory busy ms | memory slowdown | "
        "copies GB/s while the model runs | byte-exact |"
    )
    say("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for label, config_jvm in configs:
        comp, mem = (
            summarize(samples, phases, label, 1),
            summarize(samples, phases, label, 2),
        )
        st = stats.get(label)
        if not comp or not mem or not st:
            say(f"| {label} | - | - | - | - | - | - | - | - | - | failed or no samples |")
            continue
        cs, ms = 100 * (comp[1] / comp[0] - 1), 100 * (mem[1] / mem[0] - 1)
        say(
            f"| {label} | {st['alone_gbps']:.1f} | {comp[0]:.2f} | {comp[1]:.2f} | {cs:+.1f}% | {comp[2]:.2f} | "
            f"{mem[0]:.2f} | {mem[1]:.2f} | {ms:+.1f}% | {st['gbps']:.1f} | {st['exact']} |"
        )
        if st["exact"]:
            rows.append((label, config_jvm, cs, ms, st))
    say()
    say(
        f"model sample: {args.mm_reps} x {args.mm_size}^3 bf16 products (compute) + {args.gemv_reps} x 16x8192x28672 "
        f"GEMV (memory); copies: Save {n} blocks then Load {n} blocks, {n * LAYERS * PAGE / 2**30:.2f} GiB each, "
        f"back to back; {args.rounds} rounds of {args.seconds:.0f} s idle / {args.seconds:.0f} s busy per config"
    )
    for line in recommend(rows, args.limit):
        say(line)
    for f in failures:
        say(f"FAILED {f}")
    for line in notes:
        say(line)
    ok = not failures and all(s["exact"] for s in stats.values())
    say(f"RESULT: {'PASS' if ok else 'FAIL'}")
    if args.out:
        Path(args.out).write_text("\n".join(report) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
