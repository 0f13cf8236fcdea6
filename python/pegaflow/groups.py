"""KV-cache groups registered once: vLLM 0.29+ allocates one tensor per KV-cache group and hands each layer over as a
strided view of it. Where the group's layers are interleaved inside each block (blocks-first layouts such as
``BLNHC``: block b holds layer 0's bytes, then layer 1's, ...), one ``LayerRegistration`` with ``layer_count`` and
``layer_stride_bytes`` stands for all of them, and the node copies a block of all its layers as one run (its pool
slots for one rank are contiguous too).

``coalesce_layer_groups(registrations)`` merges runs of per-layer registrations that are such a group and leaves
everything else as it was. Pure: works on the generated protobuf messages, imports no torch.
"""

from __future__ import annotations

from collections.abc import Iterable

from pegaflow._proto import engine_pb2


def _region_key(region: engine_pb2.MemoryRegion) -> tuple:
    """The allocation a region names, without the layer's offset."""
    if region.HasField("cuda_ipc"):
        return ("cuda", region.cuda_ipc.ipc_handle, region.cuda_ipc.allocation_size_bytes)
    return ("shm", region.shm.path)


def _offset(region: engine_pb2.MemoryRegion) -> int:
    return region.cuda_ipc.offset_bytes if region.HasField("cuda_ipc") else region.shm.offset_bytes


def _same_shape(a: engine_pb2.LayerRegistration, b: engine_pb2.LayerRegistration) -> bool:
    return (
        _region_key(a.region) == _region_key(b.region)
        and a.num_blocks == b.num_blocks
        and a.block_stride_bytes == b.block_stride_bytes
        and a.replicated == b.replicated
        and [(s.offset_bytes, s.length_bytes) for s in a.segments]
        == [(s.offset_bytes, s.length_bytes) for s in b.segments]
    )


def _block_extent(r: engine_pb2.LayerRegistration) -> int:
    return max(s.offset_bytes + s.length_bytes for s in r.segments)


def coalesce_layer_groups(registrations: Iterable[engine_pb2.LayerRegistration]) -> list[engine_pb2.LayerRegistration]:
    """Per-layer registrations with runs of interleaved group layers merged into one entry each.

    A run merges when its layers have consecutive indices, live in one allocation with the same blocks, block stride,
    segments and replication, sit ``layer_stride`` bytes apart (the same for every neighbour, at least one layer's
    block extent), and all lie inside one block stride (``count * layer_stride <= block_stride``): the layers are
    interleaved inside each block. Entries that already are groups are kept as they are. Sorted by layer index.
    """
    ordered = sorted(registrations, key=lambda r: r.layer_index)
    out: list[engine_pb2.LayerRegistration] = []
    i = 0
    while i < len(ordered):
        first = ordered[i]
        j, stride = i + 1, None
        if first.layer_count <= 1:
            while j < len(ordered):
                nxt, prev = ordered[j], ordered[j - 1]
                if nxt.layer_count > 1 or nxt.layer_index != prev.layer_index + 1 or not _same_shape(first, nxt):
                    break
                step = _offset(nxt.region) - _offset(prev.region)
                if stride is None:
                    if step < _block_extent(first):
                        break
                    stride = step
                elif step != stride:
                    break
                if (j - i + 1) * stride > first.block_stride_bytes:
                    break
                j += 1
        if j - i > 1:
            group = engine_pb2.LayerRegistration()
            group.CopyFrom(first)
            last = ordered[j - 1]
            group.name = f"{first.name}..{last.name}".encode()[:256].decode(errors="ignore")
            group.layer_count = j - i
            group.layer_stride_bytes = stride
            out.append(group)
        else:
            out.append(first)
        i = j
    return out


def layers_covered(registrations: Iterable[engine_pb2.LayerRegistration]) -> int:
    """How many layers the entries stand for (a group counts its ``layer_count``)."""
    return sum(max(1, r.layer_count) for r in registrations)
