"""Where a KV tensor's memory lives, in the terms the node understands (``MemoryRegion``): the memory resolvers.

The connector asks ``resolver_for(device_type).place(info)`` for each layer's tensor and gets a ``Placement``: the
device (``"host"`` or the GPU's UUID), a key naming the allocation (layers that share one allocation share the key,
and the node opens it once) and the ``MemoryRegion`` with this tensor's offset inside it.

- ``SharedMemoryResolver`` (host tensors, torch CPU or numpy): finds the shared file mapping that holds the data
  pointer in ``/proc/self/maps`` and returns (file path, offset in the file). The node maps the same file. Private or
  anonymous memory cannot be shared with the node and is refused.
- ``CudaIpcResolver`` (CUDA tensors): the allocation's ``cudaIpcMemHandle_t`` from torch's ``_share_cuda_()`` (via
  ``pegaflow.cuda``; VLLM.md gives the format) plus the byte offset, and the GPU's UUID; refuses expandable segments
  (``PYTORCH_CUDA_ALLOC_CONF`` or handle type ``'e'``) and memory that cannot be exported (vLLM's sleep-mode cumem
  allocator). Nodes started without ``--device`` refuse CUDA IPC regions at RegisterContext with
  FAILED_PRECONDITION, which the connector raises from ``register_kv_caches``.

``register_resolver(device_type, resolver)`` replaces a resolver (tests, other accelerators).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from pegaflow._proto import engine_pb2
from pegaflow.vllm.kvlayout import TensorInfo, UnsupportedKVCache

HOST_DEVICE = "host"


@dataclass(frozen=True)
class Placement:
    device: str  # "host" or a GPU UUID
    region_key: tuple  # equal for tensors in one allocation
    region: engine_pb2.MemoryRegion  # this tensor's block 0 inside that allocation
    describe: str  # for logs and errors


class MemoryResolver(Protocol):
    def place(self, info: TensorInfo, extent_bytes: int) -> Placement:
        """Where the ``extent_bytes`` from the tensor's data pointer live; raises UnsupportedKVCache if unshareable."""


@dataclass(frozen=True)
class _Mapping:
    start: int
    end: int
    perms: str
    file_offset: int
    path: str


def _proc_maps() -> list[_Mapping]:
    mappings = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.rstrip("\n").split(maxsplit=5)
            if len(parts) < 6 or not parts[5].startswith("/"):
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            mappings.append(_Mapping(start, end, parts[1], int(parts[2], 16), parts[5]))
    return mappings


class SharedMemoryResolver:
    """Host tensors backed by a shared mapping of a file (e.g. ``pegaflow.shm.SharedKVCache`` in /dev/shm)."""

    def place(self, info: TensorInfo, extent_bytes: int) -> Placement:
        ptr = info.data_ptr
        for m in _proc_maps():
            if not m.start <= ptr < m.end:
                continue
            if m.path.endswith(" (deleted)"):
                raise UnsupportedKVCache(
                    f"host KV tensor at {ptr:#x} lives in {m.path}: the node cannot map a deleted file"
                )
            if "s" not in m.perms:
                raise UnsupportedKVCache(
                    f"host KV tensor at {ptr:#x} lives in a private mapping of {m.path}: the node would not see this"
                    " process's writes; map the file shared (MAP_SHARED)"
                )
            if ptr + extent_bytes > m.end:
                raise UnsupportedKVCache(
                    f"host KV tensor at {ptr:#x} spans {extent_bytes} bytes, past the end of its mapping of {m.path}"
                )
            offset = m.file_offset + (ptr - m.start)
            region = engine_pb2.MemoryRegion(shm=engine_pb2.SharedMemoryRegion(path=m.path, offset_bytes=offset))
            return Placement(HOST_DEVICE, ("shm", m.path), region, f"{m.path}+{offset}")
        raise UnsupportedKVCache(
            f"host KV tensor at {ptr:#x} is not in a shared file mapping (anonymous or private memory): a node can only"
            " reach host KV caches that live in a shared-memory file such as pegaflow.shm.SharedKVCache"
        )


class CudaIpcResolver:
    """CUDA tensors, exported with torch's CUDA IPC handles through ``pegaflow.cuda`` (the node opens each
    allocation once)."""

    def place(self, info: TensorInfo, extent_bytes: int) -> Placement:
        conf = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "") + "," + os.environ.get("PYTORCH_ALLOC_CONF", "")
        if "expandable_segments:true" in conf.replace(" ", "").lower():
            raise UnsupportedKVCache(
                "PYTORCH_CUDA_ALLOC_CONF enables expandable_segments: such memory cannot be shared through"
                " cudaIpcMemHandle_t; unset it (vLLM rejects it with any KV connector anyway)"
            )
        from pegaflow import cuda as _cuda

        try:
            exported = _cuda.ipc_tensor(info.obj)
        except ValueError as e:  # expandable segment (handle type 'e'), unknown handle format
            raise UnsupportedKVCache(f"cannot share the KV cache's CUDA memory with the node: {e}") from e
        except RuntimeError as e:
            raise UnsupportedKVCache(
                f"cannot export the KV cache's CUDA memory ({e}); memory from vLLM's sleep-mode (cumem) allocator or"
                " other non-cudaMalloc memory is not supported"
            ) from e
        if exported.offset_bytes + extent_bytes > exported.allocation_size_bytes:
            raise UnsupportedKVCache("the KV tensor's extent runs past its storage")
        uuid = _cuda.device_uuid(exported.device_index)
        region = engine_pb2.MemoryRegion(
            cuda_ipc=engine_pb2.CudaIpcRegion(
                ipc_handle=exported.ipc_handle,
                allocation_size_bytes=exported.allocation_size_bytes,
                offset_bytes=exported.offset_bytes,
            )
        )
        describe = f"cuda {uuid} allocation {exported.ipc_handle[:8].hex()}..+{exported.offset_bytes}"
        return Placement(uuid, ("cuda", uuid, exported.ipc_handle), region, describe)


_resolvers: dict[str, MemoryResolver] = {"cpu": SharedMemoryResolver(), "cuda": CudaIpcResolver()}


def register_resolver(device_type: str, resolver: MemoryResolver) -> None:
    """Use ``resolver`` for tensors on ``device_type`` ("cpu", "cuda", ...) in this process."""
    _resolvers[device_type] = resolver


def resolver_for(device_type: str) -> MemoryResolver:
    try:
        return _resolvers[device_type]
    except KeyError:
        raise UnsupportedKVCache(
            f"KV caches on {device_type!r} devices are not supported (known: {sorted(_resolvers)})"
        ) from None
