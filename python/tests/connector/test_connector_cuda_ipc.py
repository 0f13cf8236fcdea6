"""The worker side's CUDA path on a real GPU: vLLM-style KV tensors (layers as views into one allocation) are
described exactly as the connector registers them (layout from strides, CUDA IPC handle + offset), and ANOTHER
process that does not use torch opens the handle with the CUDA driver API and reads and writes blocks at the
registered offsets — what the node's CUDA copy engine will do. Byte-exact both ways.

Skips without a CUDA device (torch with CUDA). ``test_connector_cuda_node.py`` runs the whole connector against a
node with the CUDA copy engine.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")

# The reader: plain ctypes over libcuda (no torch), like the node's FFM binding.
_READER = r"""
import ctypes, json, sys
req = json.loads(sys.stdin.read())
cuda = ctypes.CDLL("libcuda.so.1")
def check(rc, what):
    if rc != 0:
        raise SystemExit(f"{what} failed: CUresult {rc}")
check(cuda.cuInit(0), "cuInit")
dev = ctypes.c_int()
check(cuda.cuDeviceGet(ctypes.byref(dev), 0), "cuDeviceGet")
ctx = ctypes.c_void_p()
check(cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev), "cuDevicePrimaryCtxRetain")
check(cuda.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
class IpcHandle(ctypes.Structure):  # CUipcMemHandle is passed BY VALUE: a struct of 64 bytes
    _fields_ = [("reserved", ctypes.c_char * 64)]
cuda.cuIpcOpenMemHandle_v2.argtypes = [ctypes.POINTER(ctypes.c_uint64), IpcHandle, ctypes.c_uint]
bases = {}
out = {"blocks": []}
for layer in req["layers"]:
    handle = bytes.fromhex(layer["handle"])
    if handle not in bases:
        ptr = ctypes.c_uint64()
        raw = IpcHandle.from_buffer_copy(handle)
        check(cuda.cuIpcOpenMemHandle_v2(ctypes.byref(ptr), raw, 1), "cuIpcOpenMemHandle_v2")
        bases[handle] = ptr.value
    base = bases[handle] + layer["offset"]
    for block in req["blocks"]:
        start = base + block * layer["stride"]
        data = b""
        for off, length in layer["segments"]:
            buf = ctypes.create_string_buffer(length)
            check(cuda.cuMemcpyDtoH_v2(buf, ctypes.c_uint64(start + off), ctypes.c_size_t(length)), "cuMemcpyDtoH_v2")
            data += buf.raw
        out["blocks"].append(data.hex())
        # write the block back with every byte inverted (the load direction)
        at = 0
        for off, length in layer["segments"]:
            src = bytes(255 - b for b in data[at : at + length])
            check(cuda.cuMemcpyHtoD_v2(ctypes.c_uint64(start + off), src, ctypes.c_size_t(length)), "cuMemcpyHtoD_v2")
            at += length
check(cuda.cuCtxSynchronize(), "cuCtxSynchronize")
out["allocations"] = len(bases)
print(json.dumps(out))
"""


def _block_bytes(tensor, block: int, segments, stride: int) -> bytes:
    base = tensor.data_ptr()
    flat = torch.empty(0, dtype=torch.uint8, device=tensor.device).set_(
        tensor.untyped_storage(), 0, (tensor.untyped_storage().nbytes(),)
    )
    start = base - flat.data_ptr() + block * stride
    return b"".join(bytes(flat[start + off : start + off + length].cpu().numpy()) for off, length in segments)


@pytest.mark.parametrize("layout", ["packed", "kv_planes"])
def test_cuda_kv_views_registered_by_ipc_handle_are_byte_exact_from_another_process(layout):
    from pegaflow.vllm.kvlayout import classify, tensor_info
    from pegaflow.vllm.memory import CudaIpcResolver

    layers, blocks, bs, heads, head = 3, 10, 16, 2, 64
    per_layer = blocks * bs * heads * 2 * head * 2  # bf16
    gap = 4096
    allocation = torch.empty(layers * (per_layer + gap) + gap, dtype=torch.uint8, device="cuda")
    views = []
    for i in range(layers):  # vLLM-style: every layer a view into one allocation, at its own offset
        raw = allocation[gap + i * (per_layer + gap) : gap + i * (per_layer + gap) + per_layer]
        if layout == "packed":
            view = raw.view(torch.bfloat16).view(blocks, bs, heads, 2 * head).permute(0, 2, 1, 3)
        else:
            view = raw.view(torch.bfloat16).view(2, blocks, bs, heads, head)
        views.append(view)
    allocation.copy_(torch.randint(0, 256, allocation.shape, dtype=torch.uint8, device="cuda"))
    torch.cuda.synchronize()

    resolver, request = CudaIpcResolver(), {"layers": [], "blocks": [1, 7]}
    keys, expected = set(), []
    for view in views:
        info = tensor_info(view)
        found = classify(info, block_size=bs, num_blocks=blocks, use_mla=False, name="model.layers.0.attn")
        assert found.tag == ("packed-nhd" if layout == "packed" else "kv_planes-nhd")
        segments = [(s.offset_bytes, s.length_bytes) for s in found.block.segments]
        extent = (found.num_blocks - 1) * found.block.block_stride_bytes + max(o + n for o, n in segments)
        placement = resolver.place(info, extent)
        assert placement.device == "GPU-" + str(torch.cuda.get_device_properties(0).uuid)
        keys.add(placement.region_key)
        ipc = placement.region.cuda_ipc
        request["layers"].append(
            {
                "handle": ipc.ipc_handle.hex(),
                "offset": ipc.offset_bytes,
                "stride": found.block.block_stride_bytes,
                "segments": segments,
            }
        )
        for block in request["blocks"]:
            expected.append(_block_bytes(view, block, segments, found.block.block_stride_bytes))
    assert len(keys) == 1  # one allocation: the node opens it once

    reader = subprocess.run(
        [sys.executable, "-c", _READER],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert reader.returncode == 0, reader.stderr + reader.stdout
    answer = json.loads(reader.stdout)
    assert answer["allocations"] == 1
    assert [bytes.fromhex(b) for b in answer["blocks"]] == expected  # the other process read the right bytes
    torch.cuda.synchronize()
    i = 0
    for layer in request["layers"]:  # ... and its writes landed where torch sees them
        for block in request["blocks"]:
            view = views[request["layers"].index(layer)]
            now = _block_bytes(view, block, layer["segments"], layer["stride"])
            assert now == bytes(255 - b for b in expected[i])
            i += 1
