"""A vLLM-shaped KV cache in a shared-memory file, for host-only nodes, tests and demos.

All layers live one after another in one file (vLLM's layers also share one backing allocation), each a numpy
view with vLLM's shape. ``layer_registrations`` reads the views' real strides and data pointers, exactly as the
CUDA path reads torch tensors, so a test over this class exercises the same stride arithmetic the node trusts.

Not thread-safe: one owner; views handed out keep the mapping busy until dropped (``close`` needs them gone).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from pegaflow import layout as _layout
from pegaflow._proto import engine_pb2
from pegaflow._shmfile import map_file, resolve_shm_path

HOST_DEVICE = "host"  # RegisterContextRequest.device for shared-memory regions

PACKED = "packed"  # FlashAttention/FlashInfer: logical (blocks, heads, block_size, 2*head), physical NHD
KV_PLANES = "kv_planes"  # older backends: (2, blocks, block_size, heads, head), K plane then V plane
LAYOUTS = (PACKED, KV_PLANES)

# The node copies bytes only; numpy needs a dtype of the right width. bf16 has no numpy type: uint16 stands in.
# Keys are also the torch dtype names (as_torch).
_NUMPY_DTYPES = {"bfloat16": np.uint16, "float16": np.float16, "float32": np.float32, "uint8": np.uint8}

SCRIBBLE_BYTE = 0xA5  # what scribble() writes: a load that restores a block is then plain to see


class SharedKVCache:
    """``num_layers`` KV-cache layers of one vLLM worker, backed by one shared-memory file."""

    def __init__(
        self,
        num_layers: int,
        num_blocks: int,
        block_size: int,
        num_kv_heads: int,
        head_size: int,
        *,
        layout: str = PACKED,
        dtype: str = "bfloat16",
        path: str | os.PathLike | None = None,
        block_stride_padding_bytes: int = 0,
        layer_gap_bytes: int = 0,
        create: bool = True,
        layer_names: list[str] | None = None,
    ):
        """Creates (``create=True``, truncating any old file) or opens an existing file of the computed size.

        ``block_stride_padding_bytes`` makes the block stride larger than one block's bytes and
        ``layer_gap_bytes`` leaves a gap after each layer: both are layouts vLLM can hand a connector.
        """
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if dtype not in _NUMPY_DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_NUMPY_DTYPES)}, got {dtype!r}")
        for field, value in [
            ("num_layers", num_layers),
            ("num_blocks", num_blocks),
            ("block_size", block_size),
            ("num_kv_heads", num_kv_heads),
            ("head_size", head_size),
        ]:
            if value <= 0:
                raise ValueError(f"{field} must be > 0, got {value}")
        np_dtype = np.dtype(_NUMPY_DTYPES[dtype])
        for field, value in [
            ("block_stride_padding_bytes", block_stride_padding_bytes),
            ("layer_gap_bytes", layer_gap_bytes),
        ]:
            if value < 0 or value % np_dtype.itemsize:
                raise ValueError(f"{field} must be >= 0 and a multiple of {np_dtype.itemsize} bytes, got {value}")
        if layer_names is not None and len(layer_names) != num_layers:
            raise ValueError(f"layer_names has {len(layer_names)} names for {num_layers} layers")

        self.layout = layout
        self.dtype = dtype
        self.num_layers = num_layers
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.num_kv_heads = num_kv_heads
        self.head_size = head_size
        self.layer_names = list(layer_names or [f"model.layers.{i}.self_attn.attn" for i in range(num_layers)])
        self._np_dtype = np_dtype

        itemsize = np_dtype.itemsize
        if layout == PACKED:
            page_bytes = block_size * num_kv_heads * 2 * head_size * itemsize
            self.block_stride_bytes = page_bytes + block_stride_padding_bytes
            layer_bytes = num_blocks * self.block_stride_bytes
        else:
            page_bytes = block_size * num_kv_heads * head_size * itemsize  # one block of one plane
            self.block_stride_bytes = page_bytes + block_stride_padding_bytes
            layer_bytes = 2 * num_blocks * self.block_stride_bytes
        self.layer_stride_bytes = layer_bytes + layer_gap_bytes
        self.size_bytes = num_layers * self.layer_stride_bytes

        self.path = resolve_shm_path(path)
        self.owner = create
        self._mmap = map_file(self.path, self.size_bytes, create)
        self._bytes = np.frombuffer(self._mmap, dtype=np.uint8)  # whole file; also the base for offsets
        self._layers = [self._layer_view(i) for i in range(num_layers)]

    # ---- views ----

    def _layer_view(self, layer: int) -> np.ndarray:
        """The layer as vLLM shapes it, over the mapping (no copy)."""
        itemsize = self._np_dtype.itemsize
        offset = layer * self.layer_stride_bytes
        h, n, d = self.block_size, self.num_kv_heads, self.head_size
        if self.layout == PACKED:
            physical = np.ndarray(
                (self.num_blocks, h, n, 2 * d),
                dtype=self._np_dtype,
                buffer=self._mmap,
                offset=offset,
                strides=(self.block_stride_bytes, n * 2 * d * itemsize, 2 * d * itemsize, itemsize),
            )
            return physical.transpose(0, 2, 1, 3)  # logical (blocks, heads, block_size, 2*head), memory NHD
        plane_stride = self.num_blocks * self.block_stride_bytes
        return np.ndarray(
            (2, self.num_blocks, h, n, d),
            dtype=self._np_dtype,
            buffer=self._mmap,
            offset=offset,
            strides=(plane_stride, self.block_stride_bytes, n * d * itemsize, d * itemsize, itemsize),
        )

    def layer(self, layer: int) -> np.ndarray:
        """Layer ``layer`` as a numpy view over the file.

        Packed: (num_blocks, num_kv_heads, block_size, 2*head_size), NHD in memory; kv_planes:
        (2, num_blocks, block_size, num_kv_heads, head_size).
        """
        return self._live()[layer]

    def _block_views(self, layer: int, block_id: int) -> list[np.ndarray]:
        view = self.layer(layer)
        return [view[block_id]] if self.layout == PACKED else [view[0, block_id], view[1, block_id]]

    def as_torch(self, layer: int):
        """Layer ``layer`` as a torch tensor over the same memory (torch is optional and imported only here)."""
        try:
            import torch
        except ImportError as e:
            raise RuntimeError("as_torch needs torch, which is not installed (pip install torch)") from e
        view = self.layer(layer)
        # from_numpy keeps the strides; reinterpret the bits as the real dtype (uint16 -> bfloat16 has equal width).
        signed = {1: np.uint8, 2: np.int16, 4: np.int32}[self._np_dtype.itemsize]
        return torch.from_numpy(view.view(signed)).view(getattr(torch, self.dtype))

    # ---- registration ----

    def layer_registrations(self, first_layer_index: int = 0) -> list[engine_pb2.LayerRegistration]:
        """One LayerRegistration per layer, from the views' actual strides and data pointers."""
        views = self._live()
        base_address = self._bytes.__array_interface__["data"][0]
        registrations = []
        for i, view in enumerate(views):
            block_dim = 0 if self.layout == PACKED else 1
            found = _layout.block_layout(view.shape, view.strides, view.itemsize, block_dim=block_dim)
            offset_bytes = view.__array_interface__["data"][0] - base_address
            registrations.append(
                engine_pb2.LayerRegistration(
                    name=self.layer_names[i],
                    layer_index=first_layer_index + i,
                    region=engine_pb2.MemoryRegion(
                        shm=engine_pb2.SharedMemoryRegion(path=str(self.path), offset_bytes=offset_bytes)
                    ),
                    num_blocks=found.num_blocks,
                    block_stride_bytes=found.block_stride_bytes,
                    segments=[
                        engine_pb2.ByteSegment(offset_bytes=s.offset_bytes, length_bytes=s.length_bytes)
                        for s in found.segments
                    ],
                )
            )
        return registrations

    # ---- block contents (for verification) ----

    def block_bytes(self, layer: int, block_id: int) -> bytes:
        """The bytes the node copies for one block of one layer: its segments, concatenated in order."""
        if not 0 <= block_id < self.num_blocks:
            raise ValueError(f"block_id must be in [0, {self.num_blocks}), got {block_id}")
        registration = self.layer_registrations()[layer]
        start = registration.region.shm.offset_bytes + block_id * registration.block_stride_bytes
        return b"".join(
            self._bytes[start + s.offset_bytes : start + s.offset_bytes + s.length_bytes].tobytes()
            for s in registration.segments
        )

    def fill_random(self, block_ids: Iterable[int], seed: int) -> None:
        """Fills the given blocks of every layer with random bytes (reproducible from ``seed``)."""
        rng = np.random.default_rng(seed)
        for block_id in block_ids:
            for layer in range(self.num_layers):
                for view in self._block_views(layer, block_id):
                    raw = view.view(np.uint8)
                    raw[...] = rng.integers(0, 256, size=raw.shape, dtype=np.uint8)

    def scribble(self, block_ids: Iterable[int]) -> None:
        """Overwrites the given blocks of every layer with SCRIBBLE_BYTE, so a later load is visible."""
        for block_id in block_ids:
            for layer in range(self.num_layers):
                for view in self._block_views(layer, block_id):
                    view.view(np.uint8)[...] = SCRIBBLE_BYTE

    # ---- lifetime ----

    def _live(self) -> list[np.ndarray]:
        if self._layers is None:
            raise ValueError(f"SharedKVCache {self.path} is closed")
        return self._layers

    def close(self) -> None:
        """Unmaps the file (the file stays: see ``unlink``). Views obtained from ``layer`` must be dropped first."""
        if self._layers is None:
            return
        self._layers = None
        self._bytes = None
        try:
            self._mmap.close()
        except BufferError as e:
            raise BufferError(f"{self.path}: numpy or torch views of this cache are still alive; drop them") from e

    def unlink(self) -> None:
        """Removes the file; a node that mapped it keeps its mapping until it unmaps."""
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> SharedKVCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        if self.owner:
            self.unlink()
