"""A PegaFlow node as a child process on loopback: start, wait until SERVING, scrape /metrics, stop.

For tests and benchmarks on one machine (``pegaflow_testing`` is test-only: ``pip install ./python`` does not install
it). ``LocalNode.start()`` runs ``<root>/pegaflow node`` (a separate JVM) on free loopback ports with its log in a
file, and returns once ``Fabric.Health`` says SERVING. ``stop()`` asks the node to shut down over gRPC and kills it if
it has not exited in time.

The node needs the built jar (``./pegaflow build``); ``node_jar_missing()`` says whether it is there, so callers
can skip or fail with a reason instead of letting the launcher start a Maven build.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from pegaflow.client import EngineError, FabricClient

__all__ = [
    "LocalCluster",
    "LocalNode",
    "MetricSample",
    "Metrics",
    "node_jar_missing",
    "repo_root",
]

START_TIMEOUT_S = 60.0  # a cold JVM on 2 busy cores takes 10-20 s


def repo_root() -> Path:
    """The checkout this module lives in (``$PEGAFLOW_ROOT`` if set, as ./pegaflow exports it)."""
    if os.environ.get("PEGAFLOW_ROOT"):
        return Path(os.environ["PEGAFLOW_ROOT"]).resolve()
    return Path(__file__).resolve().parents[2]


def node_jar_missing(root: Path | None = None) -> str | None:
    """None if the node can start without a build, else what is missing."""
    root = root or repo_root()
    jar = root / "fabric" / "target" / "pegaflow-fabric.jar"
    lib = root / "fabric" / "target" / "lib"
    if not jar.is_file():
        return f"{jar} does not exist"
    if not lib.is_dir() or not any(lib.glob("*.jar")):
        return f"{lib} has no dependency jars"
    return None


def free_port() -> int:
    """A loopback port free right now (another process may still take it before the node binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- Prometheus text format (prometheus-client's parser) ----


@dataclass(frozen=True)
class MetricSample:
    name: str
    labels: dict[str, str]
    value: float


class Metrics:
    """One scrape: look samples up by name and (a subset of) labels; ``types`` maps each family to its ``# TYPE``
    (a counter under both its family name and its ``_total`` sample name)."""

    def __init__(self, samples: list[MetricSample], types: dict[str, str] | None = None):
        self.samples = samples
        self.types = types or {}

    @classmethod
    def parse(cls, text: str) -> Metrics:
        """A Prometheus text exposition; raises ValueError where it is not one."""
        samples, types = [], {}
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for sample in family.samples:
                samples.append(MetricSample(sample.name, dict(sample.labels), float(sample.value)))
                if family.type == "counter" and sample.name == family.name + "_total":
                    types[sample.name] = family.type
        return cls(samples, types)

    def names(self) -> set[str]:
        return {s.name for s in self.samples}

    def values(self, name: str, **labels: str) -> list[float]:
        return [
            s.value for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, default: float | None = None, **labels: str) -> float:
        """Sum of the matching samples; ``default`` (or KeyError) if none match."""
        found = self.values(name, **labels)
        if not found:
            if default is not None:
                return default
            raise KeyError(f"no sample {name}{labels or ''} in the scrape")
        return sum(found)


# ---- the node process ----


class LocalNode:
    """One ``pegaflow node`` child process. Use ``LocalNode.start(...)``; ``stop()`` always, or ``with``."""

    def __init__(self, process: subprocess.Popen, grpc_port: int, metrics_port: int, log_path: Path, argv: list[str]):
        self.process = process
        self.endpoint = f"127.0.0.1:{grpc_port}"
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.log_path = log_path
        self.argv = argv

    @classmethod
    def start(
        cls,
        pool_size: str = "64mb",
        partial_timeout_ms: int = 1000,
        log_level: str = "info",
        root: Path | None = None,
        log_dir: str | os.PathLike | None = None,
        timeout_s: float = START_TIMEOUT_S,
    ) -> LocalNode:
        """Starts a single-node cluster on free loopback ports and waits for SERVING (or raises RuntimeError)."""
        root = root or repo_root()
        missing = node_jar_missing(root)
        if missing:
            raise RuntimeError(f"node not built ({missing}): run ./pegaflow build")
        grpc_port, cluster_port, metrics_port = free_port(), free_port(), free_port()
        argv = [
            str(root / "pegaflow"),
            "node",
            "--addr",
            f"127.0.0.1:{grpc_port}",
            "--cluster-port",
            str(cluster_port),
            "--metrics-port",
            str(metrics_port),
            "--pool-size",
            pool_size,
            "--partial-timeout-ms",
            str(partial_timeout_ms),
            "--log-level",
            log_level,
        ]
        node = cls.spawn(argv, grpc_port, metrics_port, root, log_dir)
        try:
            node.wait_serving(timeout_s)
        except BaseException:
            node.kill()
            raise
        return node

    @classmethod
    def spawn(
        cls, argv: list[str], grpc_port: int, metrics_port: int, root: Path, log_dir: str | os.PathLike | None
    ) -> LocalNode:
        """Starts the node process (log in a file) without waiting for it."""
        fd, log_name = tempfile.mkstemp(prefix=f"pegaflow-node-{grpc_port}-", suffix=".log", dir=log_dir)
        with os.fdopen(fd, "wb") as log:
            # Own process group: a kill reaches the JVM even if the launcher script has not exec'd yet.
            process = subprocess.Popen(
                argv, cwd=root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return cls(process, grpc_port, metrics_port, Path(log_name), argv)

    def wait_serving(self, timeout_s: float) -> None:
        from pegaflow._proto import fabric_pb2

        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        with FabricClient(self.endpoint, timeout_s=1.0) as fabric:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"node exited with {self.process.returncode} before serving; log {self.log_path}:\n"
                        + self.log_tail()
                    )
                try:
                    health = fabric.health()
                    if health.status == fabric_pb2.HealthResponse.SERVING:
                        return
                    last = f"status {fabric_pb2.HealthResponse.ServingStatus.Name(health.status)}"
                except EngineError as e:
                    last = f"{e.code.name}: {e.details}"
                time.sleep(0.2)
        raise RuntimeError(
            f"node not SERVING within {timeout_s:.0f} s ({last}); log {self.log_path}:\n" + self.log_tail()
        )

    # ---- observation ----

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(cannot read {self.log_path}: {e})"
        return "\n".join(text.splitlines()[-lines:])

    def scrape(self, timeout_s: float = 5.0) -> Metrics:
        with urllib.request.urlopen(self.metrics_url, timeout=timeout_s) as reply:
            text = reply.read().decode()
        return Metrics.parse(text)

    def uptime_ms(self) -> int:
        """The node's uptime as Fabric.Health reports it (a point on the node's own clock)."""
        with FabricClient(self.endpoint, timeout_s=5.0) as fabric:
            return fabric.health().uptime_ms

    def fresh_metrics(self, timeout_s: float = 15.0) -> Metrics:
        """A scrape whose samples were all taken after this call began.

        The node samples its store and JVM once a second (uptime included) and Kamon publishes on its own ~1 s
        tick; waiting until the published uptime is a full sampling period past "now" on the node's clock
        guarantees that a complete sample taken after "now" is in the scrape.
        """
        since_s = self.uptime_ms() / 1000.0
        deadline = time.monotonic() + timeout_s
        while True:
            metrics = self.scrape()
            if metrics.value("pegaflow_process_uptime_seconds", default=0.0) >= since_s + 1.05:
                return metrics
            if time.monotonic() > deadline:
                raise TimeoutError(f"no metrics sampled after uptime {since_s:.1f} s within {timeout_s} s")
            time.sleep(0.2)

    # ---- lifetime ----

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """Shutdown over gRPC, wait for the exit; kill if it does not come. Returns the exit code."""
        if self.alive:
            try:
                with FabricClient(self.endpoint, timeout_s=5.0) as fabric:
                    fabric.shutdown(fabric.health().node_id, "LocalNode.stop")
            except EngineError:
                pass  # already going, or wedged: the wait below decides
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def __enter__(self) -> LocalNode:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalNode({self.endpoint}, pid {self.process.pid})"


class LocalCluster:
    """Several nodes of one cluster on loopback, from a topology file written with free ports (``n1``, ``n2``, …)."""

    def __init__(self, nodes: dict[str, LocalNode], topology_path: Path):
        self.nodes = nodes
        self.topology_path = topology_path

    @classmethod
    def start(
        cls,
        count: int = 3,
        pool_size: str = "64mb",
        log_level: str = "info",
        root: Path | None = None,
        timeout_s: float = START_TIMEOUT_S * 2,
    ) -> LocalCluster:
        root = root or repo_root()
        missing = node_jar_missing(root)
        if missing:
            raise RuntimeError(f"node not built ({missing}): run ./pegaflow build")
        ports = [[free_port() for _ in range(4)] for _ in range(count)]
        lines = [f"cluster: pegaflow-local-{os.getpid()}-{ports[0][0]}", "nodes:"]
        for i, (cluster, grpc, metrics, transport) in enumerate(ports):
            lines.append(
                f"  - {{id: n{i + 1}, host: 127.0.0.1, clusterPort: {cluster}, grpcPort: {grpc},"
                f" metricsPort: {metrics}, transportPort: {transport}, poolSize: {pool_size}, transport: tcp}}"
            )
        fd, name = tempfile.mkstemp(prefix="pegaflow-cluster-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        nodes: dict[str, LocalNode] = {}
        try:
            for i, (_cluster, grpc, metrics, _transport) in enumerate(ports):
                node_id = f"n{i + 1}"
                argv = [str(root / "pegaflow"), "node", "--topology", name, "--node", node_id, "--log-level", log_level]
                nodes[node_id] = LocalNode.spawn(argv, grpc, metrics, root, None)
            for node in nodes.values():
                node.wait_serving(timeout_s)
        except BaseException:
            for node in nodes.values():
                node.kill()
            raise
        return cls(nodes, Path(name))

    def __getitem__(self, node_id: str) -> LocalNode:
        return self.nodes[node_id]

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.alive:
                with contextlib.suppress(EngineError), FabricClient(node.endpoint, timeout_s=5.0) as fabric:
                    fabric.shutdown(fabric.health().node_id, "LocalCluster.stop")
        for node in self.nodes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(20)
            node.kill()
        with contextlib.suppress(OSError):
            self.topology_path.unlink()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
