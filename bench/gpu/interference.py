#!/usr/bin/env python3
"""How much PegaFlow's copies slow a model running on the same GPU: a compute-bound bf16 matmul loop (standing for
decode's big matrix products) and a memory-bound one (decode's weight-streaming GEMV), timed while 10K-token saves
and loads run back to back, against the same loops with the node idle, per copy mode and kernel grid size.

Runnable on any NVIDIA GPU machine with torch and the pegaflow Python package (python/ on PYTHONPATH):

    python3 bench/gpu/interference.py --java /tmp/jre/bin/java --classpath "$CP" \
        --configs staged:32,staged:8,kernel:32,kernel:8 --seconds 5 --rounds 3 --out /tmp/interference.md

What it does:
 1. Starts a "model" process: it loops forever on the GPU, each sample one compute-bound iteration (--mm-size square
    bf16 products, random data) and one memory-bound iteration (a 16-row bf16 GEMV over a weight matrix far larger
    than L2), each timed with CUDA events, and sends (monotonic time, compute ms, memory ms) samples back.
 2. For each config MODE:CTAS (MODE staged or kernel: -Dpegaflow.cuda.mode; CTAS: -Dpegaflow.cuda.grid-ctas, the
    copy kernels' grid, i.e. their share of the SMs) it starts `pegaflow node --devices 0`, registers a
    Llama-3.1-8B-shaped KV cache (32 layers, 64 KiB blocks, CUDA IPC, like kv_ipc_e2e.py), then alternates idle
    phases (the node does nothing) and busy phases (Save of 625 blocks = 10K tokens under fresh hashes, then Load of
    625 saved blocks into other block ids, back to back) of --seconds each, --rounds times, and checks that the last
    load landed byte for byte.
 3. Slowdown = median model iteration time in busy phases / in idle phases of the same config - 1 (samples within
    50 ms of a phase change are dropped). Also the copies' GB/s under contention.
Prints a markdown table (also to --out) and names the config that moves bytes fastest with both slowdowns <= --limit.

Note: the node is another process, so its kernels and the model's are in different CUDA contexts: without MPS the
GPU time-slices between contexts, and the DMA engines run beside either. That is how vLLM and the node share a GPU.
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


def model_loop(device: int, mm_size: int, mm_reps: int, gemv_reps: int, conn, stop) -> None:
    """Runs until ``stop`` is set; sends lists of (t_monotonic, compute_ms, memory_ms) every ~0.5 s."""
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


def start_node(args, mode: str, ctas: int, grpc_port: int, log_path: Path) -> subprocess.Popen:
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
    jvm = [f"-Dpegaflow.cuda.mode={mode}", f"-Dpegaflow.cuda.grid-ctas={ctas}", *args.jvm_opt]
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
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True, env=env)


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


def run_config(args, mode: str, ctas: int, kv, phases: list, stats: dict) -> None:
    import torch

    from pegaflow import cuda as pf_cuda
    from pegaflow.client import EngineClient
    from pegaflow.flag import LoadFlagFile, LoadState

    layers, pages, src_ids, dst_ids = kv
    n = len(src_ids)
    grpc_port = free_port()
    endpoint = f"127.0.0.1:{grpc_port}"
    log_path = Path(args.node_log_dir) / f"pegaflow-node-interference-{mode}-{ctas}.log"
    node = start_node(args, mode, ctas, grpc_port, log_path)
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
        keep = [block_hash(f"keep-{mode}-{ctas}", i) for i in range(n)]
        r = client.save(ctx, list(zip(src_ids, keep)))
        assert r.blocks_sealed == n, r
        client.query("interference/tp1", keep, lease_ttl_ms=600_000)  # the loaded blocks stay while saves evict
        reference = [pg[torch.tensor(src_ids, device="cuda")].clone() for pg in pages]
        torch.cuda.synchronize()

        def save_and_load(tag: int) -> None:
            hs = [block_hash(f"busy-{mode}-{ctas}-{tag}", i) for i in range(n)]
            r = client.save(ctx, list(zip(src_ids, hs)))
            assert r.blocks_sealed + r.blocks_skipped == n, r
            slot.reset()
            resp = client.load(ctx, list(zip(dst_ids, keep)), slot)
            assert not resp.failed_block_ids, resp
            assert slot.wait(60) is LoadState.DONE

        save_and_load(-1)  # warm-up
        pairs, busy_s, tag = 0, 0.0, 0
        label = f"{mode}:{ctas}"
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
        stats[label] = {"pairs": pairs, "gbps": 2 * pairs * nbytes / busy_s / 1e9, "exact": exact}
        print(f"{label}: {pairs} save+load pairs in {busy_s:.1f} s busy, byte-exact: {exact}", flush=True)
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--configs", default="staged:32,staged:16,staged:8,kernel:32,kernel:8", help="MODE:CTAS,...")
    p.add_argument("--seconds", type=float, default=5.0, help="length of each idle and busy phase")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--limit", type=float, default=5.0, help="acceptable slowdown, percent")
    p.add_argument("--mm-size", type=int, default=8192)
    p.add_argument("--mm-reps", type=int, default=4)
    p.add_argument("--gemv-reps", type=int, default=20)
    p.add_argument("--blocks", type=int, default=2048, help="KV blocks per layer (>= 2 * 625)")
    p.add_argument("--save-blocks", type=int, default=625, help="625 blocks of 16 tokens = 10K tokens")
    p.add_argument("--pool-size", default="8gb")
    p.add_argument("--java", help="java binary; default: start the node with ./pegaflow")
    p.add_argument("--classpath", default="fabric/target/pegaflow-fabric.jar:fabric/target/lib/*")
    p.add_argument("--jvm-opt", action="append", default=[], help="extra node JVM option")
    p.add_argument("--node-log-dir", default="/tmp")
    p.add_argument("--out", help="also write the report here")
    args = p.parse_args()
    configs = []
    for c in args.configs.split(","):
        mode, _, ctas = c.partition(":")
        if mode not in ("staged", "kernel", "memcpy", "batch") or not ctas.isdigit():
            raise SystemExit(f"--configs: {c!r} is not MODE:CTAS (MODE staged, kernel, memcpy or batch)")
        configs.append((mode, int(ctas)))
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
    model = ctx.Process(
        target=model_loop, args=(args.device, args.mm_size, args.mm_reps, args.gemv_reps, child, stop), daemon=True
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
    try:
        for mode, ctas in configs:
            try:
                run_config(args, mode, ctas, kv, phases, stats)
            except Exception as e:  # noqa: BLE001 - report the config as failed, go on with the others
                failures.append(f"{mode}:{ctas}: {e}")
                print(f"{mode}:{ctas} FAILED: {e}", flush=True)
    finally:
        stop.set()
        finished.wait(30)
        model.join(timeout=10)
        if model.is_alive():
            model.kill()

    say()
    say(
        "| config (mode:grid CTAs) | compute idle ms | compute busy ms | compute slowdown | compute busy p99 | "
        "memory idle ms | memory busy ms | memory slowdown | copies GB/s | byte-exact |"
    )
    say("|---|---|---|---|---|---|---|---|---|---|")
    best = None
    for mode, ctas in configs:
        label = f"{mode}:{ctas}"
        comp, mem = summarize(samples, phases, label, 1), summarize(samples, phases, label, 2)
        st = stats.get(label)
        if not comp or not mem or not st:
            say(f"| {label} | - | - | - | - | - | - | - | - | failed or no samples |")
            continue
        cs, ms = 100 * (comp[1] / comp[0] - 1), 100 * (mem[1] / mem[0] - 1)
        say(
            f"| {label} | {comp[0]:.2f} | {comp[1]:.2f} | {cs:+.1f}% | {comp[2]:.2f} | {mem[0]:.2f} | {mem[1]:.2f} | "
            f"{ms:+.1f}% | {st['gbps']:.1f} | {st['exact']} |"
        )
        if st["exact"] and cs <= args.limit and ms <= args.limit and (best is None or st["gbps"] > best[1]):
            best = (label, st["gbps"])
    say()
    say(
        f"model sample: {args.mm_reps} x {args.mm_size}^3 bf16 products (compute) + {args.gemv_reps} x 16x8192x28672 "
        f"GEMV (memory); copies: Save {n} blocks then Load {n} blocks, {n * LAYERS * PAGE / 2**30:.2f} GiB each, "
        f"back to back; {args.rounds} rounds of {args.seconds:.0f} s idle / {args.seconds:.0f} s busy per config"
    )
    say(
        f"fastest config within {args.limit:.0f}% on both workloads: {best[0]} ({best[1]:.1f} GB/s)"
        if best
        else f"no config kept both slowdowns within {args.limit:.0f}%"
    )
    for f in failures:
        say(f"FAILED {f}")
    ok = not failures and all(s["exact"] for s in stats.values())
    say(f"RESULT: {'PASS' if ok else 'FAIL'}")
    if args.out:
        Path(args.out).write_text("\n".join(report) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
