"""bench/gpu/tp_harness.py on the host stand-in: TP ranks as processes sharing one node, a tiny case."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.node

HARNESS = Path(__file__).resolve().parents[2] / "bench" / "gpu" / "tp_harness.py"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kv_alloc", ["layer", "group"])
def test_tp_ranks_as_processes_save_and_load_byte_exact_and_blocks_seal_after_the_last_rank(node, kv_alloc):
    args = ["--device", "cpu", "--endpoint", node.endpoint, "--metrics-url", node.metrics_url, "--tp", "1,2,4"]
    args += ["--tokens", "256", "--layers", "4", "--reps", "1", "--warmup", "0", "--kv-alloc", kv_alloc]
    result = subprocess.run(
        [sys.executable, str(HARNESS), *args], capture_output=True, text=True, timeout=170, check=False
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    for tp in (1, 2, 4):
        entries = 1 if kv_alloc == "group" else 4  # a blocks-first group is registered once
        assert (
            f"TP {tp}: PASS (visible only after the last rank saved: True, byte-exact: True; {entries} registration"
            in report
        ), report
    assert "RESULT: PASS" in report


@pytest.mark.timeout(180)
def test_one_rank_per_stand_in_gpu_reports_per_rank_ratios_against_each_gpus_own_copy(node):
    args = ["--device", "cpu", "--endpoint", node.endpoint, "--metrics-url", node.metrics_url, "--gpus", "0,1"]
    args += ["--tokens", "256", "--layers", "4", "--reps", "1", "--warmup", "0"]
    result = subprocess.run(
        [sys.executable, str(HARNESS), *args], capture_output=True, text=True, timeout=170, check=False
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "TP 2: PASS (visible only after the last rank saved: True, byte-exact: True" in report, report
    assert "One rank per GPU: TP 2 on GPUs [0, 1]" in report, report
    for rank in (0, 1):
        assert f"| {rank} | {rank} | 0 (the one pool) |" in report, report
    assert "| all | 0,1 |" in report, report
    assert "own contiguous copy" in report and "all GPUs together, aggregate" in report, report
    assert "pools (Health): pool 0 NUMA node -1" in report, report
    assert "RESULT: PASS" in report
