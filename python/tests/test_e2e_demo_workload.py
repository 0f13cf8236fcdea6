"""End to end: ``python3 -m pegaflow.demo_workload`` (what ./pegaflow demo runs) against a real node."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pegaflow_testing.localnode import free_port

SUMMARY = re.compile(
    r"^(packed|kv_planes): (\d+) blocks saved, (\d+) hit, (\d+) loaded, (\d+) verified "
    r"\(\d+\.\d MB, save \d+\.\d ms, load \d+\.\d ms\)$"
)


def _run_demo(endpoint: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "pegaflow.demo_workload", "--endpoint", endpoint, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.node
def test_demo_workload_round_trips_both_layouts_and_exits_zero(node):
    done = _run_demo(node.endpoint, "--blocks", "64", "--layers", "8")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [SUMMARY.match(line).group(1) for line in lines] == ["packed", "kv_planes"], done.stdout
    for line in lines:
        assert SUMMARY.match(line).groups()[1:] == ("64",) * 4, line


@pytest.mark.timeout(60)
def test_demo_workload_exits_non_zero_when_no_node_answers():
    done = _run_demo(f"127.0.0.1:{free_port()}", "--blocks", "2", "--layers", "1")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "packed: FAILED: RegisterContext failed: UNAVAILABLE" in done.stdout, done.stdout
