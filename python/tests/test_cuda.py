"""pegaflow.cuda without a GPU: torch-shaped stand-ins for CUDA tensors and their IPC export."""

from __future__ import annotations

import pytest

from pegaflow import cuda

HANDLE = bytes(range(64))


class FakeDevice:
    type = "cuda"

    def __init__(self, index=0):
        self.index = index

    def __str__(self):
        return f"cuda:{self.index}"


class FakeStorage:
    def __init__(self, handle, size, offset):
        self.handle, self.size, self.offset = handle, size, offset

    def _share_cuda_(self):
        return (0, self.handle, self.size, self.offset, b"ref", 0, b"event", False)


class FakeTensor:
    """A strided view (sizes and strides in elements) into a shared CUDA storage."""

    def __init__(self, storage, shape, stride, storage_offset=0, itemsize=2, device=None, is_cuda=True):
        self._storage, self.shape, self._stride = storage, tuple(shape), tuple(stride)
        self._offset, self._itemsize, self.is_cuda = storage_offset, itemsize, is_cuda
        self.device = device or DEVICE0

    def untyped_storage(self):
        return self._storage

    def stride(self):
        return self._stride

    def storage_offset(self):
        return self._offset

    def element_size(self):
        return self._itemsize

    def dim(self):
        return len(self.shape)


DEVICE0 = FakeDevice(0)


def packed_layer(storage, layer, blocks=16, block_size=16, heads=8, head=128):
    """vLLM's packed layout: logical (blocks, heads, block_size, 2*head), physical (blocks, block_size, heads,
    2*head)."""
    page = block_size * heads * 2 * head
    return FakeTensor(
        storage,
        (blocks, heads, block_size, 2 * head),
        (page, 2 * head, heads * 2 * head, 1),
        storage_offset=layer * blocks * page,
    )


def test_exports_the_64_byte_handle_and_the_offset_inside_the_allocation():
    storage = FakeStorage(b"\x02c" + HANDLE, size=1 << 20, offset=3 << 20)
    t = FakeTensor(storage, (4, 4), (4, 1), storage_offset=100)
    ipc = cuda.ipc_tensor(t)
    assert ipc.ipc_handle == HANDLE
    assert ipc.offset_bytes == (3 << 20) + 200
    assert ipc.allocation_size_bytes == (3 << 20) + (1 << 20)
    assert cuda.ipc_tensor(FakeTensor(FakeStorage(HANDLE, 10, 0), (1,), (1,))).ipc_handle == HANDLE


def test_refuses_expandable_segments_and_odd_handles():
    with pytest.raises(ValueError, match="expandable segment"):
        cuda.ipc_tensor(FakeTensor(FakeStorage(b"\x02e" + HANDLE, 10, 0), (1,), (1,)))
    with pytest.raises(ValueError, match="65-byte IPC handle"):
        cuda.ipc_tensor(FakeTensor(FakeStorage(b"\x02" + HANDLE, 10, 0), (1,), (1,)))
    with pytest.raises(ValueError, match="not a CUDA device"):
        cuda.ipc_tensor(FakeTensor(FakeStorage(HANDLE, 10, 0), (1,), (1,), is_cuda=False))


def test_layers_sharing_an_allocation_share_its_handle():
    storage = FakeStorage(b"\x02c" + HANDLE, size=4 * 16 * 65536, offset=0)
    layers = {f"model.layers.{i}.self_attn.attn": packed_layer(storage, i) for i in range(4)}
    uuid, regs = cuda.layer_registrations(layers, uuid="GPU-x")
    assert uuid == "GPU-x"
    assert [r.layer_index for r in regs] == [0, 1, 2, 3]
    assert {r.region.cuda_ipc.ipc_handle for r in regs} == {HANDLE}
    assert [r.region.cuda_ipc.offset_bytes for r in regs] == [i * 16 * 65536 for i in range(4)]
    for r in regs:
        assert r.num_blocks == 16
        assert r.block_stride_bytes == 65536
        assert [(s.offset_bytes, s.length_bytes) for s in r.segments] == [(0, 65536)]
        assert r.region.cuda_ipc.allocation_size_bytes == 4 * 16 * 65536


def test_kv_planes_layout_is_detected():
    heads, block_size, head, blocks = 2, 4, 8, 10
    plane = blocks * block_size * heads * head
    storage = FakeStorage(HANDLE, size=2 * plane * 2, offset=0)
    t = FakeTensor(
        storage, (2, blocks, block_size, heads, head), (plane, block_size * heads * head, heads * head, head, 1)
    )
    _, (reg,) = cuda.layer_registrations([t], first_layer_index=5, uuid="GPU-x")
    assert reg.layer_index == 5
    assert reg.num_blocks == blocks
    page = block_size * heads * head * 2
    assert [(s.offset_bytes, s.length_bytes) for s in reg.segments] == [(0, page), (plane * 2, page)]


def test_refuses_layers_on_several_gpus():
    a = FakeTensor(FakeStorage(HANDLE, 100, 0), (1,), (1,), device=FakeDevice(0))
    b = FakeTensor(FakeStorage(HANDLE, 100, 0), (1,), (1,), device=FakeDevice(1))
    with pytest.raises(ValueError, match="several devices"):
        cuda.layer_registrations([a, b], uuid="GPU-x")
