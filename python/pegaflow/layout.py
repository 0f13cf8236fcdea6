"""Block layout of one KV-cache layer, derived from a tensor's shape and byte strides.

Pure arithmetic, no numpy or torch: the shared-memory helper feeds it numpy strides, the CUDA path will feed it
torch strides (times the element size). The node needs, per layer, where block 0 starts, the distance between
blocks and the byte segments of one block; this module computes those and refuses layouts where blocks are not
the outermost dimension (the K/V-planes layout ``(2, num_blocks, ...)`` is the one allowed exception).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

# A layout that scatters one block into more pieces than this is almost certainly a mistake (and slow to copy).
MAX_SEGMENTS = 4096


@dataclass(frozen=True)
class ByteSegment:
    offset_bytes: int  # relative to the block's start
    length_bytes: int


@dataclass(frozen=True)
class BlockLayout:
    num_blocks: int
    block_stride_bytes: int
    segments: tuple[ByteSegment, ...]

    @property
    def block_bytes(self) -> int:
        """Bytes of one block of this layer (what the node copies)."""
        return sum(s.length_bytes for s in self.segments)


def block_layout(
    shape: Sequence[int], strides_bytes: Sequence[int], itemsize_bytes: int, block_dim: int = 0
) -> BlockLayout:
    """Derives the block layout of a strided tensor whose block index is dimension ``block_dim``.

    ``block_dim`` is 0 for ``(num_blocks, ...)`` tensors (including logical views whose other dims are permuted in
    memory, like FlashAttention's NHD), or 1 for K/V planes ``(2, num_blocks, ...)``: then dimension 0 must lie
    outside every block (plane stride >= num_blocks * block stride) and each plane adds its own segments.
    Segment offsets are relative to block 0's first byte, i.e. the tensor's data pointer.
    Raises ValueError, naming the offending dimension, for anything else.
    """
    shape, strides = list(shape), list(strides_bytes)
    if len(shape) != len(strides):
        raise ValueError(f"shape {shape} and strides {strides} differ in rank")
    if block_dim not in (0, 1) or block_dim >= len(shape):
        raise ValueError(f"block_dim must be 0 or 1 and < rank {len(shape)}, got {block_dim}")
    if itemsize_bytes <= 0:
        raise ValueError(f"itemsize_bytes must be > 0, got {itemsize_bytes}")
    if any(n <= 0 for n in shape):
        raise ValueError(f"every dimension must be non-empty, got shape {shape}")
    if any(s < 0 for s in strides):
        raise ValueError(f"negative strides are not supported, got {strides}")

    num_blocks, block_stride = shape[block_dim], strides[block_dim]
    inner = _contiguous_runs(shape[block_dim + 1 :], strides[block_dim + 1 :], itemsize_bytes)
    inner_extent = max(offset + length for offset, length in inner)
    if num_blocks > 1 and block_stride < inner_extent:
        raise ValueError(
            f"blocks are not the outermost dimension: block stride {block_stride} bytes (dim {block_dim}) is "
            f"smaller than the {inner_extent} bytes one block spans"
        )

    runs = inner
    if block_dim == 1:
        planes, plane_stride = shape[0], strides[0]
        blocks_span = num_blocks * block_stride
        if planes > 1 and plane_stride < blocks_span:
            raise ValueError(
                f"dim 0 ({planes} planes) must lie outside the blocks: plane stride {plane_stride} bytes < "
                f"num_blocks * block stride = {blocks_span} bytes"
            )
        runs = [(p * plane_stride + offset, length) for p in range(planes) for offset, length in inner]

    return BlockLayout(
        num_blocks=num_blocks,
        block_stride_bytes=block_stride,
        segments=tuple(ByteSegment(offset, length) for offset, length in runs),
    )


def _contiguous_runs(shape: list[int], strides: list[int], itemsize_bytes: int) -> list[tuple[int, int]]:
    """The byte ranges (offset, length) covered by one strided sub-tensor, sorted and merged."""
    # Size-1 dims move nothing; the order of the rest in memory is their stride order, not their logical order.
    dims = sorted(((n, s) for n, s in zip(shape, strides) if n > 1), key=lambda d: d[1], reverse=True)

    extent = itemsize_bytes  # bytes spanned by the dims already walked, innermost first
    for n, s in reversed(dims):
        if s < extent:
            raise ValueError(f"dimension of size {n} with stride {s} bytes overlaps the {extent} bytes inside it")
        extent = (n - 1) * s + extent

    run_bytes = itemsize_bytes
    while dims and dims[-1][1] == run_bytes:  # innermost dims that continue the run without a gap
        n, _ = dims.pop()
        run_bytes *= n

    count = math.prod(n for n, _ in dims)
    if count > MAX_SEGMENTS:
        raise ValueError(f"one block splits into {count} segments (limit {MAX_SEGMENTS}); layout too fragmented")
    offsets = sorted(
        sum(i * s for i, (_, s) in zip(index, dims)) for index in itertools.product(*(range(n) for n, _ in dims))
    )
    return [(offset, run_bytes) for offset in offsets]
