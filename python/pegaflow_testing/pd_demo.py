"""One prefill/decode request across two nodes, through ``./pegaflow proxy`` (part of ``./pegaflow demo``).

    python3 -m pegaflow_testing.pd_demo --prefill-endpoint 127.0.0.1:50055 --decode-endpoint 127.0.0.1:50056

Starts two stand-in OpenAI servers in this process (``pegaflow_testing.openai_standin``: the real connector over
the vLLM-shaped harness), the prefill one on the first node and the decode one on the second, and ``./pegaflow
proxy`` in front of them; sends one completion through the proxy and checks that the decode engine loaded the
prompt's blocks from the prefill node byte-exact and answered what the model answers. Exit 0 only then (1 on a
wrong answer or short load, 2 when something could not start).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from types import SimpleNamespace

from pegaflow_testing.localnode import free_port, repo_root
from pegaflow_testing.openai_standin import build, expected_text

BLOCKS = 12


def _start_engine(endpoint: str, name: str):
    server = build(
        SimpleNamespace(port=0, endpoint=endpoint, name=name, delay_saves_s=0.0, seal_wait_ms=10_000, gpu_blocks=256)
    )
    threading.Thread(target=server.serve_forever, name=f"{name}-http", daemon=True).start()
    return server


def _stop_engine(server) -> None:
    server.httpd.shutdown()
    server.loop.close()
    server.loop.engine.close()


def _get(url: str, timeout_s: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as reply:
        return reply.read()


def _start_proxy(prefill: str, decode: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    argv = [str(repo_root() / "pegaflow"), "proxy", "--host", "127.0.0.1", "--port", str(port)]
    log = tempfile.TemporaryFile()  # noqa: SIM115 - the proxy writes to it as long as it runs
    process = subprocess.Popen(
        [*argv, "--prefill", prefill, "--decode", decode],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError):
            if _get(url + "/health", 2) == b"ok":
                return process, url
        time.sleep(0.3)
    process.kill()
    process.wait(10)
    log.seek(0)
    raise RuntimeError(f"the proxy did not start: {log.read().decode(errors='replace')[-2000:]}")


def run(prefill_endpoint: str, decode_endpoint: str) -> int:
    engines, proxy = [], None
    try:
        engines = [_start_engine(prefill_endpoint, "prefill"), _start_engine(decode_endpoint, "decode")]
        prefill, decode = engines
        proxy, url = _start_proxy(f"http://127.0.0.1:{prefill.port}", f"http://127.0.0.1:{decode.port}")
    except Exception as e:  # noqa: BLE001 - say what could not start
        print(f"P/D: FAILED to start: {e}")
        if proxy is not None:
            proxy.kill()
        for server in engines:
            _stop_engine(server)
        return 2
    try:
        prompt = secrets.token_hex(BLOCKS * 8) + " P/D"
        request = urllib.request.Request(
            url + "/v1/completions",
            data=json.dumps({"model": "demo", "prompt": prompt, "max_tokens": 8}).encode(),
            headers={"Content-Type": "application/json", "X-Request-Id": "demo-pd-1"},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as reply:
            body = json.loads(reply.read())
        elapsed_ms = (time.perf_counter() - started) * 1e3
        handoff = prefill.stats()["completed"][-1]["kv_transfer_params"] or {}
        stats = decode.stats()
        done = stats["completed"][-1]
        totals = stats["totals"]
        holder = handoff.get("pegaflow", {}).get("holder", "?")
        handed = len(handoff.get("pegaflow", {}).get("block_hashes", []))
        answer_ok = body["choices"][0]["text"] == expected_text(prompt, 8)
        print(
            f"prefill on {prefill_endpoint} (node {holder}) handed off {handed} blocks;"
            f" decode on {decode_endpoint} loaded {int(totals.get('loaded_blocks', 0))}"
            f" ({int(totals.get('load_failed_blocks', 0))} failed), {done['external_tokens']} of"
            f" {done['prompt_tokens']} prompt tokens not recomputed, byte mismatches {len(stats['mismatches'])},"
            f" answer {'as expected' if answer_ok else 'WRONG'} ({elapsed_ms:.0f} ms through the proxy)"
        )
        ok = answer_ok and not stats["mismatches"] and totals.get("loaded_blocks", 0) == BLOCKS
        return 0 if ok else 1
    except Exception as e:  # noqa: BLE001 - a failed demo says why
        print(f"P/D: FAILED: {e}")
        return 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proxy.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proxy.wait(15)
        for server in engines:
            _stop_engine(server)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefill-endpoint", required=True, help="the prefill engine's node (gRPC HOST:PORT)")
    parser.add_argument("--decode-endpoint", required=True, help="the decode engine's node (gRPC HOST:PORT)")
    args = parser.parse_args(argv)
    return run(args.prefill_endpoint, args.decode_endpoint)


if __name__ == "__main__":
    sys.exit(main())
