"""What a vLLM KV-cache tensor looks like to the node: layout tag, blocks, block stride, byte segments.

Read from the tensor's shape and strides at run time (VLLM.md: never hard-code). Shapes understood, with
``nb`` kernel blocks, ``t`` tokens per kernel block, ``h`` KV heads of this rank, ``d`` head size:

==================  =============================  =======================================================
tag prefix           logical shape                  note
==================  =============================  =======================================================
``packed``           ``(nb, h, t, 2*d)``            FlashAttention/FlashInfer now; K = ``[..., :d]``
``kv_planes``        ``(2, nb, t, h, d)``           older backends: a K plane and a V plane
``blocks_kv``        ``(nb, 2, t, h, d)``           K and V inside each block
``mla``              ``(nb, t, latent)``            MLA: identical on every TP rank
==================  =============================  =======================================================

The suffix is the memory order of tokens and heads inside a block: ``nhd`` (token-major, vLLM's default) or
``hnd``. A scheduler block may cover several kernel blocks (``t`` divides the scheduler's block size): then one
node block is that many consecutive kernel blocks. Blocks must be the outermost dimension, except for dimensions
that lie wholly outside the blocks (the K/V planes, or KV heads in vLLM's ``LHBNC``): each adds its own segments;
anything else raises ``UnsupportedKVCache`` naming the layer.

vLLM 0.29 and later (``VLLM_LAYOUTS``): one allocation per KV-cache group, the logical axes ``[L, B, H, N, C]``
(layer, block, KV head, token, K and V packed in the content) in one of six physical orders named by
``CacheConfig.kv_cache_layout``. Each layer is handed over as a strided ``(nb, h, t, 2*d)`` view of the group's
allocation (at its own offset, with a block stride that may span every layer): the ``packed`` shape above, so each
is registered as a region of that allocation with its offset, block stride and segments. The name decides the tag:
token-major inside a layer's block (``...NHC``) is ``packed-nhd``, head-major (``...HNC``) ``packed-hnd``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pegaflow import layout as _layout

LAYOUT_TAGS = (
    "packed-nhd",
    "packed-hnd",
    "kv_planes-nhd",
    "kv_planes-hnd",
    "blocks_kv-nhd",
    "blocks_kv-hnd",
    "mla",
)


# vLLM's standardized layout names (CacheConfig.kv_cache_layout, vLLM 0.29+) -> the tag of the bytes one block of one
# layer holds. Names outside this table are refused: a new layout must be understood before blocks are shared.
VLLM_LAYOUTS = {
    "LBNHC": "packed-nhd",  # vLLM's default: layers outermost, token-major blocks
    "BLNHC": "packed-nhd",  # blocks outermost: a block's layers side by side
    "LBHNC": "packed-hnd",
    "BLHNC": "packed-hnd",
    "BHLNC": "packed-hnd",  # blocks, then heads, then layers: a layer's block is one segment per head
    "LHBNC": "packed-hnd",  # heads outside the blocks: a layer's block is one segment per head plane
}


def vllm_layout_name(value) -> str | None:
    """The standardized name of ``CacheConfig.kv_cache_layout`` (an enum member or its name), or None if unset."""
    if value is None:
        return None
    return str(getattr(value, "name", value)).strip()


class UnsupportedKVCache(ValueError):
    """A KV-cache tensor or its memory that the connector cannot register (the message says why and what to do)."""


@dataclass(frozen=True)
class TensorInfo:
    """A tensor's geometry and memory, read from torch or numpy without caring which."""

    shape: tuple[int, ...]
    strides_bytes: tuple[int, ...]
    itemsize: int
    data_ptr: int
    device_type: str  # "cpu" or "cuda"
    device_index: int | None
    dtype: str
    obj: Any  # the tensor itself (the CUDA resolver needs its storage)

    @property
    def extent_bytes(self) -> int:
        """Bytes from the first element to one past the last."""
        return sum((n - 1) * s for n, s in zip(self.shape, self.strides_bytes)) + self.itemsize


def tensor_info(tensor) -> TensorInfo:
    """Geometry of a torch tensor or a numpy array."""
    if hasattr(tensor, "data_ptr") and hasattr(tensor, "element_size"):  # torch
        itemsize = int(tensor.element_size())
        device = tensor.device
        return TensorInfo(
            shape=tuple(int(n) for n in tensor.shape),
            strides_bytes=tuple(int(s) * itemsize for s in tensor.stride()),
            itemsize=itemsize,
            data_ptr=int(tensor.data_ptr()),
            device_type=str(device.type),
            device_index=device.index,
            dtype=str(tensor.dtype).removeprefix("torch."),
            obj=tensor,
        )
    if hasattr(tensor, "__array_interface__"):  # numpy
        return TensorInfo(
            shape=tuple(int(n) for n in tensor.shape),
            strides_bytes=tuple(int(s) for s in tensor.strides),
            itemsize=int(tensor.itemsize),
            data_ptr=int(tensor.__array_interface__["data"][0]),
            device_type="cpu",
            device_index=None,
            dtype=str(tensor.dtype),
            obj=tensor,
        )
    raise UnsupportedKVCache(f"a KV cache must be a torch tensor or a numpy array, got {type(tensor).__name__}")


@dataclass(frozen=True)
class LayerLayout:
    tag: str
    num_blocks: int  # scheduler blocks (node blocks)
    kernel_blocks_per_block: int
    kv_heads: int  # this rank's heads (1 for MLA)
    block: _layout.BlockLayout  # stride and segments of one scheduler block, relative to the tensor's data pointer

    @property
    def block_bytes(self) -> int:
        return self.block.block_bytes


def classify(
    info: TensorInfo,
    *,
    block_size: int,
    num_blocks: int | None,
    use_mla: bool,
    name: str,
    vllm_layout: str | None = None,
) -> LayerLayout:
    """The layout of one layer's KV tensor. ``num_blocks`` (from vLLM's KVCacheConfig, if known) settles the
    ``(2, nb, ...)`` vs ``(nb, 2, ...)`` question when both dims are 2; ``vllm_layout`` (vLLM's standardized name)
    only goes into the messages."""
    shape, strides = info.shape, info.strides_bytes
    named = f", vLLM layout {vllm_layout}" if vllm_layout else ""
    where = f"KV cache of layer {name!r} (shape {list(shape)}, byte strides {list(strides)}{named})"
    rank = len(shape)
    if use_mla and rank == 4 and shape[1] == 1:  # vLLM 0.29's [B, H=1, N, C] view of a latent cache
        shape, strides = (shape[0], *shape[2:]), (strides[0], *strides[2:])
        rank = 3
    if use_mla:
        if rank != 3:
            raise UnsupportedKVCache(f"{where}: an MLA cache must be (num_blocks, block_size, latent_dim)")
        kind, block_dim, token_dim, head_dim = "mla", 0, 1, None
    elif rank == 4:
        kind, block_dim, token_dim, head_dim = "packed", 0, 2, 1
    elif rank == 5:
        planes_first = shape[0] == 2 and (num_blocks is None or shape[1] == num_blocks)
        kv_inside = shape[1] == 2 and (num_blocks is None or shape[0] == num_blocks)
        if planes_first and kv_inside:
            raise UnsupportedKVCache(
                f"{where}: cannot tell (2, num_blocks, ...) from (num_blocks, 2, ...) without KVCacheConfig.num_blocks"
            )
        if planes_first:
            kind, block_dim, token_dim, head_dim = "kv_planes", 1, 2, 3
        elif kv_inside:
            kind, block_dim, token_dim, head_dim = "blocks_kv", 0, 2, 3
        else:
            raise UnsupportedKVCache(f"{where}: a 5-dim cache must be (2, num_blocks, ...) or (num_blocks, 2, ...)")
    else:
        raise UnsupportedKVCache(
            f"{where}: expected (num_blocks, kv_heads, block_size, 2*head_size), (2, num_blocks, block_size, kv_heads,"
            " head_size), (num_blocks, 2, block_size, kv_heads, head_size) or, for MLA, (num_blocks, block_size,"
            " latent)"
        )
    if strides[-1] != info.itemsize:
        raise UnsupportedKVCache(f"{where}: the last dimension must be contiguous")

    if kind == "mla":
        tag = "mla"
        kv_heads = 1
    else:
        kv_heads = shape[head_dim]
        if shape[head_dim] == 1 or shape[token_dim] == 1:
            order = "nhd"  # one of them is a single element: both orders are the same bytes
        else:
            order = "nhd" if strides[token_dim] > strides[head_dim] else "hnd"
        tag = f"{kind}-{order}"

    kernel_block = shape[token_dim]
    if kernel_block > block_size or block_size % kernel_block:
        raise UnsupportedKVCache(
            f"{where}: {kernel_block} tokens per kernel block does not divide the scheduler block size {block_size}"
        )
    per_block = block_size // kernel_block
    kernel_blocks = shape[block_dim]
    if num_blocks is not None and kernel_blocks not in (num_blocks, num_blocks * per_block):
        raise UnsupportedKVCache(
            f"{where}: {kernel_blocks} blocks in dim {block_dim}, but KVCacheConfig has {num_blocks} blocks"
        )
    if kernel_blocks % per_block:
        raise UnsupportedKVCache(f"{where}: {kernel_blocks} kernel blocks are not a multiple of {per_block}")

    if kind == "packed" and shape[1] > 1 and strides[1] > strides[0]:
        # KV heads outside the blocks (vLLM's LHBNC): like the K/V planes, each head is a plane of all blocks.
        shape, strides, block_dim = (shape[1], shape[0], *shape[2:]), (strides[1], strides[0], *strides[2:]), 1

    # One scheduler block = per_block consecutive kernel blocks: split the block dim into (blocks, per_block).
    shape2 = list(shape)
    strides2 = list(strides)
    shape2[block_dim : block_dim + 1] = [kernel_blocks // per_block, per_block]
    strides2[block_dim : block_dim + 1] = [strides[block_dim] * per_block, strides[block_dim]]
    try:
        found = _layout.block_layout(shape2, strides2, info.itemsize, block_dim=block_dim)
    except ValueError as e:
        raise UnsupportedKVCache(f"{where}: {e}") from e
    return LayerLayout(
        tag=tag, num_blocks=found.num_blocks, kernel_blocks_per_block=per_block, kv_heads=kv_heads, block=found
    )
