#!/usr/bin/env python3
"""How fast the GPU's copy engines move KV blocks in different DMA shapes, no SMs involved.

The question behind it ([7 of 12]): a TP-1 per-layer layout moves 64 KiB runs (one block of one layer), and one
batched DMA per run reaches only ~84% of a contiguous copy. Can the same bytes move faster as 2D copies (one DMA
descriptor with many rows: a pitch on each side), which the copy engine walks in hardware?

Layout (Llama-3.1-8B TP 1, bf16, 16-token blocks): 32 layers, one allocation per layer of BLOCKS x 64 KiB on the GPU;
a pinned pool of 2 MiB blocks, each holding the block's 32 layers one after another (PegaFlow's rank-major pool
block). 625 blocks = 10K tokens = 1.22 GiB per copy.

Shapes timed, both directions, each against one contiguous copy of the same bytes in the same run:
  contiguous   one cuMemcpyAsync of 1.22 GiB (the baseline)
  2d-layer     one 2D copy per layer: rows = blocks, 64 KiB wide, GPU pitch 64 KiB, pool pitch 2 MiB
               (valid where the GPU block ids and the pool blocks both run in sequence)
  2d-runs16    the same cut into 2D copies of 16 rows (runs of 16 consecutive ids, as a fragmented cache gives)
  2d-group     layer-major single allocation (vLLM 0.29 group, layers strided): one 2D copy per block, rows = layers
  1d-batch     one cuMemcpyBatchAsync entry per 64 KiB run, 4096 per call, layer by layer (GPU side in sequence)
  1d-batch-rnd the same with random GPU block ids (a random permutation, as vLLM's free list gives after churn)
  1d-rnd-2s    1d-batch-rnd split over 2 (and 4: 1d-rnd-4s) streams, joined by events: do more copy engines hide
               the per-run cost?
  1d-batch-bm  the same entries block by block (each block's 32 layers, pool side in sequence: the node's order)
  2db-runs16   2d-runs16 as cuMemcpy3DBatchAsync ops (one call), and 2db-layer, 2db-group likewise
  1d-each      one cuMemcpyAsync per 64 KiB run (what a naive path does; for scale)
The pool is torch's pinned allocation (cudaHostAlloc), or with --pool register what PegaFlow's node does: anonymous
memory with transparent huge pages, populated, then cuMemHostRegister(PORTABLE | DEVICEMAP).
Run: python3 bench/gpu/dma_shapes.py [--blocks 625] [--reps 5] [--pool torch|register]
"""

from __future__ import annotations

import argparse
import ctypes
import random
import statistics

import torch

CU_MEMORYTYPE_UNIFIED = 4
KIB = 1024


class MemcpyAttributes(ctypes.Structure):
    _fields_ = [
        ("srcAccessOrder", ctypes.c_int),
        ("srcLocType", ctypes.c_int),
        ("srcLocId", ctypes.c_int),
        ("dstLocType", ctypes.c_int),
        ("dstLocId", ctypes.c_int),
        ("flags", ctypes.c_uint),
    ]


class Operand(ctypes.Structure):
    """CUmemcpy3DOperand with the pointer member of its union (40 bytes)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("ptr", ctypes.c_uint64),
        ("rowLength", ctypes.c_size_t),
        ("layerHeight", ctypes.c_size_t),
        ("locType", ctypes.c_int),
        ("locId", ctypes.c_int),
    ]


class BatchOp3D(ctypes.Structure):
    """CUDA_MEMCPY3D_BATCH_OP (112 bytes)."""

    _fields_ = [
        ("src", Operand),
        ("dst", Operand),
        ("width", ctypes.c_size_t),
        ("height", ctypes.c_size_t),
        ("depth", ctypes.c_size_t),
        ("srcAccessOrder", ctypes.c_int),
        ("flags", ctypes.c_uint),
    ]


class Memcpy2D(ctypes.Structure):
    _fields_ = [
        ("srcXInBytes", ctypes.c_size_t),
        ("srcY", ctypes.c_size_t),
        ("srcMemoryType", ctypes.c_int),
        ("srcHost", ctypes.c_void_p),
        ("srcDevice", ctypes.c_uint64),
        ("srcArray", ctypes.c_void_p),
        ("srcPitch", ctypes.c_size_t),
        ("dstXInBytes", ctypes.c_size_t),
        ("dstY", ctypes.c_size_t),
        ("dstMemoryType", ctypes.c_int),
        ("dstHost", ctypes.c_void_p),
        ("dstDevice", ctypes.c_uint64),
        ("dstArray", ctypes.c_void_p),
        ("dstPitch", ctypes.c_size_t),
        ("WidthInBytes", ctypes.c_size_t),
        ("Height", ctypes.c_size_t),
    ]


def registered_pool(cu, size: int) -> torch.Tensor:
    """Anonymous memory, huge pages advised, populated, pinned with cuMemHostRegister: the node's pool, small."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    two_mib = 2 << 20
    length = (size + two_mib - 1) // two_mib * two_mib
    raw = libc.mmap(None, length + two_mib, 3, 0x22, -1, 0)  # PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS
    if raw in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap")
    at = (raw + two_mib - 1) // two_mib * two_mib
    libc.madvise(at, length, 14)  # MADV_HUGEPAGE
    buf = (ctypes.c_uint8 * length).from_address(at)
    view = torch.frombuffer(buf, dtype=torch.uint8)
    view.fill_(1)  # populate
    cu.cuMemHostRegister_v2.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]
    rc = cu.cuMemHostRegister_v2(at, length, 0x1 | 0x2)  # PORTABLE | DEVICEMAP
    if rc != 0:
        raise RuntimeError(f"cuMemHostRegister_v2 rc={rc}")
    return view[:size]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--blocks", type=int, default=625)
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--run-kib", type=int, default=64, help="bytes of one block of one layer (GPU-side run)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--pool", choices=("torch", "register"), default="torch")
    a = p.parse_args()

    cu = ctypes.CDLL("libcuda.so.1")
    cu.cuMemcpy2DAsync_v2.argtypes = [ctypes.POINTER(Memcpy2D), ctypes.c_void_p]
    cu.cuMemcpyAsync.argtypes = [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_void_p]

    batch = getattr(cu, "cuMemcpyBatchAsync_v2", None)
    if batch is not None:
        batch.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]
        batch.argtypes += [ctypes.c_size_t, ctypes.c_void_p]

    batch3d = getattr(cu, "cuMemcpy3DBatchAsync_v2", None)
    if batch3d is not None:
        batch3d.argtypes = [ctypes.c_size_t, ctypes.c_void_p, ctypes.c_ulonglong, ctypes.c_void_p]
    assert ctypes.sizeof(BatchOp3D) == 112, ctypes.sizeof(BatchOp3D)

    torch.cuda.init()
    dev = torch.device("cuda:0")
    run = a.run_kib * KIB
    pool_block = run * a.layers
    total = pool_block * a.blocks
    cache_blocks = max(a.blocks * 2, 1024)
    layers = [torch.empty(cache_blocks * run, dtype=torch.uint8, device=dev) for _ in range(a.layers)]
    group = torch.empty(a.layers * cache_blocks * run, dtype=torch.uint8, device=dev)  # layer-major, one allocation
    for t in layers:
        t.random_(0, 255)
    group.random_(0, 255)
    pinned = a.pool == "torch"
    pool = torch.empty(total, dtype=torch.uint8).pin_memory() if pinned else registered_pool(cu, total)
    flat = torch.empty(total, dtype=torch.uint8, device=dev)
    stream = torch.cuda.Stream(device=dev)
    sh = ctypes.c_void_p(stream.cuda_stream)
    print(
        f"GPU {torch.cuda.get_device_name(0)}, torch {torch.__version__}; {a.layers} layers x {a.blocks} blocks "
        f"x {a.run_kib} KiB = {total / 2**30:.3f} GiB per copy; pool {a.pool}"
    )

    def memcpy2d(dst: int, dpitch: int, src: int, spitch: int, width: int, height: int) -> None:
        m = Memcpy2D()
        m.srcMemoryType = CU_MEMORYTYPE_UNIFIED
        m.srcDevice = src
        m.srcPitch = spitch
        m.dstMemoryType = CU_MEMORYTYPE_UNIFIED
        m.dstDevice = dst
        m.dstPitch = dpitch
        m.WidthInBytes = width
        m.Height = height
        rc = cu.cuMemcpy2DAsync_v2(ctypes.byref(m), sh)
        if rc != 0:
            raise RuntimeError(f"cuMemcpy2DAsync_v2 rc={rc} (dst {dst:#x} pitch {dpitch}, src {src:#x} pitch {spitch})")

    def memcpy(dst: int, src: int, n: int) -> None:
        rc = cu.cuMemcpyAsync(dst, src, n, sh)
        if rc != 0:
            raise RuntimeError(f"cuMemcpyAsync rc={rc}")

    pool_at = pool.data_ptr()
    lay_at = [t.data_ptr() for t in layers]
    grp_at = group.data_ptr()
    layer_stride = cache_blocks * run

    def timed(fn) -> float:
        ms = []
        for _ in range(a.reps + 1):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            with torch.cuda.stream(stream):
                s.record(stream)
                fn()
                e.record(stream)
            e.synchronize()
            ms.append(s.elapsed_time(e))
        return statistics.median(ms[1:])

    def shapes(save: bool):
        def contiguous():
            if save:
                memcpy(pool_at, flat.data_ptr(), total)
            else:
                memcpy(flat.data_ptr(), pool_at, total)

        def two_d(rows: int):
            def go():
                for layer in range(a.layers):
                    for b0 in range(0, a.blocks, rows):
                        h = min(rows, a.blocks - b0)
                        gpu = lay_at[layer] + b0 * run
                        host = pool_at + b0 * pool_block + layer * run
                        if save:
                            memcpy2d(host, pool_block, gpu, run, run, h)
                        else:
                            memcpy2d(gpu, run, host, pool_block, run, h)

            return go

        def two_d_group():
            for b in range(a.blocks):
                gpu = grp_at + b * run
                host = pool_at + b * pool_block
                if save:
                    memcpy2d(host, run, gpu, layer_stride, run, a.layers)
                else:
                    memcpy2d(gpu, layer_stride, host, run, run, a.layers)

        def one_d_each():
            for layer in range(a.layers):
                for b in range(a.blocks):
                    gpu = lay_at[layer] + b * run
                    host = pool_at + b * pool_block + layer * run
                    if save:
                        memcpy(host, gpu, run)
                    else:
                        memcpy(gpu, host, run)

        n = a.layers * a.blocks
        sizes = (ctypes.c_size_t * n)(*([run] * n))
        attrs = MemcpyAttributes(1, 1 if save else 2, 0, 2 if save else 1, 0, 0)
        idx = (ctypes.c_size_t * 1)(0)
        per = 4096  # entries per cuMemcpyBatchAsync call, as the node's lanes submit them
        u64 = ctypes.sizeof(ctypes.c_uint64)
        sides = [torch.cuda.Stream(device=dev) for _ in range(3)]

        def entries(order, gpu_block):
            """Batch arrays for (layer, block) pairs in ``order``; GPU block ids through ``gpu_block``."""
            dsts, srcs = (ctypes.c_uint64 * n)(), (ctypes.c_uint64 * n)()
            for i, (layer, b) in enumerate(order):
                gpu = lay_at[layer] + gpu_block[b] * run
                host = pool_at + b * pool_block + layer * run
                dsts[i], srcs[i] = (host, gpu) if save else (gpu, host)
            return dsts, srcs

        def batched(arrays, streams: int = 1):
            """One cuMemcpyBatchAsync entry per run, ``per`` a call; split in equal shares over ``streams``."""
            dsts, srcs = arrays

            def submit(at: int, count: int, handle) -> None:
                rc = batch(
                    ctypes.addressof(dsts) + at * u64,
                    ctypes.addressof(srcs) + at * u64,
                    ctypes.addressof(sizes) + at * u64,
                    count,
                    ctypes.byref(attrs),
                    idx,
                    1,
                    handle,
                )
                if rc != 0:
                    raise RuntimeError(f"cuMemcpyBatchAsync_v2 rc={rc}")

            def go():
                share = (n + streams - 1) // streams
                for k in range(streams):
                    on = stream if k == 0 else sides[k - 1]
                    if k > 0:
                        on.wait_stream(stream)
                    end = min(n, (k + 1) * share)
                    for at in range(k * share, end, per):
                        submit(at, min(per, end - at), ctypes.c_void_p(on.cuda_stream))
                for k in range(1, streams):
                    stream.wait_stream(sides[k - 1])

            return go

        in_order = list(range(cache_blocks))
        shuffled = list(range(cache_blocks))
        random.Random(1).shuffle(shuffled)
        layer_major = [(lay, blk) for lay in range(a.layers) for blk in range(a.blocks)]
        block_major = [(lay, blk) for blk in range(a.blocks) for lay in range(a.layers)]
        batched_shapes = []
        if batch is not None:
            rnd = entries(layer_major, shuffled)
            batched_shapes = [
                ("1d-batch-bm", batched(entries(block_major, in_order))),
                ("1d-batch-rnd", batched(rnd)),
                ("1d-rnd-2s", batched(rnd, 2)),
                ("1d-rnd-4s", batched(rnd, 4)),
            ]
            one_d_batch = batched(entries(layer_major, in_order))

        def ops3d(pieces):
            """pieces: (gpu, gpu pitch, host, host pitch, width, rows) -> one cuMemcpy3DBatchAsync call."""
            ops = (BatchOp3D * len(pieces))()
            for op, (gpu, gp, host, hp, width, rows) in zip(ops, pieces, strict=True):
                src, dst = ((gpu, gp, 1), (host, hp, 2)) if save else ((host, hp, 2), (gpu, gp, 1))
                op.src = Operand(1, src[0], src[1], rows, src[2], 0)
                op.dst = Operand(1, dst[0], dst[1], rows, dst[2], 0)
                op.width, op.height, op.depth = width, rows, 1
                op.srcAccessOrder = 1

            def go():
                rc = batch3d(len(ops), ops, 0, sh)
                if rc != 0:
                    raise RuntimeError(f"cuMemcpy3DBatchAsync_v2 rc={rc}")

            return go

        def layer_pieces(rows):
            return [
                (
                    lay_at[layer] + b0 * run,
                    run,
                    pool_at + b0 * pool_block + layer * run,
                    pool_block,
                    run,
                    min(rows, a.blocks - b0),
                )
                for layer in range(a.layers)
                for b0 in range(0, a.blocks, rows)
            ]

        group_pieces = [
            (grp_at + b * run, layer_stride, pool_at + b * pool_block, run, run, a.layers) for b in range(a.blocks)
        ]
        threed = []
        if batch3d is not None:
            threed = [
                ("2db-layer", ops3d(layer_pieces(a.blocks))),
                ("2db-runs16", ops3d(layer_pieces(16))),
                ("2db-runs4", ops3d(layer_pieces(4))),
                ("2db-group", ops3d(group_pieces)),
            ]

        return [
            ("contiguous", contiguous),
            *batched_shapes,
            *threed,
            *([("1d-batch", one_d_batch)] if batch is not None else []),
            ("2d-layer", two_d(a.blocks)),
            ("2d-runs16", two_d(16)),
            ("2d-group", two_d_group),
            ("1d-each", one_d_each),
        ]

    # correctness once per 2D shape: save into a zeroed pool, compare sampled rows with the GPU layout
    def lands(name: str) -> bool:
        fns = dict(shapes(True))
        if name not in fns:
            return True
        pool.zero_()
        with torch.cuda.stream(stream):
            fns[name]()
        stream.synchronize()
        grouped = name.endswith("group")
        return all(
            torch.equal(
                pool[b * pool_block + layer * run : b * pool_block + (layer + 1) * run],
                (group[layer * layer_stride + b * run :][:run] if grouped else layers[layer][b * run :][:run]).cpu(),
            )
            for layer in (0, a.layers // 2, a.layers - 1)
            for b in (0, a.blocks // 3, a.blocks - 1)
        )

    checks = {name: lands(name) for name in ("2d-layer", "2d-group", "2db-runs16", "2db-group", "1d-batch-bm")}
    ok = all(checks.values())
    print(f"check: every sampled row lands where the pool layout says: {checks}")

    print("| shape | save ms | save GB/s | save % | load ms | load GB/s | load % |")
    print("|---|---|---|---|---|---|---|")
    res = {}
    for save in (True, False):
        for name, fn in shapes(save):
            res[(name, save)] = timed(fn)
    for name, _ in shapes(True):
        cells = []
        for save in (True, False):
            ms = res[(name, save)]
            base = res[("contiguous", save)]
            cells += [f"{ms:.2f}", f"{total / ms / 1e6:.1f}", f"{100 * base / ms:.1f}%"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
