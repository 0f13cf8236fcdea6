"""Two vLLM-shaped requests sharing a prefix, through the real connector and a running node.

    python3 -m pegaflow_testing.vllm_demo --endpoint 127.0.0.1:50055 [--load-endpoint 127.0.0.1:50056]
        [--prompt-tokens 256] [--layers 8] [--seed N]

Two engine instances of one fake model (``pegaflow_testing.fake_vllm``: vLLM's scheduler loop and workers stood in
for, the connector real) share a namespace. Instance A computes a prompt and the connector saves its full blocks;
instance B gets the same prompt plus a suffix: the connector's lookup finds the prefix in the pool, the worker loads
it, and before computing the suffix the fake worker checks that every loaded token holds exactly the bytes the model
wrote.

With ``--load-endpoint`` naming another node of the same cluster, instance B runs on that node and its connector
queries with cluster scope (``pegaflow.query_scope: cluster``): the prefix is a cross-node hit, the node fetches the
blocks from the first node over its transport, and ``Locate`` then names both nodes as holders of every block.
Exit status 0 only if the whole prefix was saved, hit, loaded and verified (1 on a mismatch or short count, 2 when
the node cannot be reached).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

from pegaflow.client import FabricClient
from pegaflow.errors import EngineError
from pegaflow.vllm.block_hash import block_hashes
from pegaflow_testing.fake_vllm import EngineOptions, FakeEngine, ModelShape, prompt

# The directory learns of seals asynchronously (batched publishes): how long to wait for it to show them.
DIRECTORY_WAIT_S = 20.0
REGISTER_WAIT_S = 30.0


def _node_id(endpoint: str) -> str:
    with FabricClient(endpoint, timeout_s=5.0) as fabric:
        return fabric.health().node_id


def _await_holders(endpoint: str, namespace: str, hashes: list[bytes], wanted: set[str]) -> list[list[str]]:
    """Locate on ``endpoint`` until every block names all of ``wanted`` (or the wait ends); the last holders."""
    deadline = time.monotonic() + DIRECTORY_WAIT_S
    with FabricClient(endpoint, timeout_s=5.0) as fabric:
        while True:
            located = fabric.locate(namespace, hashes)
            holders = [sorted(b.node_ids) for b in located.blocks]
            if all(wanted <= set(h) for h in holders) or time.monotonic() > deadline:
                return holders
            time.sleep(0.2)


def _await_registered(engine: FakeEngine) -> None:
    """The workers register their KV caches in the background: on a slow machine a request could otherwise run first
    (and, correctly, recompute everything)."""
    if not all(engine.call_workers("connected", REGISTER_WAIT_S)):
        print(f"warning: a worker was not registered with its node within {REGISTER_WAIT_S:.0f} s")


def _holders_line(holders: list[list[str]]) -> str:
    """``blocks 0..15: n1, n2`` per run of blocks with the same holders."""
    runs, start = [], 0
    for i in range(1, len(holders) + 1):
        if i == len(holders) or holders[i] != holders[start]:
            names = ", ".join(holders[start]) or "none"
            runs.append(f"block {start}: {names}" if i - start == 1 else f"blocks {start}..{i - 1}: {names}")
            start = i
    return "; ".join(runs)


def run(endpoint: str, prompt_tokens: int, layers: int, seed: int, load_endpoint: str | None = None) -> int:
    shape = ModelShape(
        num_layers=layers,
        num_kv_heads=8,
        head_size=128,
        block_size=16,
        num_gpu_blocks=2 * (prompt_tokens // 16) + 8,
        model=f"demo/llama-like-{uuid.uuid4().hex[:8]}",  # a fresh namespace: the first request is really cold
    )
    options = {"shape": shape, "extra_config": {"pegaflow.endpoint": endpoint}, "max_num_batched_tokens": 512}
    prefix = prompt(seed, prompt_tokens)
    full_blocks = prompt_tokens // shape.block_size
    cross_node = load_endpoint is not None and load_endpoint != endpoint
    load_options = options
    if cross_node:
        load_options = {
            **options,
            "extra_config": {"pegaflow.endpoint": load_endpoint, "pegaflow.query_scope": "cluster"},
        }
        saver_id, loader_id = _node_id(endpoint), _node_id(load_endpoint)
        hashes = block_hashes(prefix, shape.block_size)[:full_blocks]

    with FakeEngine(EngineOptions(**options)) as first:
        _await_registered(first)
        first.add_request("demo-1", prefix, max_tokens=2)
        first.run()
        saved = first.totals()
        namespace = first.namespace
    if cross_node:
        # Instance B's node learns of the blocks through the directory, asynchronously: wait until it shows them.
        _await_holders(load_endpoint, namespace, hashes, {saver_id})
    with FakeEngine(EngineOptions(**load_options)) as second:
        _await_registered(second)
        second.add_request("demo-2", prefix + prompt(seed + 1, 16), max_tokens=2)
        started = time.perf_counter()
        second.run()
        elapsed_ms = (time.perf_counter() - started) * 1e3
        loaded = second.totals()
        result = second.scheduler.results["demo-2"]
        verified, mismatches = second.verified_blocks, list(second.mismatches)

    saved_blocks = int(saved.get("saved_blocks", 0) + saved.get("save_skipped_blocks", 0))
    hit_blocks = result.external_tokens // shape.block_size
    loaded_blocks = int(loaded.get("loaded_blocks", 0))
    load_ms = 1e3 * loaded.get("load_seconds_sum", 0.0)
    node_ms = 1e3 * loaded.get("load_node_seconds_sum", 0.0)
    where_a = f" on node {saver_id}" if cross_node else ""
    where_b = f" on node {loader_id}, cluster-scope query" if cross_node else ""
    print(f"namespace {namespace}")
    print(f"request 1 (instance A{where_a}): {prompt_tokens} prompt tokens computed, {saved_blocks} blocks saved")
    print(
        f"request 2 (instance B{where_b}): {result.num_prompt_tokens} prompt tokens,"
        f" {result.external_tokens} from PegaFlow:"
        f" {hit_blocks} blocks hit, {loaded_blocks} loaded ({load_ms:.1f} ms, node copy {node_ms:.1f} ms),"
        f" {verified} verified byte-exact;"
        f" request done in {elapsed_ms:.0f} ms"
    )
    for line in mismatches[:5]:
        print(f"MISMATCH {line}")
    ok = saved_blocks >= full_blocks and hit_blocks == full_blocks == loaded_blocks == verified and not mismatches
    if cross_node:
        holders = _await_holders(load_endpoint, namespace, hashes, {saver_id, loader_id})
        both = all({saver_id, loader_id} <= set(h) for h in holders)
        print(
            f"cross-node hit: {loaded_blocks} blocks loaded on {loader_id} from {saver_id};"
            f" locate on {loader_id}: {_holders_line(holders)}"
        )
        ok = ok and both
    print("OK" if ok else "FAILED: the prefix did not come back exactly")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m pegaflow_testing.vllm_demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True, help="the node's gRPC address, HOST:PORT")
    parser.add_argument(
        "--load-endpoint",
        help="another node of the cluster for instance B (cluster-scope query, cross-node load); default: --endpoint",
    )
    parser.add_argument("--prompt-tokens", type=int, default=256, help="shared prefix length (default 256)")
    parser.add_argument("--layers", type=int, default=8, help="model layers (default 8)")
    parser.add_argument("--seed", type=int, default=7, help="prompt seed (default 7)")
    args = parser.parse_args(argv)
    if args.prompt_tokens < 16 or args.layers < 1:
        parser.error("--prompt-tokens must be at least 16 and --layers at least 1")
    try:
        for endpoint in filter(None, (args.endpoint, args.load_endpoint)):
            with FabricClient(endpoint, timeout_s=5.0) as fabric:
                fabric.health()
    except EngineError as e:
        print(f"node {endpoint} not reachable: {e}", file=sys.stderr)
        return 2
    try:
        return run(args.endpoint, args.prompt_tokens, args.layers, args.seed, args.load_endpoint)
    except EngineError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
