#!/usr/bin/env python3
"""End-to-end check and benchmark of a GPU node: a Llama-3.1-8B-shaped vLLM KV cache shared by CUDA IPC.

Runnable by anyone with an NVIDIA GPU, torch and the pegaflow Python package (python/ on PYTHONPATH):

    python3 bench/gpu/kv_ipc_e2e.py                       # starts ./pegaflow node --devices 0 --pool-size 16gb
    python3 bench/gpu/kv_ipc_e2e.py --java /tmp/jre/bin/java \
        --classpath 'fabric/target/pegaflow-fabric.jar:fabric/target/lib/*'

What it does, in one process (the "vLLM worker"), against a node it starts (the node's own log goes to --node-log):
 1. Allocates the KV cache like vLLM's FlashAttention backend: 32 layers, 8 KV heads, head size 128, block size 16,
    bf16, packed layout (logical (blocks, heads, block_size, 2*head), physical NHD), --blocks blocks per layer; the
    layers are views into --allocations backing allocations (so several layers share one IPC handle).
 2. Registers the layers through the Python client (CUDA IPC handles, device UUID), opens the session.
 3. Fills --save-blocks random source blocks, saves them (10K tokens = 625 blocks = 1.22 GiB), overwrites the source
    blocks, loads the saved hashes into other block ids, and checks every byte of every layer with torch; also that
    the overwritten source blocks and a sample of untouched blocks were not written.
 4. Benchmarks in the same run: save and load of the same 625 blocks (client-observed time; the node's own copy time
    from the load flag), against torch's contiguous pinned copies of the same byte count in both directions. Blocks go
    packed (PackedBlocks); a load's end is seen three ways, interleaved: the flag with a futex wait (the default), the
    Load RPC with reply_when_done (no flag), and the flag polled with sleeps (the older client, for comparison). The
    control path alone: a Save of 625 already-sealed blocks, packed and with a BlockRef per block. Every save and
    load row runs on both client paths (--paths): the same-host command channel (shm) and gRPC, interleaved.
Prints a markdown report (also written to --out).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import torch  # noqa: E402

from pegaflow import channel as channel_module  # noqa: E402
from pegaflow import cuda as pf_cuda  # noqa: E402
from pegaflow.client import EngineClient, FabricClient  # noqa: E402
from pegaflow.flag import LoadFlagFile, LoadState  # noqa: E402

LAYERS, KV_HEADS, HEAD, BLOCK_SIZE = 32, 8, 128, 16
PAGE = BLOCK_SIZE * KV_HEADS * 2 * HEAD * 2  # bytes of one block of one layer (bf16): 64 KiB


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def block_hash(tag: str, i: int) -> bytes:
    return hashlib.sha256(f"{tag}/{i}".encode()).digest()


def cuda_time(fn, reps: int) -> float:
    """Median seconds of ``reps`` runs after a warm-up, timed with CUDA events."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = (
            torch.cuda.Event(enable_timing=True),
            torch.cuda.Event(enable_timing=True),
        )
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def start_node(args, grpc_port: int, metrics_port: int, log_path: Path) -> subprocess.Popen:
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
        str(metrics_port),
    ]
    if args.java:
        cmd = [
            args.java,
            "--enable-native-access=ALL-UNNAMED",
            "--sun-misc-unsafe-memory-access=allow",
            *args.jvm_opt,
            "-cp",
            args.classpath,
            "io.pegaflow.fabric.cli.Main",
            *node_args,
        ]
    else:
        cmd = [str(ROOT / "pegaflow"), *node_args]
    with open(log_path, "w") as log:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)


def wait_ready(endpoint: str, node: subprocess.Popen, log_path: Path, timeout_s: float):
    start = time.monotonic()
    with FabricClient(endpoint, timeout_s=2) as fabric:
        while time.monotonic() - start < timeout_s:
            if node.poll() is not None:
                raise SystemExit(f"node exited with {node.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                health = fabric.health()
                return time.monotonic() - start, health
            except Exception:  # noqa: BLE001 - not up yet, whatever the reason: poll until the deadline
                time.sleep(0.2)
    raise SystemExit(f"node not ready after {timeout_s} s:\n{log_path.read_text()[-4000:]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", type=int, default=0)
    p.add_argument(
        "--blocks",
        type=int,
        default=4096,
        help="blocks per layer (>= 2 * save-blocks + 100)",
    )
    p.add_argument(
        "--save-blocks",
        type=int,
        default=625,
        help="625 blocks of 16 tokens = 10K tokens",
    )
    p.add_argument(
        "--allocations",
        type=int,
        default=32,
        help="backing allocations the 32 layers are views into (vLLM: one per layer)",
    )
    p.add_argument("--pool-size", default="16gb")
    p.add_argument(
        "--ids",
        choices=["random", "sorted"],
        default="random",
        help="the worker's block ids: a random permutation (default) or ascending (where 2D DMAs apply)",
    )
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--java", help="java binary; default: start the node with ./pegaflow")
    p.add_argument("--classpath", default="fabric/target/pegaflow-fabric.jar:fabric/target/lib/*")
    p.add_argument(
        "--jvm-opt",
        action="append",
        default=[],
        help="extra JVM option, e.g. -Dpegaflow.cuda.mode=kernel",
    )
    p.add_argument("--node-log", default="/tmp/pegaflow-node-e2e.log")
    p.add_argument(
        "--paths",
        default="shm,grpc",
        help="which client paths to time, interleaved: shm (the same-host command channel), grpc; the first one "
        "gives the RATIOS line's save/load",
    )
    p.add_argument("--out", help="also write the report here")
    p.add_argument(
        "--load-wait",
        default="futex",
        choices=["futex", "reply", "sleep"],
        help="how the headline load row sees a load's end (every way is measured anyway)",
    )
    args = p.parse_args()
    if args.blocks < 2 * args.save_blocks + 100:
        raise SystemExit("--blocks must be at least 2 * --save-blocks + 100")
    if os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "").find("expandable_segments:True") >= 0:
        raise SystemExit("unset PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True: expandable segments cannot be shared")

    torch.cuda.set_device(args.device)
    report: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        report.append(line)

    props = torch.cuda.get_device_properties(args.device)
    driver = subprocess.run(
        [
            "nvidia-smi",
            "--query-gpu=driver_version",
            "--format=csv,noheader",
            "-i",
            str(args.device),
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    say(f"GPU {args.device}: {props.name}, UUID GPU-{props.uuid}, driver {driver}, torch {torch.__version__}")

    # ---- the node ----
    grpc_port = free_port()
    endpoint = f"127.0.0.1:{grpc_port}"
    log_path = Path(args.node_log)
    t0 = time.monotonic()
    metrics_port = free_port()
    node = start_node(args, grpc_port, metrics_port, log_path)
    try:
        ready_s, health = wait_ready(endpoint, node, log_path, 180)
        log = log_path.read_text()
        pool_line = re.search(r"pinned pool (\S+ \S+) ready in ([0-9.]+) s \((.*)\)$", log, re.M)
        # (the node's line also names its GPUs and each pool start step: mmap, populate, chunked registration)
        say(f"node ready in {ready_s:.1f} s (JVM start included), copy engine {health.copy_engine}")
        if pool_line:
            say(f"pool start: {pool_line.group(1)} pinned in {pool_line.group(2)} s ({pool_line.group(3)})")
        engine_line = re.search(r"CUDA copy engine: (.*)", log)
        if engine_line:
            say(f"engine: {engine_line.group(1)}")
        return run(args, endpoint, metrics_port, say, report, log_path)
    finally:
        try:
            with FabricClient(endpoint, timeout_s=2) as fabric:
                fabric.shutdown(fabric.health().node_id, "e2e done")
            node.wait(timeout=30)
        except Exception:  # noqa: BLE001 - a node that does not shut down cleanly is killed
            node.kill()
        print(f"(node log: {log_path}; total {time.monotonic() - t0:.1f} s)")


def save_metric(metrics_port: int) -> tuple[float, float] | None:
    """(sum seconds, count) of the node's pegaflow_save_duration_seconds histogram, or None if unreadable."""
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    except Exception:  # noqa: BLE001 - metrics are optional in this report
        return None
    total = re.search(r"^pegaflow_save_duration_seconds_sum(?:\{[^}]*\})? ([0-9.eE+-]+)$", text, re.M)
    count = re.search(
        r"^pegaflow_save_duration_seconds_count(?:\{[^}]*\})? ([0-9.eE+-]+)$",
        text,
        re.M,
    )
    return (float(total.group(1)), float(count.group(1))) if total and count else None


def phase_metric(metrics_port: int, op: str) -> dict[str, tuple[float, float]]:
    """{phase: (sum seconds, count)} of the node's pegaflow_<op>_phase_seconds histograms ({} if unreadable)."""
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    except Exception:  # noqa: BLE001 - metrics are optional in this report
        return {}
    found: dict[str, list[float]] = {}
    for kind, at in (("sum", 0), ("count", 1)):
        for m in re.finditer(rf"^pegaflow_{op}_phase_seconds_{kind}\{{([^}}]*)\}} ([0-9.eE+-]+)$", text, re.M):
            phase = re.search(r'phase="([^"]+)"', m.group(1))
            if phase:
                found.setdefault(phase.group(1), [0.0, 0.0])[at] += float(m.group(2))
    return {k: (v[0], v[1]) for k, v in found.items()}


def phase_line(op: str, before: dict, after: dict, calls: int, client_s: float) -> str:
    """The mean of each phase per call between two snapshots, and what the client saw beyond their sum."""
    parts, total = [], 0.0
    for phase, (total_s, count) in after.items():
        s0, c0 = before.get(phase, (0.0, 0.0))
        if count - c0 <= 0:
            continue
        mean = (total_s - s0) / (count - c0)
        total += mean * (count - c0) / calls
        parts.append(f"{phase} {mean * 1e3:.3f} ms (n={round(count - c0)})")
    if not parts:
        return f"PHASES {op}: no pegaflow_{op}_phase_seconds on the node's metrics endpoint"
    return (
        f"PHASES {op} (node, mean per call over {calls} calls): "
        + ", ".join(parts)
        + f"; client-visible mean {client_s * 1e3:.3f} ms, of which outside these phases "
        f"{(client_s - total) * 1e3:.3f} ms (client, wire, gRPC server)"
    )


def run(args, endpoint, metrics_port, say, report, log_path) -> int:
    nb, n = args.blocks, args.save_blocks
    per_alloc = -(-LAYERS // args.allocations)
    raws, layers = [], {}
    for a in range(args.allocations):
        count = min(per_alloc, LAYERS - a * per_alloc)
        raws.append(torch.empty(count * nb * PAGE, dtype=torch.uint8, device="cuda"))
    for layer in range(LAYERS):
        raw = raws[layer // per_alloc]
        first = (layer % per_alloc) * nb * PAGE
        physical = raw[first : first + nb * PAGE].view(torch.bfloat16).view(nb, BLOCK_SIZE, KV_HEADS, 2 * HEAD)
        layers[f"model.layers.{layer}.self_attn.attn"] = physical.permute(0, 2, 1, 3)  # vLLM's logical view
    pages = [
        raws[layer // per_alloc].view(-1, PAGE)[(layer % per_alloc) * nb : (layer % per_alloc + 1) * nb]
        for layer in range(LAYERS)
    ]  # [layer] -> (nb, 64 KiB) uint8 view of the same memory
    gib = n * LAYERS * PAGE / 2**30
    say(
        f"KV cache: {LAYERS} layers x {nb} blocks x {PAGE // 1024} KiB = {LAYERS * nb * PAGE / 2**30:.2f} GiB in "
        f"{args.allocations} allocations; moving {n} blocks = {n * BLOCK_SIZE} tokens = {gib:.3f} GiB per copy; "
        f"block ids {args.ids}"
    )

    gen = torch.Generator(device="cpu").manual_seed(1)
    # random: a permutation (vLLM's free list after churn); sorted: ascending ids (a fresh engine's free list)
    perm = torch.randperm(nb, generator=gen) if args.ids == "random" else torch.arange(nb)
    src_ids, dst_ids, untouched = (
        perm[:n].tolist(),
        perm[n : 2 * n].tolist(),
        perm[2 * n : 2 * n + 100].tolist(),
    )
    src_t, dst_t, un_t = (torch.tensor(x, device="cuda") for x in (src_ids, dst_ids, untouched))
    for pg in pages:
        pg.random_()
    reference = [pg[src_t].clone() for pg in pages]
    untouched_before = [pg[un_t].clone() for pg in pages]
    torch.cuda.synchronize()

    uuid, registrations = pf_cuda.layer_registrations(layers)
    handles = {r.region.cuda_ipc.ipc_handle for r in registrations}
    client = EngineClient(endpoint, timeout_s=60)  # its session opens the command channel (when the node has one)
    grpc_client = EngineClient(endpoint, timeout_s=60, command_channel=False)
    reg = client.register_context("e2e", "llama-3.1-8b/bf16/tp1", 0, 1, 0, LAYERS, uuid, registrations)
    session = client.open_session(reg.context_id)
    ctx = reg.context_id
    say(
        f"registered {len(registrations)} layers ({len(handles)} IPC handles) on {uuid}: context {ctx}, "
        f"{reg.block_bytes} bytes per pool block"
    )
    opened = re.findall(r"layers in (\d+) regions", log_path.read_text())
    if opened:
        say(f"node opened {opened[-1]} CUDA IPC allocations for {len(registrations)} layers")

    flags = LoadFlagFile(slots=4)
    try:
        # ---- correctness: save, overwrite, load elsewhere, check every byte ----
        hashes = [block_hash("e2e", i) for i in range(n)]
        saved = client.save(ctx, list(zip(src_ids, hashes)))
        assert saved.blocks_sealed == n, saved
        for pg in pages:
            pg[src_t] = 0xA5
        torch.cuda.synchronize()
        slot = flags.slot(0)
        slot.reset()
        resp = client.load(ctx, list(zip(dst_ids, hashes)), slot)
        assert not resp.failed_block_ids, resp
        state = slot.wait(60)
        assert state is LoadState.DONE, (state, slot.snapshot())
        bad = [layer for layer, pg in enumerate(pages) if not torch.equal(pg[dst_t], reference[layer])]
        scribbled = all(bool((pg[src_t] == 0xA5).all()) for pg in pages)
        intact = all(torch.equal(pg[un_t], before) for pg, before in zip(pages, untouched_before))
        ok = not bad and scribbled and intact
        say(
            f"check: {n} blocks x {LAYERS} layers saved, overwritten, loaded into other blocks: "
            f"{'every byte equal' if not bad else f'MISMATCH in layers {bad}'}; overwritten sources untouched by the "
            f"load: {scribbled}; 100 other blocks unchanged: {intact}"
        )

        # ---- benchmark ----
        nbytes = n * LAYERS * PAGE
        pinned = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
        dev = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
        dev.random_()
        h2d = cuda_time(lambda: dev.copy_(pinned, non_blocking=True), args.reps)
        d2h = cuda_time(lambda: pinned.copy_(dev, non_blocking=True), args.reps)
        pinned = dev = None  # free both buffers before the node's benchmark

        # Lease the checked blocks so the benchmark's saves (fresh hashes each time) cannot evict them.
        lease = client.query("llama-3.1-8b/bf16/tp1", hashes, lease_ttl_ms=600_000)
        assert lease.hit_blocks == n, lease
        clients = {"shm": client, "grpc": grpc_client}
        paths = [p for p in args.paths.split(",") if p]
        if "shm" in paths and channel_module.lookup(endpoint, ctx) is None:
            say("the node offered no command channel: the shm rows are left out")
            paths.remove("shm")
        save_s = {p: [] for p in paths}
        for rep in range(args.warmup):
            for p in paths:
                clients[p].save(
                    ctx,
                    list(zip(src_ids, [block_hash(f"warm{rep}-{p}", i) for i in range(n)])),
                )
                slot.reset()
                clients[p].load(ctx, list(zip(dst_ids, hashes)), slot)
                assert slot.wait(60) is LoadState.DONE
        time.sleep(1.2)  # let the node's metrics tick close before the measured saves
        before = save_metric(metrics_port)
        save_phases_before = phase_metric(metrics_port, "save")
        for rep in range(args.reps):
            for p in paths:  # interleaved: drift hits both paths alike
                hs = [block_hash(f"bench{rep}-{p}", i) for i in range(n)]
                torch.cuda.synchronize()
                start = time.perf_counter()
                r = clients[p].save(ctx, list(zip(src_ids, hs)))
                save_s[p].append(time.perf_counter() - start)
                assert r.blocks_sealed == n and clients[p].last_path == p, (
                    r,
                    clients[p].last_path,
                )
        time.sleep(1.2)
        after = save_metric(metrics_port)
        save_phases = (save_phases_before, phase_metric(metrics_port, "save"))
        save_node_s = None
        if before and after and round(after[1] - before[1]) == args.reps * len(paths):
            save_node_s = (after[0] - before[0]) / (args.reps * len(paths))
        sealed = {p: [] for p in paths}
        for _ in range(args.reps):
            for p in paths:
                start = time.perf_counter()
                r = clients[p].save(ctx, list(zip(src_ids, hashes)))  # all sealed already: the call without a copy
                sealed[p].append(time.perf_counter() - start)
                assert r.blocks_skipped == n, r
        from pegaflow._proto import engine_pb2, engine_pb2_grpc
        from pegaflow.client import _block_refs, _save_request

        build = []
        for _ in range(args.reps):
            start = time.perf_counter()
            engine_pb2.SaveRequest(context_id=ctx, blocks=_block_refs(zip(src_ids, hashes))).SerializeToString()
            build.append(time.perf_counter() - start)
        build_s = statistics.median(build)
        stub = engine_pb2_grpc.EngineStub(client._channel)
        rpc_refs = []
        for _ in range(args.reps):
            start = time.perf_counter()
            r = stub.Save(
                engine_pb2.SaveRequest(context_id=ctx, blocks=_block_refs(zip(src_ids, hashes))),
                timeout=60,
            )
            rpc_refs.append(time.perf_counter() - start)
            assert r.blocks_skipped == n, r
        save_rpc_refs_s = statistics.median(rpc_refs)
        build_packed = []
        for _ in range(args.reps):
            start = time.perf_counter()
            _save_request(ctx, list(zip(src_ids, hashes)), None).SerializeToString()
            build_packed.append(time.perf_counter() - start)
        build_packed_s = statistics.median(build_packed)

        time.sleep(1.2)
        load_phases_before = phase_metric(metrics_port, "load")
        kinds = [(p, how) for p in paths for how in ("futex", "reply", "sleep") if not (p == "shm" and how == "sleep")]
        waits = {k: [] for k in kinds}
        waits_node = {k: [] for k in kinds}
        for _ in range(args.reps):
            for (
                p,
                how,
            ), runs in waits.items():  # interleaved: drift hits every way alike
                c = clients[p]
                if how == "reply":
                    start = time.perf_counter()
                    r = c.load(ctx, list(zip(dst_ids, hashes)), reply_when_done=True)
                    runs.append(time.perf_counter() - start)
                    assert r.done_state == 1 and r.blocks_loaded == n, r
                    waits_node[(p, how)].append(r.node_duration_ns / 1e9)
                else:
                    slot.reset()
                    start = time.perf_counter()
                    c.load(ctx, list(zip(dst_ids, hashes)), slot)
                    assert slot.wait(60, strategy=how) is LoadState.DONE
                    runs.append(time.perf_counter() - start)
                    waits_node[(p, how)].append(slot.duration_ns / 1e9)
                assert c.last_path == p, c.last_path
        time.sleep(1.2)
        load_phases = (load_phases_before, phase_metric(metrics_port, "load"))
        main_kind = (
            paths[0],
            args.load_wait if (paths[0], args.load_wait) in waits else "futex",
        )
        load_s, load_node_s = waits[main_kind], waits_node[main_kind]
        ok = ok and all(torch.equal(pg[dst_t], reference[layer]) for layer, pg in enumerate(pages))

        def row(name, seconds, ref):
            return f"| {name} | {seconds * 1e3:.2f} | {nbytes / seconds / 1e9:.1f} | {100 * ref / seconds:.1f}% |"

        s_med, l_med, ln_med = (
            statistics.median(save_s[paths[0]]),
            statistics.median(load_s),
            statistics.median(load_node_s),
        )
        say()
        say(
            f"| {gib:.3f} GiB ({n} blocks x {LAYERS} layers x 64 KiB), median of {args.reps} after {args.warmup} "
            f"warm-ups | ms | GB/s | % of contiguous |"
        )
        say("|---|---|---|---|")
        say(row("contiguous pinned -> GPU (torch copy_)", h2d, h2d))
        say(row("contiguous GPU -> pinned (torch copy_)", d2h, d2h))
        via = {"shm": "over the command channel (shm)", "grpc": "over gRPC"}
        for p in paths:
            say(
                row(
                    f"save GPU -> pool, Save {via[p]} as the client sees it",
                    statistics.median(save_s[p]),
                    d2h,
                )
            )
        if save_node_s:
            say(
                row(
                    "save GPU -> pool, node-side copy time (mean, pegaflow_save_duration_seconds)",
                    save_node_s,
                    d2h,
                )
            )
        names = {
            "futex": "Load + flag, futex wait",
            "reply": "Load with reply_when_done (no flag)",
            "sleep": "Load + flag polled with sleeps (older client)",
        }
        for (p, how), runs in waits.items():
            say(
                row(
                    f"load pool -> GPU, {names[how]} {via[p]}, as the client sees it",
                    statistics.median(runs),
                    h2d,
                )
            )
        say(row("load pool -> GPU, node-side copy time (load flag)", ln_med, h2d))
        for p in paths:
            say(
                f"| (Save of {n} already-sealed blocks {via[p]}: no copy) "
                f"| {statistics.median(sealed[p]) * 1e3:.2f} | | |"
            )
        say(f"| (the same over gRPC with a BlockRef per block, the older form) | {save_rpc_refs_s * 1e3:.2f} | | |")
        say(f"| (client: build and serialize the packed SaveRequest, no call) | {build_packed_s * 1e3:.2f} | | |")
        say(f"| (client: build and serialize it with BlockRefs, no call) | {build_s * 1e3:.2f} | | |")
        say()
        for p in paths:
            say(f"save runs {p} (ms): {' '.join(f'{x * 1e3:.1f}' for x in save_s[p])}")
        for (p, how), runs in waits.items():
            say(f"load runs, {p} {how} (ms): {' '.join(f'{x * 1e3:.1f}' for x in runs)}")
        say(
            f"RATIOS: save {100 * d2h / s_med:.1f}% load {100 * h2d / l_med:.1f}% ({main_kind[0]} {main_kind[1]}) "
            + " ".join(f"save-{p} {100 * d2h / statistics.median(save_s[p]):.1f}%" for p in paths)
            + " "
            + " ".join(f"load-{p}-{how} {100 * h2d / statistics.median(runs):.1f}%" for (p, how), runs in waits.items())
            + " "
            + " ".join(f"sealed-save-{p} {statistics.median(sealed[p]) * 1e3:.2f} ms" for p in paths)
            + f" sealed-save-blockrefs {save_rpc_refs_s * 1e3:.2f} ms"
        )
        all_saves = [x for runs in save_s.values() for x in runs]
        say(phase_line("save", *save_phases, len(all_saves), statistics.mean(all_saves)))
        all_loads = [x for runs in waits.values() for x in runs]
        say(phase_line("load", *load_phases, len(all_loads), statistics.mean(all_loads)))
        say(f"RESULT: {'PASS' if ok else 'FAIL'}")
    finally:
        session.close()
        grpc_client.close()
        client.close()
        flags.close()
        flags.unlink()
    if args.out:
        Path(args.out).write_text("\n".join(report) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
