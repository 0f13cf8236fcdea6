#!/usr/bin/env python3
"""Prefill/decode disaggregation with vLLM and PegaFlow: a prefill engine, a decode engine and ``./pegaflow proxy``.

    # one PegaFlow node per host, all in one topology (see docs/pd.md), e.g. on host A and host B:
    ./pegaflow node --topology cluster.yaml --node n1 --device 0
    ./pegaflow node --topology cluster.yaml --node n2 --device 0
    pip install ./python                                     # into vLLM's environment
    python3 examples/run_vllm_pd_with_pega.py --model Qwen/Qwen2.5-7B-Instruct \\
        --prefill-endpoint HOST_A:50055 --decode-endpoint HOST_B:50055 --prefill-gpu 0 --decode-gpu 1

Starts ``vllm serve`` twice on this machine (the prefill engine on ``--prefill-gpu`` talking to the node at
``--prefill-endpoint``, the decode engine on ``--decode-gpu`` talking to ``--decode-endpoint``; both with
``PegaKVConnector``, ``kv_role`` ``kv_both``, ``sha256_cbor`` block hashes and ``kv_load_failure_policy``
``recompute``), waits until both answer ``/health``, then runs ``./pegaflow proxy`` on ``--proxy-port`` in front of
them and prints the benchmark command. The prefill engine's blocks go to its node; the decode engine's node fetches
them from there through the fabric. Ctrl-C stops everything. ``--dry-run`` prints the three command lines only.
vLLM is not imported: it is run as the ``vllm`` command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


def kv_transfer_config(endpoint: str) -> dict:
    return {
        "kv_connector": "PegaKVConnector",
        "kv_connector_module_path": "pegaflow.vllm",
        "kv_role": "kv_both",
        # A hand-off whose producer died is reported as failed blocks: recompute them instead of failing the request.
        "kv_load_failure_policy": "recompute",
        "kv_connector_extra_config": {"pegaflow.endpoint": endpoint},
    }


def serve_argv(model: str, port: int, endpoint: str, extra: list[str]) -> list[str]:
    return [
        "vllm",
        "serve",
        model,
        "--port",
        str(port),
        "--prefix-caching-hash-algo",
        "sha256_cbor",  # the same block hashes in both engines (and on every node)
        "--kv-transfer-config",
        json.dumps(kv_transfer_config(endpoint)),
        *extra,
    ]


def proxy_argv(port: int, prefill_port: int, decode_port: int) -> list[str]:
    return [
        str(ROOT / "pegaflow"),
        "proxy",
        "--port",
        str(port),
        "--prefill",
        f"http://127.0.0.1:{prefill_port}",
        "--decode",
        f"http://127.0.0.1:{decode_port}",
    ]


def bench_argv(model: str, proxy_port: int) -> list[str]:
    return [
        "vllm",
        "bench",
        "serve",
        "--backend",
        "vllm",
        "--model",
        model,
        "--base-url",
        f"http://127.0.0.1:{proxy_port}",
        "--endpoint",
        "/v1/completions",
        "--dataset-name",
        "random",
        "--random-input-len",
        "5000",
        "--random-output-len",
        "200",
        "--num-prompts",
        "100",
        "--request-rate",
        "2",
    ]


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(2)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--prefill-endpoint", default="127.0.0.1:50055", help="the prefill engine's node (gRPC)")
    parser.add_argument("--decode-endpoint", default="127.0.0.1:50056", help="the decode engine's node (gRPC)")
    parser.add_argument("--prefill-gpu", default="0", help="CUDA_VISIBLE_DEVICES of the prefill engine")
    parser.add_argument("--decode-gpu", default="1", help="CUDA_VISIBLE_DEVICES of the decode engine")
    parser.add_argument("--prefill-port", type=int, default=8100)
    parser.add_argument("--decode-port", type=int, default=8200)
    parser.add_argument("--proxy-port", type=int, default=8000)
    parser.add_argument("--serve-arg", action="append", default=[], help="one more argument for both vllm serve")
    parser.add_argument("--start-timeout-s", type=float, default=900.0)
    parser.add_argument("--dry-run", action="store_true", help="print the command lines, start nothing")
    args = parser.parse_args(argv)

    prefill = serve_argv(args.model, args.prefill_port, args.prefill_endpoint, args.serve_arg)
    decode = serve_argv(args.model, args.decode_port, args.decode_endpoint, args.serve_arg)
    proxy = proxy_argv(args.proxy_port, args.prefill_port, args.decode_port)
    if args.dry_run:
        for name, gpu, command in (("prefill", args.prefill_gpu, prefill), ("decode", args.decode_gpu, decode)):
            print(f"# {name}\nCUDA_VISIBLE_DEVICES={gpu} " + " ".join(_quote(a) for a in command))
        print("# proxy\n" + " ".join(proxy))
        print("# benchmark\n" + " ".join(bench_argv(args.model, args.proxy_port)))
        return 0
    if shutil.which("vllm") is None:
        print("vLLM is not installed here (no vllm command): pip install vllm on a machine with GPUs", file=sys.stderr)
        return 2

    children: list[subprocess.Popen] = []
    try:
        for gpu, command in ((args.prefill_gpu, prefill), (args.decode_gpu, decode)):
            children.append(subprocess.Popen(command, env={**os.environ, "CUDA_VISIBLE_DEVICES": str(gpu)}))
        for name, port, child in (
            ("prefill", args.prefill_port, children[0]),
            ("decode", args.decode_port, children[1]),
        ):
            if not wait_healthy(f"http://127.0.0.1:{port}/health", child, args.start_timeout_s):
                print(f"the {name} engine did not become healthy on port {port}", file=sys.stderr)
                return 1
        children.append(subprocess.Popen(proxy))
        if not wait_healthy(f"http://127.0.0.1:{args.proxy_port}/health", children[-1], 120):
            print(f"the proxy did not start on port {args.proxy_port}", file=sys.stderr)
            return 1
        print(f"P/D serving on http://127.0.0.1:{args.proxy_port}; benchmark it with:")
        print("  " + " ".join(bench_argv(args.model, args.proxy_port)))
        while all(child.poll() is None for child in children):
            time.sleep(1)
        print("a process exited; stopping the others", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in ' {}"') else arg


if __name__ == "__main__":
    sys.exit(main())
