#!/usr/bin/env python3
"""vLLM with the PegaFlow connector: one deterministic prompt twice, the second time served from the node's pool.

    ./pegaflow node --device 0 --pool-size 16gb                   # on the GPU machine, in another shell
    pip install ./python                                          # into vLLM's environment
    python3 examples/basic_vllm.py [--model Qwen/Qwen2.5-0.5B-Instruct] [--endpoint 127.0.0.1:50055]

Loads the model through vLLM with ``PegaKVConnector`` (``kv_role`` ``kv_both``, ``sha256_cbor`` block hashes), runs
the prompt once (cold: computed, its full blocks saved to the node), empties vLLM's own prefix cache, runs it again
(warm: the prefix loaded from the node instead of recomputed), prints both latencies and exits 0 only if both runs
produced the same tokens (greedy sampling). Needs vLLM and a GPU; vLLM is imported only inside ``main``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
PARAGRAPH = (
    "PegaFlow keeps the attention KV blocks of every prompt it has seen in a large pinned host pool, so that a later"
    " request sharing the prefix loads them instead of computing them again. "
)


def kv_transfer_config(endpoint: str, namespace: str | None = None) -> dict:
    """The ``--kv-transfer-config`` of the README, as a dict (``LLM(kv_transfer_config=...)`` takes the same)."""
    extra = {"pegaflow.endpoint": endpoint}
    if namespace:
        extra["pegaflow.namespace"] = namespace
    return {
        "kv_connector": "PegaKVConnector",
        "kv_connector_module_path": "pegaflow.vllm",
        "kv_role": "kv_both",
        "kv_connector_extra_config": extra,
    }


def deterministic_prompt(words: int) -> str:
    """About ``words`` words of fixed text plus a question: the same prompt on every run and machine."""
    text = (PARAGRAPH * (words // len(PARAGRAPH.split()) + 1)).split()[:words]
    return " ".join(text) + "\n\nIn one sentence, what does PegaFlow keep, and why?"


def compare(cold: list[int], warm: list[int]) -> str | None:
    """None when both runs produced the same tokens, else where they first differ."""
    if cold == warm:
        return None
    first = next((i for i, (a, b) in enumerate(zip(cold, warm)) if a != b), min(len(cold), len(warm)))
    return f"outputs differ at token {first}: cold {cold[first : first + 5]}, warm {warm[first : first + 5]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--endpoint", default="127.0.0.1:50055", help="the local node's gRPC address")
    parser.add_argument("--prompt-words", type=int, default=3000, help="prompt length in words (default 3000)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5)
    args = parser.parse_args(argv)
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        print("vLLM is not installed here: pip install vllm (on a machine with a GPU)", file=sys.stderr)
        return 2

    llm = LLM(
        model=args.model,
        kv_transfer_config=kv_transfer_config(args.endpoint),
        prefix_caching_hash_algo="sha256_cbor",  # blocks keyed the same in every process and on every node
        gpu_memory_utilization=args.gpu_memory_utilization,
        enforce_eager=False,
    )
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, seed=0)
    prompt = deterministic_prompt(args.prompt_words)
    outputs, seconds = [], []
    for run in ("cold", "warm"):
        if run == "warm":
            llm.reset_prefix_cache()  # vLLM's own cache emptied: the prefix has to come from PegaFlow
        started = time.perf_counter()
        (result,) = llm.generate([prompt], params)
        seconds.append(time.perf_counter() - started)
        outputs.append(list(result.outputs[0].token_ids))
        print(f"{run}: {seconds[-1] * 1e3:.0f} ms, {len(result.prompt_token_ids)} prompt tokens")
    print(json.dumps({"cold_ms": round(seconds[0] * 1e3, 1), "warm_ms": round(seconds[1] * 1e3, 1)}))
    problem = compare(*outputs)
    print("outputs equal" if problem is None else f"FAILED: {problem}")
    return 0 if problem is None else 1


if __name__ == "__main__":
    sys.exit(main())
