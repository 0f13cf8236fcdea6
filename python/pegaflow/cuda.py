"""CUDA IPC registration of torch KV-cache tensors: what a vLLM worker sends a node started with ``--device``.

Each layer is registered as (the 64-byte ``cudaIpcMemHandle_t`` of its allocation, the byte offset of the layer's
block 0 in that allocation, the block layout read from its strides). Layers that are views into one allocation
carry the same handle: the node opens each allocation once. torch is imported lazily, only by these functions.

Refused, with the reason: tensors not on a CUDA device, tensors on different GPUs, memory from expandable segments
(``PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True``: torch exports those as a different handle kind), layouts
where blocks are not the outermost dimension (see ``pegaflow.layout``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pegaflow import layout as _layout

IPC_HANDLE_BYTES = 64


@dataclass(frozen=True)
class CudaIpcTensor:
    """Where one tensor lives for another process: its allocation's handle and its offset inside it."""

    ipc_handle: bytes  # the 64-byte cudaIpcMemHandle_t of the allocation base
    allocation_size_bytes: int  # bytes known to exist from the allocation base (storage offset + storage size)
    offset_bytes: int  # the tensor's first element, from the allocation base
    device_index: int


def device_uuid(device=None) -> str:
    """The GPU's UUID as the node compares it (``GPU-xxxxxxxx-...``); ``device`` is an index, torch.device or None."""
    import torch

    index = torch.cuda.current_device() if device is None else torch.device("cuda", device).index
    if index is None:
        index = torch.cuda.current_device()
    return "GPU-" + str(torch.cuda.get_device_properties(index).uuid)


def ipc_tensor(tensor) -> CudaIpcTensor:
    """Exports ``tensor``'s allocation through torch's CUDA IPC (``untyped_storage()._share_cuda_()``)."""
    if not tensor.is_cuda:
        raise ValueError(f"tensor is on {tensor.device}, not a CUDA device")
    storage = tensor.untyped_storage()
    shared = storage._share_cuda_()
    # (device, handle, storage_size_bytes, storage_offset_bytes, ref_counter_handle, ref_counter_offset,
    #  event_handle, event_sync_required)
    handle, storage_size, storage_offset = shared[1], shared[2], shared[3]
    if len(handle) == IPC_HANDLE_BYTES + 2:
        kind = chr(handle[1])
        if kind == "e":
            raise ValueError(
                "the tensor lives in an expandable segment (PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True), "
                "which cannot be shared as a cudaIpcMemHandle_t; start the worker without expandable segments"
            )
        if kind != "c":
            raise ValueError(f"unknown torch CUDA IPC handle kind {kind!r} (expected 'c')")
        raw = bytes(handle[2 : 2 + IPC_HANDLE_BYTES])
    elif len(handle) == IPC_HANDLE_BYTES:
        raw = bytes(handle)
    else:
        raise ValueError(f"torch returned a {len(handle)}-byte IPC handle; expected 66 (versioned) or 64")
    offset = storage_offset + tensor.storage_offset() * tensor.element_size()
    return CudaIpcTensor(
        ipc_handle=raw,
        allocation_size_bytes=storage_offset + storage_size,
        offset_bytes=offset,
        device_index=tensor.device.index,
    )


def layer_registrations(
    kv_caches: Mapping[str, object] | Sequence[object],
    first_layer_index: int = 0,
    block_dim: int | None = None,
    *,
    uuid: str | None = None,
):
    """One ``LayerRegistration`` per layer tensor (in order), and the device UUID to register them with.

    ``kv_caches`` is vLLM's ``{layer_name: tensor}`` (in layer order) or a list of tensors. ``block_dim`` is 0 for
    ``(num_blocks, ...)`` layouts and 1 for K/V planes ``(2, num_blocks, ...)``; None guesses: 1 when the first
    dimension is 2 and the tensor has 5 dimensions, else 0. Returns ``(device_uuid, [LayerRegistration, ...])``;
    ``uuid`` skips asking torch for the device's UUID.
    """
    from pegaflow._proto import engine_pb2

    if isinstance(kv_caches, Mapping):
        names, tensors = list(kv_caches.keys()), list(kv_caches.values())
    else:
        tensors = list(kv_caches)
        names = [f"layer.{first_layer_index + i}" for i in range(len(tensors))]
    if not tensors:
        raise ValueError("no KV-cache tensors to register")
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"KV-cache tensors live on several devices {sorted(map(str, devices))}; register per GPU")
    registrations = []
    for i, (name, tensor) in enumerate(zip(names, tensors)):
        dim = block_dim
        if dim is None:
            dim = 1 if tensor.dim() == 5 and tensor.shape[0] == 2 else 0
        itemsize = tensor.element_size()
        found = _layout.block_layout(
            tuple(tensor.shape), tuple(s * itemsize for s in tensor.stride()), itemsize, block_dim=dim
        )
        ipc = ipc_tensor(tensor)
        registrations.append(
            engine_pb2.LayerRegistration(
                name=name,
                layer_index=first_layer_index + i,
                region=engine_pb2.MemoryRegion(
                    cuda_ipc=engine_pb2.CudaIpcRegion(
                        ipc_handle=ipc.ipc_handle,
                        allocation_size_bytes=ipc.allocation_size_bytes,
                        offset_bytes=ipc.offset_bytes,
                    )
                ),
                num_blocks=found.num_blocks,
                block_stride_bytes=found.block_stride_bytes,
                segments=[
                    engine_pb2.ByteSegment(offset_bytes=s.offset_bytes, length_bytes=s.length_bytes)
                    for s in found.segments
                ],
            )
        )
    return (uuid or device_uuid(next(iter(devices)).index)), registrations
