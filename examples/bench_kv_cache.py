#!/usr/bin/env python3
"""Time to first token over ``vllm bench serve``: a cold run, then a warm run against the same PegaFlow node.

    ./pegaflow node --device 0 --pool-size 64gb                   # on the GPU machine, in another shell
    pip install ./python                                          # into vLLM's environment
    python3 examples/bench_kv_cache.py --model meta-llama/Llama-3.1-8B-Instruct --num-prompts 40 \\
        --input-len 10000 --output-len 64 --request-rate 4 [--baseline] [--endpoint 127.0.0.1:50055]

Each arm starts its own ``vllm serve`` (so vLLM's own prefix cache starts empty), waits for ``/health``, runs
``vllm bench serve`` with the random dataset and a fixed seed (the same prompts in every arm), stops the server and
reads the result file. ``cold``: the connector on, a fresh namespace, so every prompt is computed and saved;
``warm``: a new server, the same namespace and prompts, so the prefixes load from the node; ``baseline``
(``--baseline``): no connector. Prints mean and p99 TTFT per arm. The seed's reference (H800, Llama-3.1-8B,
10K-token prompts, 4 req/s): cold 572.5 ms mean / 1113.7 p99, warm 61.5 / 77.0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path


def kv_transfer_config(endpoint: str, namespace: str) -> str:
    extra = {"pegaflow.endpoint": endpoint, "pegaflow.namespace": namespace}
    config = {
        "kv_connector": "PegaKVConnector",
        "kv_connector_module_path": "pegaflow.vllm",
        "kv_role": "kv_both",
        "kv_connector_extra_config": extra,
    }
    return json.dumps(config, separators=(",", ":"))


def serve_argv(args, port: int, connector: str | None) -> list[str]:
    """``vllm serve`` for one arm; ``connector`` is the --kv-transfer-config JSON, or None for the baseline."""
    argv = ["vllm", "serve", args.model, "--port", str(port), "--prefix-caching-hash-algo", "sha256_cbor"]
    argv += ["--gpu-memory-utilization", str(args.gpu_memory_utilization), *args.serve_arg]
    if connector is not None:
        argv += ["--kv-transfer-config", connector]
    return argv


def bench_argv(args, port: int, result_dir: Path, arm: str) -> list[str]:
    return [
        "vllm",
        "bench",
        "serve",
        "--model",
        args.model,
        "--port",
        str(port),
        "--dataset-name",
        "random",
        "--random-input-len",
        str(args.input_len),
        "--random-output-len",
        str(args.output_len),
        "--num-prompts",
        str(args.num_prompts),
        "--request-rate",
        str(args.request_rate),
        "--seed",
        str(args.seed),
        "--percentile-metrics",
        "ttft",
        "--metric-percentiles",
        "99",
        "--save-result",
        "--result-dir",
        str(result_dir),
        "--result-filename",
        f"{arm}.json",
    ]


def ttft(result: dict) -> tuple[float, float]:
    """(mean, p99) time to first token in ms from a ``vllm bench serve`` result file."""
    return float(result["mean_ttft_ms"]), float(result["p99_ttft_ms"])


def table(rows: dict[str, tuple[float, float]]) -> str:
    lines = ["| arm | mean TTFT ms | p99 TTFT ms |", "|---|---:|---:|"]
    lines += [f"| {arm} | {mean:.1f} | {p99:.1f} |" for arm, (mean, p99) in rows.items()]
    return "\n".join(lines)


def wait_healthy(port: int, server: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"vllm serve exited with {server.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(2)
    raise TimeoutError(f"vllm serve not healthy within {timeout_s:.0f} s")


def run_arm(args, arm: str, connector: str | None, result_dir: Path) -> tuple[float, float]:
    log = open(result_dir / f"{arm}-serve.log", "w")  # noqa: SIM115 - the server writes to it until stopped
    server = subprocess.Popen(
        serve_argv(args, args.port, connector), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_healthy(args.port, server, args.startup_timeout)
        subprocess.run(bench_argv(args, args.port, result_dir, arm), check=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
    return ttft(json.loads((result_dir / f"{arm}.json").read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--num-prompts", type=int, default=40)
    parser.add_argument("--input-len", type=int, default=10_000)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--request-rate", type=float, default=4.0)
    parser.add_argument("--baseline", action="store_true", help="also run without the connector")
    parser.add_argument("--endpoint", default="127.0.0.1:50055", help="the local node's gRPC address")
    parser.add_argument("--port", type=int, default=8100, help="vllm serve's port")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    parser.add_argument("--startup-timeout", type=float, default=900.0)
    parser.add_argument("--serve-arg", action="append", default=[], help="one more vllm serve argument (repeatable)")
    parser.add_argument("--result-dir", help="where the result files and server logs go (default: a temp dir)")
    args = parser.parse_args(argv)
    result_dir = Path(args.result_dir or tempfile.mkdtemp(prefix="pegaflow-bench-"))
    result_dir.mkdir(parents=True, exist_ok=True)
    from pegaflow.client import FabricClient
    from pegaflow.errors import EngineError

    try:
        with FabricClient(args.endpoint, timeout_s=5.0) as fabric:
            fabric.health()
    except EngineError as e:
        print(f"no PegaFlow node at {args.endpoint} ({e}): start ./pegaflow node --device 0 first", file=sys.stderr)
        return 2
    connector = kv_transfer_config(args.endpoint, f"bench-{uuid.uuid4().hex[:12]}")  # cold: nothing saved yet
    rows = {}
    if args.baseline:
        rows["baseline (no connector)"] = run_arm(args, "baseline", None, result_dir)
    rows["cold (computed, saved)"] = run_arm(args, "cold", connector, result_dir)
    rows["warm (loaded from the node)"] = run_arm(args, "warm", connector, result_dir)
    print(f"{args.model}: {args.num_prompts} prompts of {args.input_len} tokens, {args.request_rate} req/s")
    print(table(rows))
    print(f"(results and server logs in {result_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
