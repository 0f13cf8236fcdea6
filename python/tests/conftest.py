"""Fixtures for the end-to-end tests: real node processes (``pegaflow node``, a JVM each) on loopback ports.

- ``node``: one node for the whole session (pool 256 MiB, partial timeout 1 s); tests on it use their own
  namespaces and clean up their contexts and leases, so they do not see each other.
- ``start_node(pool_size=..., partial_timeout_ms=...)``: a node of its own for one test (stopped after it);
  ``start_module_node`` the same for one test module.
- ``engine``: an EngineClient on the session node.

When the jar is missing, node tests skip ("node not built: run ./pegaflow build"), or fail when
``PEGAFLOW_REQUIRE_NODE=1`` (``./pegaflow test`` sets it). A failing test's report carries the tail of the log of
every node that was running. Tests marked ``timeout(seconds)`` (node tests: 60 s by default) fail with TimeoutError
when they run longer.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from pegaflow.client import EngineClient
from pegaflow_testing.localnode import LocalNode, node_jar_missing

NODE_TEST_TIMEOUT_S = 60.0
SESSION_POOL_SIZE = "256mb"
PARTIAL_TIMEOUT_MS = 1000

_running: list[LocalNode] = []  # every node started by a fixture and not stopped yet


def _require_built_node() -> None:
    missing = node_jar_missing()
    if missing is None:
        return
    if os.environ.get("PEGAFLOW_REQUIRE_NODE") == "1":
        pytest.fail(
            f"node not built: run ./pegaflow build ({missing}); PEGAFLOW_REQUIRE_NODE=1 makes this a failure",
            pytrace=False,
        )
    pytest.skip("node not built: run ./pegaflow build")


class _NodeStarter:
    def __init__(self):
        self.nodes: list[LocalNode] = []

    def __call__(self, pool_size: str = "64mb", partial_timeout_ms: int = PARTIAL_TIMEOUT_MS) -> LocalNode:
        _require_built_node()
        node = LocalNode.start(pool_size=pool_size, partial_timeout_ms=partial_timeout_ms)
        self.nodes.append(node)
        _running.append(node)
        return node

    def forget(self, node: LocalNode) -> None:
        """For a test that killed its node on purpose: reap it and leave it out of the teardown's exit-code check."""
        node.kill()
        self.nodes.remove(node)
        _running.remove(node)
        node.log_path.unlink(missing_ok=True)

    def stop_all(self) -> None:
        """Shutdown over gRPC: every node must exit 0 (a node killed after the grace period fails the teardown)."""
        problems = []
        for node in self.nodes:
            code = node.stop()
            _running.remove(node)
            if code == 0:
                node.log_path.unlink(missing_ok=True)
            else:
                problems.append(f"{node} exited with {code} after Shutdown; log {node.log_path}:\n{node.log_tail()}")
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def node() -> LocalNode:
    """The shared node: 256 MiB pool (16 slabs), partial blocks dropped after 1 s."""
    starter = _NodeStarter()
    yield starter(pool_size=SESSION_POOL_SIZE, partial_timeout_ms=PARTIAL_TIMEOUT_MS)
    starter.stop_all()


@pytest.fixture
def start_node():
    starter = _NodeStarter()
    yield starter
    starter.stop_all()


@pytest.fixture(scope="module")
def start_module_node():
    starter = _NodeStarter()
    yield starter
    starter.stop_all()


@pytest.fixture(scope="session")
def engine(node) -> EngineClient:
    with EngineClient(node.endpoint, timeout_s=10.0) as client:
        yield client


# ---- failure reports carry the node logs ----


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _running:
        for node in _running:
            report.sections.append((f"log tail of {node} ({node.log_path})", node.log_tail(80)))


# ---- per-test timeouts (pytest-timeout is not among our test wheels) ----


def _timeout_s(item) -> float | None:
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        return float(marker.args[0])
    if item.get_closest_marker("node") is not None:
        return NODE_TEST_TIMEOUT_S
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    seconds = _timeout_s(item)
    if (
        seconds is None
        or item.config.pluginmanager.hasplugin("timeout")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def on_alarm(signum, frame):
        raise TimeoutError(f"{item.nodeid} ran longer than its {seconds:.0f} s timeout")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
