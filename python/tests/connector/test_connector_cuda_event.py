"""The save path's CUDA boundary on a real GPU (skips here: no CUDA device): the event wait_for_save records after a
step's kernels returns at once on the forward thread, and the saver thread's wait ends only when those kernels did.
(On CPU, test_connector_worker_faults.py checks that the worker takes this path, with a stand-in for CudaEvents.)"""

from __future__ import annotations

import threading
import time

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")

from pegaflow.vllm.worker import CudaEvents  # noqa: E402 - after the skip: the module needs no GPU, the test does


def _busy_kernels(out: torch.Tensor, seconds: float) -> None:
    """Queues matrix products on the current stream for about ``seconds`` of GPU time, then writes ``out``."""
    a = torch.randn(4096, 4096, device="cuda")
    a @ a  # the first product pays cuBLAS's set-up: keep it out of the calibration
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(10):
        a @ a
    torch.cuda.synchronize()
    one = max((time.perf_counter() - started) / 10, 1e-5)
    for _ in range(max(1, int(seconds / one))):
        a = a @ a
        a /= a.norm()
    out.copy_(torch.full_like(out, 7))


def test_the_saver_waits_for_the_steps_kernels_and_the_forward_does_not():
    out = torch.zeros(1 << 20, dtype=torch.uint8, device="cuda")
    events = CudaEvents()
    _busy_kernels(out, 0.5)
    started = time.perf_counter()
    event = events.record()  # what wait_for_save does on vLLM's forward thread
    recorded_s = time.perf_counter() - started
    waited = {}

    def saver():
        began = time.perf_counter()
        events.wait(event)
        waited["s"] = time.perf_counter() - began
        waited["done"] = event.query()

    thread = threading.Thread(target=saver, name="pegaflow-saver-test")
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert recorded_s < 0.05, f"recording the event took {recorded_s:.3f} s: it waited for the GPU"
    assert waited["done"] and waited["s"] > 0.1, waited  # the saver, not the forward, waited for the kernels
    assert bool((out == 7).all())
