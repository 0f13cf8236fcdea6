#!/usr/bin/env python3
"""Multi-process TP harness: tensor-parallel ranks as processes sharing one node, save then load, byte-exact.

For each TP size (``--tp 1,2,4,8``) it starts that many rank processes (``spawn``). Every rank holds its share of the
same KV cache (Llama-3.1-8B by default: 32 layers, 8 KV heads split across the ranks, head size 128, bf16, 16-token
blocks), registers it with the one node as (instance, tp_rank, tp_size) and moves the same ``--tokens`` (10K = 625
blocks, 1.22 GiB of all ranks together) through the pool:

1. check: ranks fill their source blocks with their own random bytes; ranks 0..tp-2 save one after another while
   Query must see no block, and the last rank's save makes every block visible (a block seals only with every
   rank's slots); then every rank overwrites its source blocks, loads the blocks into other block ids and compares
   every byte with what it saved (and that the overwritten sources and a sample of other blocks were not written).
2. bench: all ranks start together (a barrier), each saving the same blocks under fresh hashes, then each loading the
   checked blocks; the aggregate time runs from the first rank's call to the last rank's completion (its Save reply,
   its load flag DONE). Ratio: against one contiguous copy of the same bytes in the same run (a pinned torch copy on
   a GPU, a numpy memcpy on the host), both directions; the faster of two measurements (before and after).

Memory: ``--device cuda`` (default where torch sees a GPU) puts the KV cache in torch CUDA allocations shared by IPC
with a node started with ``--device``; ``--device cpu`` puts it in shared-memory files (the host stand-in), so the
harness runs anywhere, e.g. in CI with a tiny ``--tokens``. ``--kv-alloc layer`` gives each layer its own allocation
(vLLM up to 0.28); ``group`` gives each rank one allocation with a block's layers side by side (vLLM 0.29's
blocks-first ``BLNHC``), registered as one group entry.

    python3 bench/gpu/tp_harness.py --tp 1,2,4,8                      # starts ./pegaflow node --device 0
    python3 bench/gpu/tp_harness.py --java /tmp/jre/bin/java --classpath "$CP" --tp 1,2,4,8
    python3 bench/gpu/tp_harness.py --device cpu --endpoint 127.0.0.1:50055 --tp 1,2 --tokens 256 --layers 4

One rank per GPU ([12 of 12]): ``--gpus 0,1,2,3`` runs TP = the number of GPUs with rank r on GPU r (each rank a
process with its own CUDA context and IPC registrations) against one node started with ``--devices 0,1,2,3``: the
same check and bench as above, plus each GPU's own contiguous pinned copy of its rank's share measured in the same
run, one GPU at a time ("alone") and all GPUs at once ("together": they may share a PCIe switch or root port). It
reports per rank and in aggregate the save and load ratios against both, the machine facts (``nvidia-smi topo -m``,
the driver, each GPU's NUMA node) and which pool served each GPU (the node's Health). ``--gpus 0`` runs it on one
GPU; with ``--device cpu`` the "GPUs" are stand-in ranks on shared memory and host memcpy baselines (CI).

    python3 bench/gpu/tp_harness.py --gpus 0,1,2,3 --java /tmp/jre/bin/java --classpath "$CP"
    python3 bench/gpu/tp_harness.py --device cpu --gpus 0,1 --tokens 256 --layers 4 --endpoint 127.0.0.1:50055

Prints a markdown report (also to ``--out``) and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import multiprocessing as mp
import random
import re
import socket
import statistics
import subprocess
import sys
import time
import traceback
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

from pegaflow._proto import engine_pb2  # noqa: E402
from pegaflow.client import EngineClient, FabricClient  # noqa: E402
from pegaflow.flag import LoadFlagFile, LoadState  # noqa: E402
from pegaflow.groups import coalesce_layer_groups  # noqa: E402

LOAD_TIMEOUT_S = 120.0
SCRIBBLE = 0xA5


@dataclass(frozen=True)
class Shape:
    layers: int
    kv_heads: int
    head: int
    block_size: int
    itemsize: int

    def page(self, tp: int) -> int:
        """Bytes of one block of one layer on one rank (K and V packed)."""
        return self.block_size * (self.kv_heads // tp) * 2 * self.head * self.itemsize


@dataclass(frozen=True)
class RankSpec:
    """What a rank process needs (picklable)."""

    endpoint: str
    namespace: str
    instance: str
    tp_rank: int
    tp_size: int
    shape: Shape
    device: str  # "cuda" or "cpu"
    cuda_index: int
    kv_alloc: str  # "layer" or "group"
    num_blocks: int
    src_ids: list[int]
    dst_ids: list[int]
    untouched_ids: list[int]


def block_hash(tag: str, i: int) -> bytes:
    return hashlib.sha256(f"{tag}/{i}".encode()).digest()


# ---------------------------------------------------------------- a rank's KV cache (torch on a GPU, numpy on the host)


class RankCache:
    """One rank's KV cache: ``pages(l)`` is layer l as a (num_blocks, page) byte array, a view of the real memory."""

    def __init__(self, spec: RankSpec):
        self.spec = spec
        self.cuda = spec.device == "cuda"
        layers, nb = spec.shape.layers, spec.num_blocks
        self.page = spec.shape.page(spec.tp_size)
        per_layer = spec.kv_alloc == "layer"
        allocations, size = (layers, nb * self.page) if per_layer else (1, nb * layers * self.page)
        self.files: list[Path] = []
        self._maps = []
        if self.cuda:
            import torch

            torch.cuda.set_device(spec.cuda_index)
            self.raws = [torch.zeros(size, dtype=torch.uint8, device="cuda") for _ in range(allocations)]
        else:
            import numpy as np

            from pegaflow._shmfile import map_file, shm_path

            self.raws = []
            for _ in range(allocations):
                path = shm_path()
                self.files.append(path)
                self._maps.append(map_file(path, size, create=True))
                self.raws.append(np.frombuffer(self._maps[-1], dtype=np.uint8))
        if per_layer:
            self._pages = [raw.reshape(nb, self.page) for raw in self.raws]
        else:  # blocks first: block b = [layer 0's page][layer 1's page]...
            whole = self.raws[0].reshape(nb, layers, self.page)
            self._pages = [whole[:, layer, :] for layer in range(layers)]

    def pages(self, layer: int):
        return self._pages[layer]

    def index(self, ids: list[int]):
        if self.cuda:
            import torch

            return torch.tensor(ids, device="cuda")
        import numpy as np

        return np.asarray(ids)

    def fill_random(self, seed: int) -> None:
        if self.cuda:
            import torch

            gen = torch.Generator(device="cuda").manual_seed(seed)
            for raw in self.raws:
                raw.random_(0, 256, generator=gen)
        else:
            import numpy as np

            rng = np.random.default_rng(seed)
            for raw in self.raws:
                raw[:] = rng.integers(0, 256, size=raw.shape[0], dtype=np.uint8)

    def gather(self, ids) -> list:
        """A copy of blocks ``ids`` of every layer."""
        blocks = [self.pages(layer)[ids] for layer in range(self.spec.shape.layers)]
        return [b.clone() for b in blocks] if self.cuda else [b.copy() for b in blocks]

    def set(self, ids, value: int) -> None:
        for layer in range(self.spec.shape.layers):
            self.pages(layer)[ids] = value

    def differing_layers(self, ids, reference: list) -> list[int]:
        """Layers whose blocks ``ids`` differ from ``reference``."""
        return [
            layer
            for layer in range(self.spec.shape.layers)
            if not bool((self.pages(layer)[ids] == reference[layer]).all())
        ]

    def all_equal_to(self, ids, value: int) -> bool:
        return all(bool((self.pages(layer)[ids] == value).all()) for layer in range(self.spec.shape.layers))

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def registrations(self) -> tuple[str, list]:
        """(device, LayerRegistrations): one per layer, or the group coalesced into one entry."""
        spec, layers = self.spec, self.spec.shape.layers
        per_layer = spec.kv_alloc == "layer"
        stride = self.page if per_layer else self.page * layers
        regs, device = [], "host"
        for layer in range(layers):
            allocation = layer if per_layer else 0
            offset = 0 if per_layer else layer * self.page
            if self.cuda:
                from pegaflow import cuda as pf_cuda

                ipc = pf_cuda.ipc_tensor(self.raws[allocation])
                device = pf_cuda.device_uuid(spec.cuda_index)
                region = engine_pb2.MemoryRegion(
                    cuda_ipc=engine_pb2.CudaIpcRegion(
                        ipc_handle=ipc.ipc_handle,
                        allocation_size_bytes=ipc.allocation_size_bytes,
                        offset_bytes=ipc.offset_bytes + offset,
                    )
                )
            else:
                path = str(self.files[allocation])
                region = engine_pb2.MemoryRegion(shm=engine_pb2.SharedMemoryRegion(path=path, offset_bytes=offset))
            regs.append(
                engine_pb2.LayerRegistration(
                    name=f"model.layers.{layer}.self_attn.attn",
                    layer_index=layer,
                    region=region,
                    num_blocks=spec.num_blocks,
                    block_stride_bytes=stride,
                    segments=[engine_pb2.ByteSegment(offset_bytes=0, length_bytes=self.page)],
                )
            )
        return device, coalesce_layer_groups(regs)

    def close(self) -> None:
        self._pages, self.raws = [], []
        for m in self._maps:
            with contextlib.suppress(BufferError):  # a view still alive keeps the mapping; the process ends anyway
                m.close()
        for path in self.files:
            path.unlink(missing_ok=True)


class Baseline:
    """A rank's own contiguous copy of its share of the bytes: pinned host memory to and from its GPU (torch), or a
    numpy memcpy on the host stand-in. Each repetition is timed on the rank's own clock (perf_counter, one clock for
    every process), after a barrier when the ranks copy together, so an aggregate can be taken per repetition."""

    def __init__(self, spec: RankSpec, nbytes: int):
        self.cuda = spec.device == "cuda"
        if self.cuda:
            import torch

            self.host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
            self.dev = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
        else:
            import numpy as np

            self.host, self.dev = (
                np.ones(nbytes, dtype=np.uint8),
                np.zeros(nbytes, dtype=np.uint8),
            )

    def _copy(self, to_device: bool) -> None:
        if self.cuda:
            import torch

            (
                self.dev.copy_(self.host, non_blocking=True)
                if to_device
                else self.host.copy_(self.dev, non_blocking=True)
            )
            torch.cuda.synchronize()
        else:
            import numpy as np

            np.copyto(self.dev, self.host) if to_device else np.copyto(self.host, self.dev)

    def run(self, reps: int, barrier) -> dict:
        out = {}
        for name, to_device in (("h2d", True), ("d2h", False)):
            self._copy(to_device)  # warm
            times = []
            for _ in range(reps):
                if barrier is not None:
                    barrier.wait(60)
                t0 = time.perf_counter_ns()
                self._copy(to_device)
                times.append((t0, time.perf_counter_ns()))
            out[name] = times
        return out

    def close(self) -> None:
        self.host = self.dev = None


# ---------------------------------------------------------------- the rank process


def rank_main(spec: RankSpec, conn, barrier) -> None:
    """Serves the coordinator's commands until "stop"; every reply is ("ok", value) or ("error", text)."""
    cache = client = session = flags = baseline = None
    try:
        cache = RankCache(spec)
        client = EngineClient(spec.endpoint, timeout_s=120)
        device, regs = cache.registrations()
        reply = client.register_context(
            spec.instance,
            spec.namespace,
            spec.tp_rank,
            spec.tp_size,
            0,
            spec.shape.layers,
            device,
            regs,
        )
        ctx = reply.context_id
        session = client.open_session(ctx)
        flags = LoadFlagFile(slots=1)
        slot = flags.slot(0)
        src, dst, untouched = (cache.index(x) for x in (spec.src_ids, spec.dst_ids, spec.untouched_ids))
        reference = untouched_before = None
        n = len(spec.src_ids)
        conn.send(
            (
                "ok",
                {
                    "entries": len(regs),
                    "block_bytes": reply.block_bytes,
                    "device": device,
                },
            )
        )
        baseline = None

        def load(hashes) -> tuple[int, int, int]:
            slot.reset()
            t0 = time.perf_counter_ns()
            resp = client.load(ctx, list(zip(spec.dst_ids, hashes)), slot)
            if resp.failed_block_ids:
                raise RuntimeError(f"rank {spec.tp_rank}: {len(resp.failed_block_ids)} blocks cannot be loaded")
            state = slot.wait(LOAD_TIMEOUT_S, session=session)
            t1 = time.perf_counter_ns()
            if state is not LoadState.DONE:
                raise RuntimeError(f"rank {spec.tp_rank}: load ended {state.name}: {slot.snapshot()}")
            return t0, t1, slot.duration_ns

        while True:
            cmd, arg = conn.recv()
            try:
                if cmd == "stop":
                    conn.send(("ok", None))
                    return
                if cmd == "fill":
                    cache.fill_random(1000 + spec.tp_rank)  # each rank its own bytes: a mix-up cannot pass
                    reference, untouched_before = (
                        cache.gather(src),
                        cache.gather(untouched),
                    )
                    cache.sync()
                    conn.send(("ok", None))
                elif cmd == "save":  # arg: (hash tag, all ranks together); returns (t0, t1, stored, skipped, sealed)
                    tag, together = arg
                    hashes = [block_hash(tag, i) for i in range(n)]
                    cache.sync()
                    if together:
                        barrier.wait(60)
                    t0 = time.perf_counter_ns()
                    r = client.save(ctx, list(zip(spec.src_ids, hashes)))
                    t1 = time.perf_counter_ns()
                    conn.send(
                        (
                            "ok",
                            (
                                t0,
                                t1,
                                r.blocks_stored,
                                r.blocks_skipped,
                                r.blocks_sealed,
                            ),
                        )
                    )
                elif cmd == "baseline":  # arg: (reps, together); returns {"h2d": [(t0, t1)...], "d2h": [...]}
                    reps, together = arg
                    if baseline is None:
                        baseline = Baseline(spec, n * spec.shape.layers * cache.page)
                    conn.send(("ok", baseline.run(reps, barrier if together else None)))
                elif cmd == "scribble":
                    cache.set(src, SCRIBBLE)
                    cache.sync()
                    conn.send(("ok", None))
                elif cmd == "load":  # arg: hash tag; all ranks together; returns (t0, t1, node-side ns)
                    hashes = [block_hash(arg, i) for i in range(n)]
                    barrier.wait(60)
                    conn.send(("ok", load(hashes)))
                elif cmd == "verify":
                    value = {
                        "bad_layers": cache.differing_layers(dst, reference),
                        "sources_untouched_by_load": cache.all_equal_to(src, SCRIBBLE),
                        "others_unchanged": not cache.differing_layers(untouched, untouched_before),
                    }
                    conn.send(("ok", value))
                else:
                    raise ValueError(f"unknown command {cmd!r}")
            except Exception:  # noqa: BLE001 - reported to the coordinator, which fails the run
                conn.send(("error", traceback.format_exc()))
    except Exception:  # noqa: BLE001 - set-up failed: the coordinator reports it
        conn.send(("error", traceback.format_exc()))
    finally:
        for closeable in (session, client):
            if closeable is not None:
                with contextlib.suppress(Exception):
                    closeable.close()
        if flags is not None:
            flags.close()
            flags.unlink()
        if baseline is not None:
            baseline.close()
        if cache is not None:
            cache.close()


# ---------------------------------------------------------------- the coordinator


class Ranks:
    """The rank processes of one TP size and their pipes."""

    def __init__(self, specs: list[RankSpec], ctx):
        barrier = ctx.Barrier(len(specs))
        self.conns, self.procs = [], []
        for spec in specs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=rank_main,
                args=(spec, child, barrier),
                name=f"tp-rank-{spec.tp_rank}",
            )
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        self.setup = [self._reply(i, 300) for i in range(len(specs))]

    def _reply(self, i: int, timeout_s: float):
        if not self.conns[i].poll(timeout_s):
            raise RuntimeError(f"rank {i} did not answer within {timeout_s} s")
        status, value = self.conns[i].recv()
        if status != "ok":
            raise RuntimeError(f"rank {i} failed:\n{value}")
        return value

    def one(self, i: int, cmd: str, arg=None, timeout_s: float = 300):
        self.conns[i].send((cmd, arg))
        return self._reply(i, timeout_s)

    def all(self, cmd: str, arg=None, timeout_s: float = 300) -> list:
        for conn in self.conns:
            conn.send((cmd, arg))
        return [self._reply(i, timeout_s) for i in range(len(self.conns))]

    def stop(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.is_alive():
                with contextlib.suppress(Exception):  # a rank that cannot stop is terminated below
                    self.one(i, "stop", timeout_s=30)
            proc.join(30)
            if proc.is_alive():
                proc.terminate()
                proc.join(10)


def aggregate_s(times: list[tuple]) -> float:
    """From the first rank's start to the last rank's end (perf_counter is CLOCK_MONOTONIC: one clock for all)."""
    return (max(t[1] for t in times) - min(t[0] for t in times)) / 1e9


def contiguous_reference(device: str, cuda_index: int, nbytes: int, reps: int) -> tuple[float, float]:
    """(host to device, device to host) seconds of one contiguous copy of ``nbytes`` (median of ``reps``)."""
    if device == "cuda":
        import torch

        torch.cuda.set_device(cuda_index)
        pinned = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
        dev = torch.empty(nbytes, dtype=torch.uint8, device="cuda")

        def timed(fn) -> float:
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

        h2d = timed(lambda: dev.copy_(pinned, non_blocking=True))
        d2h = timed(lambda: pinned.copy_(dev, non_blocking=True))
        del pinned, dev
        torch.cuda.empty_cache()
        return h2d, d2h
    import numpy as np

    a, b = np.ones(nbytes, dtype=np.uint8), np.zeros(nbytes, dtype=np.uint8)

    def timed_np(dst, src) -> float:
        np.copyto(dst, src)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            np.copyto(dst, src)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    return timed_np(b, a), timed_np(a, b)


def copy_modes(metrics_url: str | None) -> dict[str, float]:
    """The node's pegaflow_copy_mode_total counters by "direction/mode" (empty if unreadable)."""
    if not metrics_url:
        return {}
    try:
        text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    except Exception:  # noqa: BLE001 - optional in the report
        return {}
    found = {}
    for m in re.finditer(r"^pegaflow_copy_mode_total\{([^}]*)\} ([0-9.eE+-]+)$", text, re.MULTILINE):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        found[f"{labels.get('direction')}/{labels.get('mode')}"] = float(m.group(2))
    return found


def modes_between(before: dict[str, float], after: dict[str, float]) -> str:
    diff = {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}
    return " ".join(f"{k}={v:.0f}" for k, v in sorted(diff.items()))


def run_tp(args, tp: int, endpoint: str, shape: Shape, ctx, gpus: list[int] | None = None) -> dict:
    """One TP size; with ``gpus``, rank r on GPU gpus[r] and each rank's own baselines measured too."""
    n, nb = args.blocks, args.num_blocks
    perm = list(range(nb))
    if args.ids == "random":  # else ascending ids, a fresh engine's free list (2D DMAs apply)
        random.Random(7).shuffle(perm)
    src, dst, untouched = perm[:n], perm[n : 2 * n], perm[2 * n : 2 * n + 100]
    run = uuid.uuid4().hex[:8]
    namespace = f"tp-harness/{args.kv_alloc}/tp{tp}/{run}"
    specs = [
        RankSpec(
            endpoint=endpoint,
            namespace=namespace,
            instance=f"harness-{run}",
            tp_rank=r,
            tp_size=tp,
            shape=shape,
            device=args.device,
            cuda_index=gpus[r] if gpus else args.cuda_device,
            kv_alloc=args.kv_alloc,
            num_blocks=nb,
            src_ids=src,
            dst_ids=dst,
            untouched_ids=untouched,
        )
        for r in range(tp)
    ]
    ranks = Ranks(specs, ctx)
    try:
        ranks.all("fill")
        check = [block_hash("check", i) for i in range(n)]
        with EngineClient(endpoint, timeout_s=60) as client:
            # ---- a block is visible only once every rank saved it ----
            visible = []
            for r in range(tp):
                visible.append(client.query(namespace, check).hit_blocks == 0)
                t = ranks.one(r, "save", ("check", False))
                if t[2] != n:
                    raise RuntimeError(f"rank {r} stored {t[2]} of {n} blocks")
                visible.append(t[4] == (n if r == tp - 1 else 0))
            lease = client.query(namespace, check, lease_ttl_ms=600_000)  # the bench's saves cannot evict these
            visible.append(lease.hit_blocks == n)
            # ---- byte-exact round trip ----
            ranks.all("scribble")
            ranks.all("load", "check")
            verified = ranks.all("verify")
            clean = {
                "bad_layers": [],
                "sources_untouched_by_load": True,
                "others_unchanged": True,
            }
            exact = all(v == clean for v in verified)
            # ---- bench ----
            for rep in range(args.warmup):
                ranks.all("save", (f"warm{rep}", True))
                ranks.all("load", "check")
            baselines = per_gpu_baselines(ranks, tp, max(3, args.reps)) if gpus else None
            saves, loads = [], []
            rank_saves, rank_loads = [[] for _ in range(tp)], [[] for _ in range(tp)]
            for rep in range(args.reps):
                times = ranks.all("save", (f"bench{rep}", True))
                if any(t[2] != n for t in times):
                    raise RuntimeError(f"a bench save stored fewer than {n} blocks: {times}")
                saves.append(aggregate_s(times))
                for r, t in enumerate(times):
                    rank_saves[r].append((t[1] - t[0]) / 1e9)
            for _ in range(args.reps):
                times = ranks.all("load", "check")
                loads.append(aggregate_s(times))
                for r, t in enumerate(times):
                    rank_loads[r].append((t[1] - t[0]) / 1e9)
            if gpus:  # again after the bench: the faster of the two is kept (conservative ratios)
                again = per_gpu_baselines(ranks, tp, max(3, args.reps))
                baselines = {
                    k: min(v, again[k]) if isinstance(v, float) else [min(a, b) for a, b in zip(v, again[k])]
                    for k, v in baselines.items()
                }
            exact = exact and all(not v["bad_layers"] for v in ranks.all("verify"))
            client.release(lease.lease_id)
        return {
            "tp": tp,
            "ok": all(visible) and exact,
            "visible_ok": all(visible),
            "exact": exact,
            "entries": ranks.setup[0]["entries"],
            "save_s": statistics.median(saves),
            "load_s": statistics.median(loads),
            "nbytes": n * shape.layers * shape.page(1),
            "save_runs": saves,
            "load_runs": loads,
            "rank_save_s": [statistics.median(x) for x in rank_saves],
            "rank_load_s": [statistics.median(x) for x in rank_loads],
            "devices": [s["device"] for s in ranks.setup],
            "baselines": baselines,
            "pools": node_pools(endpoint),
        }
    finally:
        ranks.stop()


def per_gpu_baselines(ranks: Ranks, tp: int, reps: int) -> dict:
    """Each rank's contiguous copy of its share: alone (one GPU at a time) and together (all at once), seconds.

    Per rank: the fastest repetition. Together, in aggregate: the fastest repetition from the first rank's start to
    the last rank's end."""
    alone = [ranks.one(r, "baseline", (reps, False)) for r in range(tp)]
    together = ranks.all("baseline", (reps, True))
    out = {}
    for d in ("h2d", "d2h"):
        out[f"alone_{d}"] = [min(t1 - t0 for t0, t1 in a[d]) / 1e9 for a in alone]
        out[f"together_{d}"] = [min(t1 - t0 for t0, t1 in a[d]) / 1e9 for a in together]
        per_rep = zip(*(a[d] for a in together))
        out[f"together_{d}_aggregate"] = min(aggregate_s(list(rep)) for rep in per_rep)
    return out


def node_pools(endpoint: str) -> list:
    """The node's pools from Health: (pool, NUMA node, used bytes, capacity bytes, GPU UUIDs)."""
    try:
        with FabricClient(endpoint, timeout_s=5) as fabric:
            health = fabric.health()
    except Exception:  # noqa: BLE001 - optional in the report
        return []
    return [(p.pool, p.numa_node, p.used_bytes, p.capacity_bytes, list(p.gpus)) for p in health.pools]


def pool_of(device: str, pools: list) -> str:
    """Which pool serves a rank's device: the one naming its GPU; with one pool, that pool."""

    def canon(u: str) -> str:
        u = u.strip().lower()
        return u.removeprefix("gpu-").replace("-", "")

    for pool, node, _used, _cap, gpus in pools:
        if any(canon(g) == canon(device) for g in gpus):
            return f"{pool} (NUMA node {node})"
    if len(pools) == 1:
        return "0 (the one pool)"
    return "?"


def machine_facts(gpus: list[int], device: str) -> list[str]:
    """What a result file needs about the machine: GPUs, driver, topology, each GPU's NUMA node."""

    def run(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            return f"({' '.join(cmd)}: {e})"

    lines = []
    if device != "cuda":
        lines.append(f"stand-in GPUs {gpus}: shared-memory ranks, host memcpy baselines (no GPU)")
    else:
        query = "--query-gpu=index,name,driver_version,pci.bus_id,pcie.link.gen.current,pcie.link.width.current"
        for line in run(["nvidia-smi", query, "--format=csv,noheader"]).splitlines():
            fields = [f.strip() for f in line.split(",")]
            numa = "?"
            if len(fields) >= 4:
                bdf = fields[3].lower()[-12:]  # nvidia-smi: 00000000:3B:00.0; sysfs: 0000:3b:00.0
                with contextlib.suppress(OSError):
                    numa = Path(f"/sys/bus/pci/devices/{bdf}/numa_node").read_text().strip()
            lines.append(f"GPU {line} | NUMA node {numa}")
        lines.append("nvidia-smi topo -m:")
        lines += ["    " + x for x in run(["nvidia-smi", "topo", "-m"]).splitlines()]
    nodes = sorted(p.name for p in Path("/sys/devices/system/node").glob("node[0-9]*"))
    lines.append(f"host NUMA nodes: {', '.join(nodes) or 'none listed'}")
    return lines


def report_gpus(say, r: dict, gpus: list[int], shape: Shape) -> bool:
    """The per-rank and aggregate table of a --gpus run; True when every rank met the 90% goal both ways."""
    b, tp = r["baselines"], r["tp"]
    share = r["nbytes"] / tp
    say()
    say(f"One rank per GPU: TP {tp} on GPUs {gpus}, {share / 2**20:.1f} MiB per rank per save or load")
    say(
        "pools (Health): "
        + (
            "; ".join(
                f"pool {p} NUMA node {nd}: {u / 2**20:.0f} of {c / 2**20:.0f} MiB used, GPUs {g or 'all'}"
                for p, nd, u, c, g in r["pools"]
            )
            or "not reported"
        )
    )
    say()
    say(
        "| rank | GPU | pool | save ms | save GB/s | vs alone | vs together | load ms | load GB/s | vs alone |"
        " vs together |"
    )
    say("|---|---|---|---|---|---|---|---|---|---|---|")
    met = True
    for k in range(tp):
        s, lo = r["rank_save_s"][k], r["rank_load_s"][k]
        sa, st = b["alone_d2h"][k] / s, b["together_d2h"][k] / s
        la, lt = b["alone_h2d"][k] / lo, b["together_h2d"][k] / lo
        met = met and sa >= 0.9 and la >= 0.9
        say(
            f"| {k} | {gpus[k]} | {pool_of(r['devices'][k], r['pools'])} | {s * 1e3:.2f} | {share / s / 1e9:.1f} |"
            f" {100 * sa:.1f}% | {100 * st:.1f}% | {lo * 1e3:.2f} | {share / lo / 1e9:.1f} | {100 * la:.1f}% |"
            f" {100 * lt:.1f}% |"
        )
    sa_agg = b["together_d2h_aggregate"] / r["save_s"]
    la_agg = b["together_h2d_aggregate"] / r["load_s"]
    say(
        f"| all | {','.join(map(str, gpus))} | | {r['save_s'] * 1e3:.2f} | {r['nbytes'] / r['save_s'] / 1e9:.1f} | |"
        f" {100 * sa_agg:.1f}% | {r['load_s'] * 1e3:.2f} | {r['nbytes'] / r['load_s'] / 1e9:.1f} | |"
        f" {100 * la_agg:.1f}% |"
    )
    say()
    for k in range(tp):
        say(
            f"GPU {gpus[k]} own contiguous copy of {share / 2**20:.1f} MiB: alone to device"
            f" {share / b['alone_h2d'][k] / 1e9:.1f} GB/s, to host {share / b['alone_d2h'][k] / 1e9:.1f} GB/s;"
            f" together to device {share / b['together_h2d'][k] / 1e9:.1f} GB/s,"
            f" to host {share / b['together_d2h'][k] / 1e9:.1f} GB/s"
        )
    say(
        f"all GPUs together, aggregate: to device {r['nbytes'] / b['together_h2d_aggregate'] / 1e9:.1f} GB/s,"
        f" to host {r['nbytes'] / b['together_d2h_aggregate'] / 1e9:.1f} GB/s"
    )
    say(f"goal >= 90% per rank against its GPU's own copy alone, both directions: {'MET' if met else 'NOT MET'}")
    return met


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(args) -> tuple[subprocess.Popen, str, str]:
    grpc_port, metrics_port = free_port(), free_port()
    node_args = [
        "node",
        "--pool-size",
        args.pool_size,
        "--addr",
        f"127.0.0.1:{grpc_port}",
    ]
    node_args += [
        "--cluster-port",
        str(free_port()),
        "--metrics-port",
        str(metrics_port),
    ]
    if args.device == "cuda":
        node_args += ["--devices", ",".join(map(str, args.gpu_list))] if args.gpu_list else []
        node_args += [] if args.gpu_list else ["--device", str(args.cuda_device)]
    if args.java:
        flags = [
            "--enable-native-access=ALL-UNNAMED",
            "--sun-misc-unsafe-memory-access=allow",
            *args.jvm_opt,
        ]
        cmd = [
            args.java,
            *flags,
            "-cp",
            args.classpath,
            "io.pegaflow.fabric.cli.Main",
            *node_args,
        ]
    else:
        cmd = [str(ROOT / "pegaflow"), *node_args]
    with open(args.node_log, "w") as log:  # the child keeps its own descriptor
        node = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    endpoint = f"127.0.0.1:{grpc_port}"
    deadline = time.monotonic() + 180
    with FabricClient(endpoint, timeout_s=2) as fabric:
        while time.monotonic() < deadline:
            if node.poll() is not None:
                raise SystemExit(f"node exited with {node.returncode}:\n{Path(args.node_log).read_text()[-4000:]}")
            try:
                fabric.health()
                return node, endpoint, f"http://127.0.0.1:{metrics_port}/metrics"
            except Exception:  # noqa: BLE001 - not up yet: poll until the deadline
                time.sleep(0.2)
    node.kill()
    raise SystemExit(f"node not ready after 180 s:\n{Path(args.node_log).read_text()[-4000:]}")


def stop_node(node: subprocess.Popen, endpoint: str) -> None:
    try:
        with FabricClient(endpoint, timeout_s=2) as fabric:
            fabric.shutdown(fabric.health().node_id, "tp harness done")
        node.wait(timeout=30)
    except Exception:  # noqa: BLE001 - a node that does not stop cleanly is killed
        node.kill()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--tp",
        default="1,2,4,8",
        help="TP sizes, comma-separated (each must divide --kv-heads)",
    )
    p.add_argument(
        "--device",
        choices=["cuda", "cpu"],
        help="default: cuda if torch sees a GPU, else cpu",
    )
    p.add_argument("--cuda-device", type=int, default=0)
    p.add_argument(
        "--gpus",
        help="one rank per GPU, e.g. 0,1,2,3: TP = their number, rank r on the r-th (the node gets --devices ...);"
        " with --device cpu, stand-in ranks",
    )
    p.add_argument(
        "--tokens",
        type=int,
        default=10_000,
        help="tokens moved per save/load, all ranks together",
    )
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--head-size", type=int, default=128)
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--kv-alloc", choices=["layer", "group"], default="layer")
    p.add_argument("--ids", choices=["random", "sorted"], default="random", help="the workers' block ids")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--endpoint", help="use this node (else one is started)")
    p.add_argument(
        "--metrics-url",
        help="with --endpoint: the node's /metrics, for the copy modes in the report",
    )
    p.add_argument("--pool-size", help="default 16gb on a GPU, 256mb on the host")
    p.add_argument("--java", help="java binary for the node; default ./pegaflow")
    p.add_argument("--classpath", default="fabric/target/pegaflow-fabric.jar:fabric/target/lib/*")
    p.add_argument(
        "--jvm-opt",
        action="append",
        default=[],
        help="e.g. -Dpegaflow.cuda.mode=kernel",
    )
    p.add_argument("--node-log", default="/tmp/pegaflow-node-tp-harness.log")
    p.add_argument("--out", help="also write the report here")
    args = p.parse_args(argv)
    if args.device is None:
        try:
            import torch

            args.device = "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            args.device = "cpu"
    args.gpu_list = [int(x) for x in args.gpus.split(",") if x.strip()] if args.gpus else []
    args.tp_sizes = [len(args.gpu_list)] if args.gpu_list else [int(x) for x in args.tp.split(",") if x.strip()]
    for tp in args.tp_sizes:
        if tp < 1 or args.kv_heads % tp:
            p.error(f"TP {tp} does not divide {args.kv_heads} KV heads" + (" (one rank per GPU)" if args.gpus else ""))
    args.blocks = -(-args.tokens // args.block_size)
    args.num_blocks = 2 * args.blocks + 100
    if args.pool_size is None:
        args.pool_size = "16gb" if args.device == "cuda" else "256mb"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    shape = Shape(args.layers, args.kv_heads, args.head_size, args.block_size, 2)
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    nbytes = args.blocks * shape.layers * shape.page(1)
    if args.device == "cuda":
        import torch

        props = torch.cuda.get_device_properties(args.cuda_device)
        query = [
            "nvidia-smi",
            "--query-gpu=driver_version",
            "--format=csv,noheader",
            "-i",
            str(args.cuda_device),
        ]
        driver = subprocess.run(query, capture_output=True, text=True, check=False).stdout.strip()
        say(f"GPU {args.cuda_device}: {props.name}, driver {driver}, torch {torch.__version__}")
    else:
        say("host memory: shared-memory files, the node's host copy engine")
    if args.gpu_list:
        for line in machine_facts(args.gpu_list, args.device):
            say(line)
    say(
        f"KV: {shape.layers} layers x {shape.kv_heads} KV heads x head {shape.head}, {shape.block_size}-token blocks,"
        f" bf16, one allocation per {args.kv_alloc}; {args.blocks} blocks ({args.tokens} tokens) ="
        f" {nbytes / 2**30:.3f} GiB per save or load, all ranks together; block ids {args.ids}"
    )
    node = None
    endpoint, metrics_url = args.endpoint, args.metrics_url
    if endpoint is None:
        node, endpoint, metrics_url = start_node(args)
    ctx = mp.get_context("spawn")
    results = []
    try:
        before = contiguous_reference(args.device, args.cuda_device, nbytes, max(3, args.reps))
        for tp in args.tp_sizes:
            modes_before = copy_modes(metrics_url)
            r = run_tp(args, tp, endpoint, shape, ctx, args.gpu_list or None)
            r["modes"] = modes_between(modes_before, copy_modes(metrics_url))
            results.append(r)
            say(
                f"TP {tp}: {'PASS' if r['ok'] else 'FAIL'} (visible only after the last rank saved: {r['visible_ok']},"
                f" byte-exact: {r['exact']}; {r['entries']} registration entries per rank)"
            )
        after = contiguous_reference(args.device, args.cuda_device, nbytes, max(3, args.reps))
    finally:
        if node is not None:
            stop_node(node, endpoint)
    h2d, d2h = (
        min(before[0], after[0]),
        min(before[1], after[1]),
    )  # the faster reference: conservative ratios
    say()
    say(
        f"contiguous copy of the same {nbytes / 2**30:.3f} GiB: to device {nbytes / h2d / 1e9:.1f} GB/s,"
        f" to host {nbytes / d2h / 1e9:.1f} GB/s"
    )
    say()
    say("| TP | per rank | save ms | save GB/s | save % | load ms | load GB/s | load % | checks |")
    say("|---|---|---|---|---|---|---|---|---|")
    ok = bool(results)
    for r in results:
        ok = ok and r["ok"]
        say(
            f"| {r['tp']} | {r['nbytes'] / r['tp'] / 2**20:.0f} MiB | {r['save_s'] * 1e3:.2f} |"
            f" {r['nbytes'] / r['save_s'] / 1e9:.1f} | {100 * d2h / r['save_s']:.1f}% | {r['load_s'] * 1e3:.2f} |"
            f" {r['nbytes'] / r['load_s'] / 1e9:.1f} | {100 * h2d / r['load_s']:.1f}% |"
            f" {'PASS' if r['ok'] else 'FAIL'} |"
        )
    say()
    for r in results:
        say(f"TP {r['tp']} save runs (ms): {' '.join(f'{x * 1e3:.1f}' for x in r['save_runs'])}")
        say(f"TP {r['tp']} load runs (ms): {' '.join(f'{x * 1e3:.1f}' for x in r['load_runs'])}")
        if r["modes"]:
            say(f"TP {r['tp']} copy modes: {r['modes']}")
    for r in results:
        if args.gpu_list:
            report_gpus(say, r, args.gpu_list, shape)
    if node is not None and args.gpu_list:
        log = Path(args.node_log).read_text(errors="replace").splitlines()
        for line in log:
            if "pool per NUMA node" in line or "one pool serves every GPU" in line or "pinned pool" in line:
                say("node: " + line.strip()[-400:])
    say(f"RESULT: {'PASS' if ok else 'FAIL'}")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
