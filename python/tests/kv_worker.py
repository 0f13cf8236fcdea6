"""A vLLM worker stand-in that runs as its OWN PROCESS, driven by the end-to-end tests.

Run as a script (``python kv_worker.py``) it reads one JSON command per line on stdin and answers one JSON line on
stdout: it owns a SharedKVCache (its "GPU memory"), registers it with the node, keeps the Session open, saves,
scribbles, queries, loads and checks bytes, exactly as a vLLM worker process would. ``WorkerProcess`` is the test
side: it starts the script, sends commands with a timeout, turns the worker's EngineError replies back into
EngineError, and can SIGKILL it.

Hashes travel as hex strings in JSON; block lists as ``[[block_id, hash_hex], ...]``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path

import grpc

from pegaflow.errors import EngineError

# ---------------------------------------------------------------- the worker process


class _Worker:
    def __init__(self):
        self.client = None
        self.cache = None
        self.flags = None
        self.session = None
        self.context_id = None
        self.next_slot = 0

    def op_connect(self, endpoint: str, timeout_s: float = 10.0):
        from pegaflow.client import EngineClient

        self.client = EngineClient(endpoint, timeout_s=timeout_s)
        return {"pid": os.getpid()}

    def op_register(
        self,
        cache: dict,
        namespace: str,
        instance_id: str,
        tp_rank: int = 0,
        tp_size: int = 1,
        pp_rank: int = 0,
        total_layers: int | None = None,
        first_layer_index: int = 0,
        session: bool = True,
    ):
        from pegaflow.flag import LoadFlagFile
        from pegaflow.shm import HOST_DEVICE, SharedKVCache

        self.cache = SharedKVCache(**cache)
        self.flags = LoadFlagFile(slots=64)
        reply = self.client.register_context(
            instance_id,
            namespace,
            tp_rank,
            tp_size,
            pp_rank,
            total_layers or cache["num_layers"],
            HOST_DEVICE,
            self.cache.layer_registrations(first_layer_index),
        )
        self.context_id = reply.context_id
        if session:
            self.session = self.client.open_session(reply.context_id)
        return {
            "context_id": reply.context_id,
            "block_bytes": reply.block_bytes,
            "slot_bytes": reply.slot_bytes,
            "path": str(self.cache.path),
            "flag_path": str(self.flags.path),
        }

    def op_fill(self, blocks: list[int], seed: int):
        self.cache.fill_random(blocks, seed)

    def op_scribble(self, blocks: list[int]):
        self.cache.scribble(blocks)

    def op_save(self, blocks: list, layer_indices: list[int] | None = None):
        r = self.client.save(self.context_id, _refs(blocks), layer_indices)
        return {"blocks_stored": r.blocks_stored, "blocks_skipped": r.blocks_skipped, "blocks_sealed": r.blocks_sealed}

    def op_query(self, namespace: str, hashes: list[str], lease_ttl_ms: int = 0, scope: str = "local"):
        r = self.client.query(namespace, [bytes.fromhex(h) for h in hashes], lease_ttl_ms, scope=scope)
        return {
            "hit_blocks": r.hit_blocks,
            "local_hit_blocks": r.local_hit_blocks,
            "lease_id": r.lease_id,
            "lease_expires_in_ms": r.lease_expires_in_ms,
        }

    def op_release(self, lease_id: int):
        return {"released": self.client.release(lease_id).released}

    def op_load(self, blocks: list, lease_id: int = 0, timeout_s: float = 10.0):
        slot = self.flags.slot(self.next_slot)
        self.next_slot = (self.next_slot + 1) % self.flags.slots
        slot.reset()
        r = self.client.load(self.context_id, _refs(blocks), slot, lease_id)
        state = slot.wait(timeout_s)
        snap = slot.snapshot()
        return {
            "failed_block_ids": list(r.failed_block_ids),
            "blocks_scheduled": r.blocks_scheduled,
            "state": state.name,
            "loaded": snap.loaded_blocks,
            "failed": snap.failed_blocks,
            "duration_ns": snap.duration_ns,
        }

    def op_rounds(self, namespace: str, rounds: int, blocks: int, seed: int):
        """The concurrency workload: per round fill, save, scribble, query, load elsewhere, compare every byte."""
        import numpy as np

        rng = np.random.default_rng(seed)
        mismatches = []
        for round_ in range(rounds):
            src = list(range(blocks))
            dst = list(range(blocks, 2 * blocks))[::-1]
            hashes = [rng.bytes(32) for _ in src]
            self.cache.fill_random(src, seed * 1000 + round_)
            expected = {
                (layer, b): self.cache.block_bytes(layer, b) for b in src for layer in range(self.cache.num_layers)
            }
            saved = self.op_save([[b, h.hex()] for b, h in zip(src, hashes)])
            if saved != {"blocks_stored": blocks, "blocks_skipped": 0, "blocks_sealed": blocks}:
                mismatches.append(f"round {round_}: save replied {saved}")
            self.cache.scribble(src + dst)
            hit = self.client.query(namespace, hashes).hit_blocks
            if hit != blocks:
                mismatches.append(f"round {round_}: query hit {hit} of {blocks}")
            loaded = self.op_load([[d, h.hex()] for d, h in zip(dst, hashes)])
            if (loaded["state"], loaded["loaded"], loaded["failed"]) != ("DONE", blocks, 0):
                mismatches.append(f"round {round_}: load ended {loaded}")
            for s, d in zip(src, dst):
                for layer in range(self.cache.num_layers):
                    if self.cache.block_bytes(layer, d) != expected[layer, s]:
                        mismatches.append(f"round {round_}: block {s} -> {d} layer {layer} differs")
        return {"rounds": rounds, "mismatches": mismatches}

    def op_exit(self):
        if self.session is not None:
            self.session.close()
        if self.cache is not None:
            self.cache.close()
            self.cache.unlink()
        if self.flags is not None:
            self.flags.close()
            self.flags.unlink()
        if self.client is not None:
            self.client.close()


def _refs(blocks: list) -> list[tuple[int, bytes]]:
    return [(int(b), bytes.fromhex(h)) for b, h in blocks]


def main() -> None:
    worker = _Worker()
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        try:
            reply = {"ok": getattr(worker, "op_" + op)(**command)}
        except EngineError as e:
            reply = {"error": {"code": e.code.name, "details": e.details, "method": e.method}}
        except Exception:  # noqa: BLE001 - any failure goes back to the test as a reply, with its traceback
            reply = {"crash": traceback.format_exc()}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if op == "exit":
            return


# ---------------------------------------------------------------- the test side


class WorkerCrashed(RuntimeError):
    pass


class WorkerProcess:
    """A ``kv_worker.py`` child process. Every call has a timeout; ``close`` always (or use ``with``)."""

    def __init__(self, endpoint: str, name: str = "worker"):
        self.name = name
        self._stderr = tempfile.NamedTemporaryFile(prefix=f"pegaflow-{name}-", suffix=".log", delete=False)  # noqa: SIM115 - open for the child's life
        env = dict(os.environ)
        package_dir = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = package_dir + os.pathsep + env.get("PYTHONPATH", "")
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        self._replies: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True)
        self._reader.start()
        self.pid = self.process.pid
        self.call("connect", endpoint=endpoint)

    def _read(self) -> None:
        for line in self.process.stdout:
            self._replies.put(json.loads(line))
        self._replies.put(None)  # EOF: the process ended

    def call(self, op: str, timeout_s: float = 30.0, **args):
        """Runs one command in the worker; returns its result, raises EngineError as the worker saw it."""
        self.send(op, **args)
        return self.reply(op, timeout_s)

    def send(self, op: str, **args) -> None:
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()

    def reply(self, op: str, timeout_s: float = 30.0):
        try:
            reply = self._replies.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(f"{self.name}: no reply to {op!r} within {timeout_s} s") from None
        if reply is None:
            raise WorkerCrashed(f"{self.name} exited ({self.process.poll()}) during {op!r}: {self.stderr_tail()}")
        if "error" in reply:
            e = reply["error"]
            raise EngineError(grpc.StatusCode[e["code"]], e["details"], e["method"])
        if "crash" in reply:
            raise WorkerCrashed(f"{self.name} failed in {op!r}:\n{reply['crash']}")
        return reply["ok"]

    def stderr_tail(self, chars: int = 4000) -> str:
        try:
            return Path(self._stderr.name).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no clean-up runs in the worker, its sockets are closed by the kernel."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def close(self, timeout_s: float = 15.0) -> None:
        if self.process.poll() is None:
            try:
                self.call("exit", timeout_s=timeout_s)
                self.process.wait(timeout_s)
            except (TimeoutError, WorkerCrashed, EngineError, subprocess.TimeoutExpired, BrokenPipeError):
                self.kill()
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        self._stderr.close()
        os.unlink(self._stderr.name)

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    main()
