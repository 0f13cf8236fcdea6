#!/usr/bin/env python3
"""The Engine API's control path from Python over real gRPC on loopback: what a Save, Query and Load cost beyond the
copy, before and after packed blocks, with each way of waiting for a load's end, in one run.

    python3 bench/python/control_path.py [--blocks 625] [--iterations 300] [--before-root DIR]
                                         [--out bench/results/control-path.md]

It starts a node (``./pegaflow node``, 64 MiB pool, host copy engine; ``--before-root``: a second node from another
checkout, e.g. the commit before packed blocks, for a "before" column served by the old code), registers a host
stand-in of a vLLM KV cache (a shared-memory file of 32 layers with 32-byte blocks, so the copies are tiny and the
control path is what is measured), saves ``--blocks`` blocks under 32-byte hashes (vLLM's sha256 width), then times,
round-robin in one loop (so drift hits every row alike), with ``time.perf_counter_ns`` around each call:

- Save of the ``--blocks`` blocks, already sealed (no copy): BlockRef per block (the older form, request built per
  call) and packed (``EngineClient.save``);
- Query of the ``--blocks`` hashes: repeated bytes and packed;
- Load of the ``--blocks`` blocks (a real copy, 32 bytes per block and layer), from the call to the end the client
  sees: BlockRefs + flag polled with growing sleeps (the older client), packed + flag with each
  wait strategy (futex, spin), and packed with ``reply_when_done`` (one RPC, no flag);
- Fabric.Health, the floor of any call from Python here;
- client-side building + serializing of each Save request (no call).
Prints a Markdown report and writes it to --out.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

from pegaflow import channel as channel_module  # noqa: E402 - after sys.path
from pegaflow._proto import engine_pb2, engine_pb2_grpc  # noqa: E402
from pegaflow.client import EngineClient, FabricClient, _block_refs  # noqa: E402
from pegaflow.flag import LoadFlagFile, LoadState  # noqa: E402
from pegaflow.shm import HOST_DEVICE, SharedKVCache  # noqa: E402

LAYERS = 32
NAMESPACE = "control-path/bench"


def stats_us(samples_ns: list[int]) -> dict[str, float]:
    a = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return {
        "n": len(a),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "mean": float(a.mean()),
    }


def tiny_host_cache(blocks: int) -> SharedKVCache:
    """A host stand-in KV cache of 32 layers with 32-byte blocks (2 x blocks + 8): the copies are tiny, so a call's
    control path is what is timed."""
    return SharedKVCache(num_layers=LAYERS, num_blocks=2 * blocks + 8, block_size=1, num_kv_heads=1, head_size=8)


def register_host_cache(client: EngineClient, instance: str, namespace: str, cache: SharedKVCache) -> str:
    """Registers ``cache`` (every layer, TP 1) under ``namespace``; returns the context id."""
    reg = client.register_context(instance, namespace, 0, 1, 0, LAYERS, HOST_DEVICE, cache.layer_registrations())
    return reg.context_id


class Worker:
    """One registered host KV cache on one node, with the calls this benchmark times."""

    def __init__(self, endpoint: str, blocks: int, tag: str):
        self.cache = tiny_host_cache(blocks)
        # Every row of the older tables runs over gRPC (command_channel=False); the shm rows use self.shm, whose
        # session opened the node's command channel.
        self.client = EngineClient(endpoint, timeout_s=30, command_channel=False)
        self.shm = EngineClient(endpoint, timeout_s=30, command_channel=True)
        self.stub = engine_pb2_grpc.EngineStub(self.client._channel)
        self.ctx = register_host_cache(self.client, f"bench-{tag}", NAMESPACE, self.cache)
        self.session = self.shm.open_session(self.ctx)
        self.has_channel = channel_module.lookup(endpoint, self.ctx) is not None
        self.flags = LoadFlagFile(slots=2)
        self.slot = self.flags.slot(0)
        self.fabric = FabricClient(endpoint, timeout_s=30)
        self.src = list(range(blocks))
        self.dst = list(range(blocks, 2 * blocks))
        self.hashes = [hashlib.sha256(f"{tag}/{i}".encode()).digest() for i in range(blocks)]
        self.cache.fill_random(self.src, seed=1)

    # The older client: a message per block, built per call, through the raw stub.
    def save_refs(self):
        request = engine_pb2.SaveRequest(context_id=self.ctx, blocks=_block_refs(zip(self.src, self.hashes)))
        return self.stub.Save(request, timeout=30)

    def query_repeated(self):
        return self.stub.Query(
            engine_pb2.QueryRequest(namespace=NAMESPACE, hashes=list(self.hashes)),
            timeout=30,
        )

    def load_refs_sleep_poll(self):
        self.slot.reset()
        request = engine_pb2.LoadRequest(
            context_id=self.ctx,
            blocks=_block_refs(zip(self.dst, self.hashes)),
            flag=self.slot.to_proto(),
        )
        reply = self.stub.Load(request, timeout=30)
        assert not reply.failed_block_ids, reply
        assert self.slot.wait(30, strategy="sleep") is LoadState.DONE

    # This client.
    def save_packed(self):
        return self.client.save(self.ctx, list(zip(self.src, self.hashes)))

    def query_packed(self):
        return self.client.query(NAMESPACE, self.hashes)

    # The same calls over the same-host command channel.
    def save_shm(self):
        reply = self.shm.save(self.ctx, list(zip(self.src, self.hashes)))
        assert self.shm.last_path == "shm" and reply.blocks_skipped == len(self.hashes), reply
        return reply

    def query_shm(self):
        reply = self.shm.query(NAMESPACE, self.hashes)
        assert self.shm.last_path == "shm" and reply.hit_blocks == len(self.hashes), reply
        return reply

    def load_shm_reply_when_done(self):
        reply = self.shm.load(self.ctx, list(zip(self.dst, self.hashes)), reply_when_done=True)
        assert self.shm.last_path == "shm", self.shm.last_path
        assert reply.done_state == 1 and reply.blocks_loaded == len(self.hashes), reply

    def load_shm_flag(self):
        self.slot.reset()
        reply = self.shm.load(self.ctx, list(zip(self.dst, self.hashes)), self.slot)
        assert self.shm.last_path == "shm" and not reply.failed_block_ids, reply
        assert self.slot.wait(30, strategy="futex") is LoadState.DONE

    def load_flag(self, strategy: str):
        self.slot.reset()
        reply = self.client.load(self.ctx, list(zip(self.dst, self.hashes)), self.slot)
        assert not reply.failed_block_ids, reply
        assert self.slot.wait(30, strategy=strategy) is LoadState.DONE

    def load_reply_when_done(self):
        reply = self.client.load(self.ctx, list(zip(self.dst, self.hashes)), reply_when_done=True)
        assert reply.done_state == 1 and reply.blocks_loaded == len(self.hashes), reply

    def health(self):
        return self.fabric.health()

    def close(self):
        self.session.close()
        self.shm.close()
        self.client.close()
        self.fabric.close()
        self.flags.close()
        self.flags.unlink()
        self.cache.close()
        self.cache.unlink()


def _handler_sum_count(metrics_url: str, method: str) -> tuple[float, float] | None:
    import re
    import urllib.request

    try:
        text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    except Exception:  # noqa: BLE001 - metrics are optional in this report
        return None
    found = {}
    for kind in ("sum", "count"):
        for line in text.splitlines():
            if line.startswith(f"pegaflow_grpc_request_duration_seconds_{kind}{{") and all(
                f'{k}="{v}"' in line
                for k, v in (
                    ("service", "Engine"),
                    ("method", method),
                    ("status", "OK"),
                )
            ):
                found[kind] = float(re.split(r"\s+", line.strip())[-1])
    return (found["sum"], found["count"]) if len(found) == 2 else None


def handler_mean_us(metrics_url: str, method: str, call, n: int) -> float | None:
    """The node's own mean time for ``n`` calls of one kind (metrics tick about once a second: waits around them)."""
    time.sleep(1.5)
    before = _handler_sum_count(metrics_url, method)
    for _ in range(n):
        call()
    time.sleep(1.5)
    after = _handler_sum_count(metrics_url, method)
    if before is None or after is None or after[1] - before[1] < n:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * 1e6


def _all_rows(new: Worker) -> dict[str, tuple]:
    return {
        "Save, BlockRef per block (older form)": (new.save_refs,),
        "Save, packed (EngineClient.save)": (new.save_packed,),
        "Query, repeated bytes (older form)": (new.query_repeated,),
        "Query, packed (EngineClient.query)": (new.query_packed,),
        "Load, BlockRefs, flag polled with sleeps (older client)": (new.load_refs_sleep_poll,),
        "Load, packed, flag, futex wait": (lambda: new.load_flag("futex"),),
        "Load, packed, flag, spin then sleeps": (lambda: new.load_flag("spin"),),
        "Load, packed, flag, sleeps only": (lambda: new.load_flag("sleep"),),
        "Load, packed, reply_when_done (one RPC, no flag)": (new.load_reply_when_done,),
        "Fabric.Health (the floor)": (new.health,),
        "client: build + serialize the BlockRef SaveRequest (no call)": (lambda: build_refs(new),),
        "client: build + serialize the packed SaveRequest (no call)": (lambda: build_packed(new),),
    }


def build_refs(w: Worker) -> bytes:
    return engine_pb2.SaveRequest(context_id=w.ctx, blocks=_block_refs(zip(w.src, w.hashes))).SerializeToString()


def build_packed(w: Worker) -> bytes:
    from pegaflow.client import _save_request

    return _save_request(w.ctx, list(zip(w.src, w.hashes)), None).SerializeToString()


class JavaNode:
    """A node started as a plain JVM (``--java``): no launcher, no prometheus-client needed."""

    def __init__(
        self,
        java: str,
        classpath: str,
        log_path: Path,
        pool_size: str = "64mb",
        jvm_opts: list[str] | None = None,
    ):
        grpc_port, cluster_port, metrics_port = free_port(), free_port(), free_port()
        self.endpoint = f"127.0.0.1:{grpc_port}"
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        argv = [
            java,
            "--enable-native-access=ALL-UNNAMED",
            "--sun-misc-unsafe-memory-access=allow",
            *(jvm_opts or []),
            "-cp",
            classpath,
        ]
        argv += [
            "io.pegaflow.fabric.cli.Main",
            "node",
            "--addr",
            self.endpoint,
            "--cluster-port",
            str(cluster_port),
        ]
        argv += [
            "--metrics-port",
            str(metrics_port),
            "--pool-size",
            pool_size,
            "--log-level",
            "warn",
        ]
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.log_path = log_path
        deadline = time.monotonic() + 120
        with FabricClient(self.endpoint, timeout_s=1) as fabric:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"node exited with {self.process.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    fabric.health()
                    return
                except Exception:  # noqa: BLE001 - not up yet: retry until the deadline
                    if time.monotonic() > deadline:
                        self.process.kill()
                        raise RuntimeError(f"node not serving after 120 s:\n{log_path.read_text()[-3000:]}") from None
                    time.sleep(0.2)

    def stop(self) -> None:
        try:
            with FabricClient(self.endpoint, timeout_s=2) as fabric:
                fabric.shutdown(fabric.health().node_id, "control-path bench done")
            self.process.wait(timeout=30)
        except Exception:  # noqa: BLE001 - a node that does not stop cleanly is killed
            self.process.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(args):
    """The node under test: through the launcher (pegaflow_testing.LocalNode), or (``--java``) a plain JVM."""
    if args.java:
        return JavaNode(args.java, args.classpath, Path(args.node_log))
    from pegaflow_testing.localnode import LocalNode

    return LocalNode.start(pool_size="64mb", log_level="warn", timeout_s=300)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--blocks", type=int, default=625)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument(
        "--node-calls",
        type=int,
        default=200,
        help="calls per kind for the node-side handler times",
    )
    p.add_argument("--before-root", help="a checkout (built) whose node serves the 'before' rows")
    p.add_argument(
        "--before-packed",
        action="store_true",
        help="the before node speaks packed blocks (a newer main): time it with the same packed calls as this one",
    )
    p.add_argument(
        "--core-rows",
        action="store_true",
        help="only Health, the packed Save, Query and Load (futex, reply_when_done) and the packed build",
    )
    p.add_argument(
        "--java",
        help="start the node with this java binary (and --classpath) instead of ./pegaflow",
    )
    p.add_argument("--classpath", default="fabric/target/pegaflow-fabric.jar:fabric/target/lib/*")
    p.add_argument(
        "--node-log",
        default="/tmp/pegaflow-node-control-path.log",
        help="the --java node's log",
    )
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "control-path.md"))
    args = p.parse_args()

    nodes: dict[str, object] = {}
    workers: dict[str, Worker] = {}
    try:
        nodes["new"] = start_node(args)
        if args.before_root:
            from pegaflow_testing.localnode import LocalNode

            nodes["before"] = LocalNode.start(
                pool_size="64mb", log_level="warn", root=Path(args.before_root), timeout_s=300
            )
        for name, node in nodes.items():
            workers[name] = Worker(node.endpoint, args.blocks, name)
        new = workers["new"]
        for name, w in workers.items():
            saved = w.save_refs()
            assert saved.blocks_sealed == args.blocks, (name, saved)
            check = w.save_refs() if name == "before" and not args.before_packed else w.save_packed()
            assert check.blocks_skipped == args.blocks, check
        new.load_reply_when_done()
        assert all(new.cache.block_bytes(0, d) == new.cache.block_bytes(0, s) for s, d in zip(new.src, new.dst))

        series: dict[str, tuple] = {}
        if "before" in workers and args.before_packed:
            b = workers["before"]
            series["before node: Fabric.Health"] = (b.health,)
            series["before node: Save, packed"] = (b.save_packed,)
            series["before node: Query, packed"] = (b.query_packed,)
            series["before node: Load, packed, flag, futex wait"] = (lambda: b.load_flag("futex"),)
            series["before node: Load, packed, reply_when_done"] = (b.load_reply_when_done,)
        elif "before" in workers:
            b = workers["before"]
            series["before node: Save, BlockRef per block"] = (b.save_refs,)
            series["before node: Query, repeated bytes"] = (b.query_repeated,)
            series["before node: Load, BlockRefs, flag polled with sleeps"] = (b.load_refs_sleep_poll,)
            series["before node: Fabric.Health"] = (b.health,)
        if args.core_rows:
            series["Fabric.Health (the floor)"] = (new.health,)
            series["Save, packed (EngineClient.save)"] = (new.save_packed,)
            series["Query, packed (EngineClient.query)"] = (new.query_packed,)
            series["Load, packed, flag, futex wait"] = (lambda: new.load_flag("futex"),)
            series["Load, packed, reply_when_done (one RPC, no flag)"] = (new.load_reply_when_done,)
            series["client: build + serialize the packed SaveRequest (no call)"] = (lambda: build_packed(new),)
        else:
            series.update(_all_rows(new))
        if new.has_channel:
            series["shm: Save, sealed (EngineClient.save over the command channel)"] = (new.save_shm,)
            series["shm: Query (command channel)"] = (new.query_shm,)
            series["shm: Load, reply_when_done: the end seen by the client (command channel)"] = (
                new.load_shm_reply_when_done,
            )
            series["shm: Load, flag, futex wait (command channel)"] = (new.load_shm_flag,)

        samples: dict[str, list[int]] = {name: [] for name in series}
        clock = time.perf_counter_ns
        for it in range(args.warmup + args.iterations):
            for name, (call,) in series.items():
                start = clock()
                call()
                if it >= args.warmup:
                    samples[name].append(clock() - start)
        node_side = {}
        for name, node in nodes.items():
            w = workers[name]
            phases = {"Save, BlockRef per block": ("Save", w.save_refs)}
            if name != "before" or args.before_packed:
                phases["Save, packed"] = ("Save", w.save_packed)
                phases["Query, packed"] = ("Query", w.query_packed)
            phases["Query, repeated bytes"] = ("Query", w.query_repeated)
            for label, (method, call) in phases.items():
                node_side[f"{name} node: {label}"] = handler_mean_us(node.metrics_url, method, call, args.node_calls)
        wire_refs, wire_packed = len(build_refs(new)), len(build_packed(new))
        load_avg = os.getloadavg()
    finally:
        for w in workers.values():
            w.close()
        for node in nodes.values():
            node.stop()

    stats = {name: stats_us(s) for name, s in samples.items()}
    lines = report(args, stats, wire_refs, wire_packed, load_avg)
    lines += [
        "",
        f"Node-side handler time (mean of {args.node_calls} calls of one kind, from the node's "
        "pegaflow_grpc_request_duration_seconds: parsing excluded, the handler, the store and the copy thread's "
        "bookkeeping included):",
        "",
        "| what | mean µs |",
        "|---|---:|",
    ]
    for label, us in node_side.items():
        lines.append(f"| {label} | {us:.0f} |" if us is not None else f"| {label} | (no metrics) |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)
    return 0


def _short_argv(argv: list[str]) -> list[str]:
    """The command line with a long class path shortened to its first entry's folder."""
    out = []
    for i, arg in enumerate(argv):
        if i > 0 and argv[i - 1] == "--classpath" and len(arg) > 80:
            arg = os.path.dirname(arg.split(":")[0]) + "/*.jar (joined with ':')"
        out.append(arg)
    return out


def report(args, stats, wire_refs: int, wire_packed: int, load_avg) -> list[str]:
    java_bin = args.java or os.path.join(os.environ.get("JAVA_HOME", "/usr"), "bin", "java")
    java = subprocess.run([java_bin, "-version"], capture_output=True, text=True, check=False).stderr.splitlines()[:1]
    java = ("node JVM: " + java[0]) if java and args.java else "node JVM: the ./pegaflow launcher's JDK"
    import google.protobuf
    import grpc

    lines = [
        "# Control path: Save, Query and Load beyond the copy, from Python over loopback gRPC and the command channel",
        "",
        f"Produced by `bench/python/control_path.py` on {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}.",
        "",
        (
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
            f"python {platform.python_version()}, grpcio {grpc.__version__}, protobuf {google.protobuf.__version__}; "
            f"{java.strip()}; load average at the end {load_avg[0]:.2f} {load_avg[1]:.2f} {load_avg[2]:.2f}."
        ),
        "",
        "Command:",
        "",
        "    " + shlex.join(["python3", "bench/python/control_path.py", *_short_argv(sys.argv[1:])]),
        "",
        (
            f"{args.blocks} blocks of 32-byte hashes, {LAYERS} layers of 32 bytes per block (a host stand-in: the copy "
            f"is {args.blocks * LAYERS * 32 // 1024} KiB, so what is timed is the control path); {args.iterations} "
            f"timed rounds after {args.warmup} warm-up rounds, every row once per round (round-robin). Request on the "
            f"wire: {wire_refs} bytes with a BlockRef per block, {wire_packed} bytes packed. Rows without 'shm:' run "
            "over gRPC (EngineClient(command_channel=False)); 'shm:' rows over the same-host command channel."
        ),
        "",
        "| what (microseconds) | n | p50 | p90 | p99 | mean |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in stats.items():
        lines.append(f"| {name} | {s['n']} | {s['p50']:.0f} | {s['p90']:.0f} | {s['p99']:.0f} | {s['mean']:.0f} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
