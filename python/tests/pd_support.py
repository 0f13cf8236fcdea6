"""Helpers of the prefill/decode tests: stand-in OpenAI servers and the proxy as child processes, HTTP calls."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from pegaflow_testing.localnode import free_port, repo_root
from pegaflow_testing.openai_standin import expected_text

__all__ = ["Child", "expected_text", "get_json", "get_text", "post", "proxy", "sse_events", "standin"]

START_TIMEOUT_S = 60.0


class Child:
    """A child process with its output in a file; ``url`` once it answers ``GET health_path``."""

    def __init__(self, argv: list[str], port: int, name: str, health_path: str, env: dict | None = None):
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        fd, log = tempfile.mkstemp(prefix=f"pegaflow-{name}-", suffix=".log")
        self.log_path = Path(log)
        with os.fdopen(fd, "wb") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=repo_root(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        try:
            self._wait(health_path)
        except BaseException:
            self.stop()
            raise

    def _wait(self, path: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer {path} within {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as e:
            return f"(no log: {e})"

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def standin(endpoint: str, name: str, *extra: str) -> Child:
    port = free_port()
    argv = [sys.executable, "-m", "pegaflow_testing.openai_standin", "--port", str(port), "--endpoint", endpoint]
    argv += ["--name", name, *extra]
    return Child(argv, port, name, "/health", env={"PYTHONPATH": str(repo_root() / "python")})


def proxy(prefill: list[str], decode: list[str], *extra: str) -> Child:
    port = free_port()
    argv = [str(repo_root() / "pegaflow"), "proxy", "--host", "127.0.0.1", "--port", str(port)]
    for url in prefill:
        argv += ["--prefill", url]
    for url in decode:
        argv += ["--decode", url]
    return Child(argv + list(extra), port, "proxy", "/health")


def post(url: str, body: dict, headers: dict | None = None, timeout_s: float = 90.0) -> tuple[int, dict | str]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            text = reply.read().decode()
            status = reply.status
            content_type = reply.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        text, status, content_type = e.read().decode(), e.code, e.headers.get("Content-Type", "")
    return status, (json.loads(text) if "json" in content_type else text)


def get_json(url: str, timeout_s: float = 30.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout_s) as reply:
        return json.loads(reply.read())


def get_text(url: str, timeout_s: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as reply:
        return reply.read().decode()


def sse_events(text: str) -> list:
    """The ``data:`` payloads of an SSE body (``[DONE]`` as the string)."""
    events = []
    for line in text.splitlines():
        if line.startswith("data: "):
            payload = line[len("data: ") :]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events
