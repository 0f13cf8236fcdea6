#!/usr/bin/env python3
"""Latency of Engine.Query for a 1,000-block prefix, from Python over gRPC, against a real node.

    python3 bench/python/query_latency.py [--endpoint HOST:PORT] [--blocks 1000] [--iterations 2000] [--warmup 200]
                                          [--out bench/results/query-latency.md]

Without --endpoint it starts its own node (``./pegaflow node`` on free loopback ports, 64 MiB pool) and stops it
afterwards. It registers a small shared-memory cache, saves ``--blocks`` blocks under 32 random bytes each (the size
of vLLM's sha256 block hashes), then times, with ``time.perf_counter_ns`` around each blocking call after a warm-up:

- the baseline: ``Fabric.Health`` (an empty request), so the Query numbers read as a ratio;
- ``Query`` of all the hashes, no lease (every one a hit);
- ``Query`` with ``lease_ttl_ms`` > 0, each followed by a ``Release`` of its lease (timed separately);
- for the breakdown: building + serializing the QueryRequest alone (no call), the raw stub with a request built
  once (no per-call request building), a 1-hash Query, and the node's own handler time for Query
  (``pegaflow_grpc_request_duration_seconds`` sum/count over the run, i.e. server-side, excluding transport).

Prints a summary and writes it (machine, versions, exact command, numbers) as Markdown to --out.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

from pegaflow._proto import engine_pb2, engine_pb2_grpc, fabric_pb2, fabric_pb2_grpc  # noqa: E402 - after sys.path
from pegaflow.client import EngineClient, FabricClient  # noqa: E402
from pegaflow.shm import HOST_DEVICE, SharedKVCache  # noqa: E402
from pegaflow_testing.localnode import LocalNode, Metrics  # noqa: E402

GOAL_P99_US = 300.0
STARTED_NODE = "started by the script (./pegaflow node, 64 MiB pool, host copy engine)"
LEASE_TTL_MS = 10_000


def stats_us(samples_ns: list[int]) -> dict[str, float]:
    a = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return {
        "n": len(a),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "mean": float(a.mean()),
    }


def timed(call, iterations: int, warmup: int) -> list[int]:
    for _ in range(warmup):
        call()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        start = clock()
        call()
        samples.append(clock() - start)
    return samples


def handler_seconds(metrics_url: str | None, method: str) -> tuple[float, float] | None:
    """(sum seconds, count) of the node's own timing of ``method`` (OK outcomes), or None without a metrics URL."""
    if metrics_url is None:
        return None
    import urllib.request

    with urllib.request.urlopen(metrics_url, timeout=5) as reply:
        text = reply.read().decode()
    m = Metrics.parse(text)
    labels = {"service": "Engine", "method": method, "status": "OK"}
    return (
        m.value("pegaflow_grpc_request_duration_seconds_sum", default=0.0, **labels),
        m.value("pegaflow_grpc_request_duration_seconds_count", default=0.0, **labels),
    )


_REFERENCE_SERVER = """
import sys, time
from concurrent import futures
import grpc
sys.path.insert(0, sys.argv[2])
from pegaflow._proto import fabric_pb2, fabric_pb2_grpc

class Fabric(fabric_pb2_grpc.FabricServicer):
    def Health(self, request, context):
        return fabric_pb2.HealthResponse(node_id="py", status=fabric_pb2.HealthResponse.SERVING)

server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
fabric_pb2_grpc.add_FabricServicer_to_server(Fabric(), server)
server.add_insecure_port("127.0.0.1:" + sys.argv[1])
server.start()
print("ready", flush=True)
server.wait_for_termination()
"""


def python_reference_health(n: int, w: int) -> dict[str, float]:
    """Fabric.Health against a trivial Python gRPC server in another process: the Python-to-Python floor here."""
    from pegaflow_testing.localnode import free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", _REFERENCE_SERVER, str(port), str(ROOT / "python")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout.readline().strip() == "ready"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = fabric_pb2_grpc.FabricStub(channel)
            grpc.channel_ready_future(channel).result(timeout=10)
            request = fabric_pb2.HealthRequest()
            return stats_us(timed(lambda: stub.Health(request, timeout=10), n, w))
    finally:
        server.kill()
        server.wait(10)


_ECHO_SERVER = """
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while True:
    b = c.recv(64)
    if not b:
        break
    c.sendall(b)
"""


def tcp_ping_pong(n: int, w: int) -> dict[str, float]:
    """One byte there and back over loopback TCP between two processes: the machine's wake-up + syscall floor."""
    import socket

    server = subprocess.Popen([sys.executable, "-c", _ECHO_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def ping():
                c.sendall(b"x")
                c.recv(64)

            return stats_us(timed(ping, n, w))
    finally:
        server.kill()
        server.wait(10)


def wait_for_tick(node: LocalNode | None, metrics_url: str | None) -> None:
    """Kamon publishes on a ~1 s tick: let the last calls reach the scrape."""
    if node is not None:
        node.fresh_metrics()
    elif metrics_url is not None:
        time.sleep(2.5)


def machine() -> dict[str, str]:
    def sh(cmd: str) -> str:
        try:
            return subprocess.run(
                cmd, shell=True, capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:  # best effort: the numbers matter more than the label
            return f"({e})"

    import google.protobuf

    return {
        "cpu": sh("lscpu | grep 'Model name'").replace("Model name:", "").strip(),
        "nproc": sh("nproc"),
        "os": platform.platform(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "protobuf": google.protobuf.__version__,
        "protobuf backend": _protobuf_backend(),
        "java": sh("ls -d /usr/lib/jvm/*25* 2>/dev/null | head -1"),
        "load average at start": sh("cat /proc/loadavg"),
    }


def _protobuf_backend() -> str:
    try:
        from google.protobuf.internal import api_implementation

        return api_implementation.Type()
    except ImportError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", help="a running node (default: start one)")
    parser.add_argument("--metrics-url", help="its /metrics URL, for the server-side handler time (optional)")
    parser.add_argument("--blocks", type=int, default=1000)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls before each timed series")
    parser.add_argument("--jit-warmup", type=int, default=3000, help="untimed Health+Query+Release rounds first")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "query-latency.md"))
    args = parser.parse_args(argv)
    command = "python3 " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0])), *sys.argv[1:]])

    info = machine()
    node = None
    if args.endpoint is None:
        print("starting a node ...", flush=True)
        node = LocalNode.start(pool_size="64mb", partial_timeout_ms=30_000)
        endpoint, metrics_url = node.endpoint, node.metrics_url
    else:
        endpoint, metrics_url = args.endpoint, args.metrics_url

    try:
        results = run(endpoint, metrics_url, node, args)
    finally:
        if node is not None and node.stop() == 0:
            node.log_path.unlink(missing_ok=True)
    results["_nproc"] = info["nproc"]
    report = render(results, info, command, args, endpoint, started_node=node is not None)
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)
    print(f"written to {args.out}")
    return 0


def run(endpoint: str, metrics_url: str | None, node: LocalNode | None, args) -> dict:
    rng = np.random.default_rng()
    hashes = [rng.bytes(32) for _ in range(args.blocks)]
    namespace = f"bench-query-{rng.integers(1 << 40):x}"
    n, w = args.iterations, args.warmup
    results: dict = {}

    # 1 layer x 16 tokens x 1 KV head x 128 (K+V 2x64) bf16: 4 KiB per block; the blocks' bytes do not matter here.
    with SharedKVCache(1, args.blocks, 16, 1, 64) as cache, EngineClient(endpoint, timeout_s=10.0) as engine:
        ctx = engine.register_context("bench", namespace, 0, 1, 0, 1, HOST_DEVICE, cache.layer_registrations())
        saved = engine.save(ctx.context_id, list(enumerate(hashes)))
        assert saved.blocks_sealed == args.blocks, saved
        assert engine.query(namespace, hashes).hit_blocks == args.blocks

        with FabricClient(endpoint, timeout_s=10.0) as fabric:
            # Let the node's JIT see every path first (a fresh JVM is several times slower for a few thousand calls).
            for _ in range(args.jit_warmup):
                fabric.health()
                engine.release(engine.query(namespace, hashes, lease_ttl_ms=LEASE_TTL_MS).lease_id)
            results["Fabric.Health (baseline)"] = stats_us(timed(fabric.health, n, w))

        for _ in range(w):
            engine.query(namespace, hashes)
        wait_for_tick(node, metrics_url)
        before = handler_seconds(metrics_url, "Query")
        results[f"Query {args.blocks} hashes, no lease"] = stats_us(
            timed(lambda: engine.query(namespace, hashes), n, 0)
        )
        wait_for_tick(node, metrics_url)
        after = handler_seconds(metrics_url, "Query")
        if before and after and after[1] > before[1]:
            results["_handler_us"] = (after[0] - before[0]) / (after[1] - before[1]) * 1e6
            results["_handler_calls"] = after[1] - before[1]

        query_ns, release_ns = [], []
        clock = time.perf_counter_ns
        for i in range(w + n):
            t0 = clock()
            reply = engine.query(namespace, hashes, lease_ttl_ms=LEASE_TTL_MS)
            t1 = clock()
            released = engine.release(reply.lease_id).released
            t2 = clock()
            assert reply.hit_blocks == args.blocks and reply.lease_id > 0 and released
            if i >= w:
                query_ns.append(t1 - t0)
                release_ns.append(t2 - t1)
        results[f"Query {args.blocks} hashes, lease_ttl_ms={LEASE_TTL_MS}"] = stats_us(query_ns)
        results["Release of that lease"] = stats_us(release_ns)

        # ---- breakdown ----
        def build_and_serialize():
            engine_pb2.QueryRequest(namespace=namespace, hashes=list(hashes)).SerializeToString()

        results["client: build + serialize the 1,000-hash QueryRequest (no call)"] = stats_us(
            timed(build_and_serialize, n, w)
        )
        prebuilt = engine_pb2.QueryRequest(namespace=namespace, hashes=hashes)
        results["_request_bytes"] = prebuilt.ByteSize()
        channel = grpc.insecure_channel(endpoint)
        stub = engine_pb2_grpc.EngineStub(channel)
        health_stub = fabric_pb2_grpc.FabricStub(channel)
        one = engine_pb2.QueryRequest(namespace=namespace, hashes=hashes[:1])
        empty = fabric_pb2.HealthRequest()
        # Interleaved, one of each per round, so that drift (JIT, other load) hits every variant alike.
        variants = {
            "interleaved: EngineClient.query, 1,000 hashes": lambda: engine.query(namespace, hashes),
            "interleaved: raw stub, 1,000-hash request built once": lambda: stub.Query(prebuilt, timeout=10),
            "interleaved: raw stub, 1-hash Query": lambda: stub.Query(one, timeout=10),
            "interleaved: raw stub, Fabric.Health": lambda: health_stub.Health(empty, timeout=10),
        }
        samples: dict[str, list[int]] = {name: [] for name in variants}
        for i in range(w + n):
            for name, call in variants.items():
                t0 = clock()
                call()
                if i >= w:
                    samples[name].append(clock() - t0)
        for name, ns in samples.items():
            results[name] = stats_us(ns)
        channel.close()

        engine.unregister_context(ctx.context_id)
    results["reference: Python gRPC server (another process), Fabric.Health"] = python_reference_health(n, w)
    results["reference: 1-byte TCP ping-pong between two processes (no gRPC)"] = tcp_ping_pong(n, w)
    results["_loadavg_end"] = Path("/proc/loadavg").read_text().strip()
    return results


def render(results: dict, info: dict, command: str, args, endpoint: str, started_node: bool) -> str:
    baseline = results["Fabric.Health (baseline)"]
    query = results[f"Query {args.blocks} hashes, no lease"]
    leased = results[f"Query {args.blocks} hashes, lease_ttl_ms={LEASE_TTL_MS}"]
    lines = [
        "# Query latency: a 1,000-block prefix from Python over gRPC",
        "",
        f"Produced by `bench/python/query_latency.py` on {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.",
        "",
        "## Machine and versions",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += [
        "",
        "## Command",
        "",
        f"    {command}",
        "",
        (
            f"Node: {STARTED_NODE if started_node else endpoint}; "
            f"client and node on the same machine over loopback TCP. {args.blocks} hashes of 32 random bytes, all hits;"
            " "
            f"{args.iterations} timed calls after {args.warmup} warm-up calls (and {args.jit_warmup} untimed rounds of "
            "Health + leased Query + Release first, for the node's JIT), one call at a time (no concurrency); "
            "`time.perf_counter_ns` around each blocking call."
        ),
        "",
        "## Results (microseconds)",
        "",
        "| what | n | p50 | p90 | p99 | max | mean |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in results.items():
        if name.startswith("_"):
            continue
        lines.append(
            f"| {name} | {s['n']} | {s['p50']:.0f} | {s['p90']:.0f} | {s['p99']:.0f} | {s['max']:.0f}"
            f" | {s['mean']:.0f} |"
        )
    met = query["p99"] <= GOAL_P99_US
    lines += [
        "",
        f"Query / Health ratio: p50 {query['p50'] / baseline['p50']:.1f}x, p99 {query['p99'] / baseline['p99']:.1f}x.",
        f"QueryRequest on the wire: {results['_request_bytes']} bytes.",
    ]
    if "_handler_us" in results:
        lines.append(
            f"Node-side Query handler time (mean over {results['_handler_calls']:.0f} calls, from "
            f"pegaflow_grpc_request_duration_seconds): {results['_handler_us']:.0f} us."
        )
    lines.append(f"Load average at the end: {results['_loadavg_end']}.")
    release = results["Release of that lease"]
    lines += [
        "",
        "## Goal: p99 <= 300 us",
        "",
        (
            f"{'MET' if met else 'NOT MET'}: Query without a lease p99 = {query['p99']:.0f} us; with a lease p99 = "
            f"{leased['p99']:.0f} us (plus a Release, p99 {release['p99']:.0f} us)."
        ),
        "",
    ]
    if not met:
        lines += breakdown(results, query)
    return "\n".join(lines) + "\n"


def breakdown(results: dict, query: dict) -> list[str]:
    """Where the time of a Query goes, from the reference rows of the same run; claims only what the numbers say."""
    serialize = results["client: build + serialize the 1,000-hash QueryRequest (no call)"]
    client = results["interleaved: EngineClient.query, 1,000 hashes"]
    raw = results["interleaved: raw stub, 1,000-hash request built once"]
    raw_one = results["interleaved: raw stub, 1-hash Query"]
    raw_health = results["interleaved: raw stub, Fabric.Health"]
    py_floor = results["reference: Python gRPC server (another process), Fabric.Health"]
    tcp = results["reference: 1-byte TCP ping-pong between two processes (no gRPC)"]
    share = serialize["p50"] / query["p50"]
    lines = [
        "## Where the time goes (p50s from this run; the `interleaved` rows ran round-robin in one loop)",
        "",
        (
            "- Client side, building + serializing the request (1,000 x 32 bytes,"
            f" {results['_request_bytes']} bytes on the wire): {serialize['p50']:.0f} us, {share:.0%} of the Query p50"
            + (" — not where the time goes." if share < 0.1 else " — a large share.")
            + f" Interleaved, the raw stub with a request built once costs {raw['p50']:.0f} us against "
            f"{client['p50']:.0f} us through EngineClient (which builds the request per call)."
        ),
        (
            f"- A round trip with nothing in it: an empty Fabric.Health to the node costs {raw_health['p50']:.0f} us "
            f"p50 / {raw_health['p99']:.0f} us p99; the same call to a trivial Python gRPC server in another process "
            f"{py_floor['p50']:.0f} us / {py_floor['p99']:.0f} us; a bare 1-byte TCP ping-pong between two processes "
            f"{tcp['p50']:.0f} us / {tcp['p99']:.0f} us. "
            + (
                "So on this machine the fixed cost of one gRPC call from Python already exceeds the 300 us budget, "
                "whatever the node does."
                if min(raw_health["p50"], py_floor["p50"]) > 300
                else "The fixed cost of a call leaves room within 300 us."
            )
        ),
        (
            f"- The 1,000-hash payload: a 1-hash Query costs {raw_one['p50']:.0f} us, the 1,000-hash one "
            f"{raw['p50']:.0f} us (+{raw['p50'] - raw_one['p50']:.0f} us: transfer, parsing on the node, the handler)."
        ),
    ]
    if "_handler_us" in results:
        lines.append(
            f"- Inside the node, the Query handler (copying the hashes out of the request, validation, 1,000 index "
            f"lookups and LRU touches under the store lock, metrics) averages {results['_handler_us']:.0f} us "
            "(pegaflow_grpc_request_duration_seconds, measured phase only)."
        )
    lines += [
        (
            f"- Tails: p99/p50 is {query['p99'] / query['p50']:.1f}x for Query and "
            f"{raw_health['p99'] / raw_health['p50']:.1f}x for the empty Health call, "
            f"{py_floor['p99'] / py_floor['p50']:.1f}x Python-to-Python, on {results.get('_nproc', '?')} CPUs shared"
            " by the client, the node's threads and whatever else runs (see the load averages)."
        ),
        "",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
