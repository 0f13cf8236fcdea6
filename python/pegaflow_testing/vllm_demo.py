"""Two vLLM-shaped requests sharing a prefix, through the real connector and a running node.

    python3 -m pegaflow_testing.vllm_demo --endpoint 127.0.0.1:50055 [--prompt-tokens 256] [--layers 8] [--seed N]

Two engine instances of one fake model (``pegaflow_testing.fake_vllm``: vLLM's scheduler loop and workers stood in
for, the connector real) share a namespace. Instance A computes a prompt and the connector saves its full blocks;
instance B gets the same prompt plus a suffix: the connector's lookup finds the prefix in the pool, the worker loads
it, and before computing the suffix the fake worker checks that every loaded token holds exactly the bytes the model
wrote.
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
from pegaflow_testing.fake_vllm import EngineOptions, FakeEngine, ModelShape, prompt


def run(endpoint: str, prompt_tokens: int, layers: int, seed: int) -> int:
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

    with FakeEngine(EngineOptions(**options)) as first:
        first.add_request("demo-1", prefix, max_tokens=2)
        first.run()
        saved = first.totals()
        namespace = first.namespace
    with FakeEngine(EngineOptions(**options)) as second:
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
    print(f"namespace {namespace}")
    print(f"request 1 (instance A): {prompt_tokens} prompt tokens computed, {saved_blocks} blocks saved")
    print(
        f"request 2 (instance B): {result.num_prompt_tokens} prompt tokens, {result.external_tokens} from PegaFlow:"
        f" {hit_blocks} blocks hit, {loaded_blocks} loaded ({load_ms:.1f} ms, node copy {node_ms:.1f} ms),"
        f" {verified} verified byte-exact;"
        f" request done in {elapsed_ms:.0f} ms"
    )
    for line in mismatches[:5]:
        print(f"MISMATCH {line}")
    ok = saved_blocks >= full_blocks and hit_blocks == full_blocks == loaded_blocks == verified and not mismatches
    print("OK" if ok else "FAILED: the prefix did not come back exactly")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m pegaflow_testing.vllm_demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True, help="the node's gRPC address, HOST:PORT")
    parser.add_argument("--prompt-tokens", type=int, default=256, help="shared prefix length (default 256)")
    parser.add_argument("--layers", type=int, default=8, help="model layers (default 8)")
    parser.add_argument("--seed", type=int, default=7, help="prompt seed (default 7)")
    args = parser.parse_args(argv)
    if args.prompt_tokens < 16 or args.layers < 1:
        parser.error("--prompt-tokens must be at least 16 and --layers at least 1")
    try:
        with FabricClient(args.endpoint, timeout_s=5.0) as fabric:
            fabric.health()
    except EngineError as e:
        print(f"node {args.endpoint} not reachable: {e}", file=sys.stderr)
        return 2
    try:
        return run(args.endpoint, args.prompt_tokens, args.layers, args.seed)
    except EngineError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
