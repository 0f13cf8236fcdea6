"""The examples for vLLM users (examples/basic_vllm.py, examples/bench_kv_cache.py): they need vLLM and a GPU to run,
so here their vLLM-free parts are checked, and the flow basic_vllm.py relies on runs through the vLLM-shaped harness
against a real node."""

from __future__ import annotations

import importlib.util
import json

import pytest

from pegaflow.vllm.config import ConnectorSettings
from pegaflow_testing.fake_vllm import EngineOptions, FakeEngine, ModelShape, prompt
from pegaflow_testing.localnode import free_port, repo_root

EXAMPLES = repo_root() / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_basic_vllm_builds_the_readme_connector_config_and_a_fixed_prompt():
    basic = _load("basic_vllm")
    config = basic.kv_transfer_config("127.0.0.1:50055")
    assert config["kv_connector"] == "PegaKVConnector" and config["kv_connector_module_path"] == "pegaflow.vllm"
    assert ConnectorSettings.from_extra_config(config["kv_connector_extra_config"]).endpoint == "127.0.0.1:50055"
    assert basic.deterministic_prompt(3000) == basic.deterministic_prompt(3000)
    assert 3000 <= len(basic.deterministic_prompt(3000).split()) < 3020
    assert basic.compare([1, 2, 3], [1, 2, 3]) is None
    assert "token 1" in basic.compare([1, 2, 3], [1, 5, 3])


def test_basic_vllm_without_vllm_says_so_and_exits_2(capsys):
    if importlib.util.find_spec("vllm") is not None:  # vLLM cannot be installed on these machines
        pytest.skip("vLLM is installed here: the example would load a model")
    assert _load("basic_vllm").main([]) == 2
    assert "vLLM is not installed" in capsys.readouterr().err


def test_bench_kv_cache_command_lines_and_result_parsing(tmp_path):
    bench = _load("bench_kv_cache")
    args = bench.argparse.Namespace(
        model="m",
        num_prompts=40,
        input_len=10_000,
        output_len=64,
        request_rate=4.0,
        seed=0,
        gpu_memory_utilization=0.85,
        serve_arg=["--max-model-len", "16384"],
    )
    connector = bench.kv_transfer_config("127.0.0.1:50055", "bench-x")
    served = bench.serve_argv(args, 8100, connector)
    assert served[:3] == ["vllm", "serve", "m"] and "--max-model-len" in served
    extra = json.loads(served[served.index("--kv-transfer-config") + 1])["kv_connector_extra_config"]
    assert ConnectorSettings.from_extra_config(extra).namespace_override == "bench-x"
    assert "--kv-transfer-config" not in bench.serve_argv(args, 8100, None)  # the baseline
    argv = bench.bench_argv(args, 8100, tmp_path, "warm")
    for flag, value in [("--random-input-len", "10000"), ("--num-prompts", "40"), ("--request-rate", "4.0")]:
        assert argv[argv.index(flag) + 1] == value
    (tmp_path / "warm.json").write_text(json.dumps({"mean_ttft_ms": 61.5, "p99_ttft_ms": 77.0}))
    assert bench.ttft(json.loads((tmp_path / "warm.json").read_text())) == (61.5, 77.0)
    assert "| warm | 61.5 | 77.0 |" in bench.table({"warm": (61.5, 77.0)})


def test_bench_kv_cache_stops_before_starting_vllm_when_no_node_answers(capsys, tmp_path):
    bench = _load("bench_kv_cache")
    endpoint = f"127.0.0.1:{free_port()}"
    assert bench.main(["--model", "m", "--endpoint", endpoint, "--result-dir", str(tmp_path)]) == 2
    assert "no PegaFlow node" in capsys.readouterr().err


@pytest.mark.node
def test_basic_vllm_flow_second_run_after_a_local_cache_reset_loads_the_prefix_and_matches(node):
    """What basic_vllm.py does, in the harness: one engine, prefix caching on, the prompt twice with vLLM's own
    prefix cache emptied in between; the second run's prefix comes from the node and the outputs are equal."""
    shape = ModelShape(model=f"examples/basic-{free_port()}")
    options = EngineOptions(shape=shape, extra_config={"pegaflow.endpoint": node.endpoint}, enable_prefix_caching=True)
    tokens = prompt(90, 200)
    with FakeEngine(options) as engine:
        engine.add_request("cold", tokens, max_tokens=4)
        engine.run()
        engine.scheduler.reset_prefix_cache()
        engine.add_request("warm", tokens, max_tokens=4)
        engine.run()
        cold, warm = engine.scheduler.results["cold"], engine.scheduler.results["warm"]
        assert warm.local_tokens == 0 and warm.external_tokens == 192  # 12 full blocks from the node
        assert warm.output_token_ids == cold.output_token_ids
        assert engine.verified_blocks == 12 and engine.mismatches == []


def test_run_vllm_pd_with_pega_builds_both_engines_the_proxy_and_the_benchmark(capsys):
    pd = _load("run_vllm_pd_with_pega")
    prefill = pd.serve_argv("m", 8100, "10.0.0.1:50055", ["--max-model-len", "8192"])
    assert prefill[:3] == ["vllm", "serve", "m"] and "--max-model-len" in prefill
    assert prefill[prefill.index("--prefix-caching-hash-algo") + 1] == "sha256_cbor"
    config = json.loads(prefill[prefill.index("--kv-transfer-config") + 1])
    assert config["kv_load_failure_policy"] == "recompute"
    assert ConnectorSettings.from_extra_config(config["kv_connector_extra_config"]).endpoint == "10.0.0.1:50055"
    proxy = pd.proxy_argv(8000, 8100, 8200)
    assert proxy[1:] == [
        "proxy",
        "--port",
        "8000",
        "--prefill",
        "http://127.0.0.1:8100",
        "--decode",
        "http://127.0.0.1:8200",
    ]
    bench = pd.bench_argv("m", 8000)
    assert bench[bench.index("--random-input-len") + 1] == "5000"
    assert bench[bench.index("--random-output-len") + 1] == "200"
    assert pd.main(["--dry-run", "--model", "m"]) == 0
    printed = capsys.readouterr().out
    assert "CUDA_VISIBLE_DEVICES=0 vllm serve m" in printed and "CUDA_VISIBLE_DEVICES=1 vllm serve m" in printed
    assert "pegaflow proxy" in printed


def test_run_vllm_pd_with_pega_without_vllm_says_so_and_exits_2(capsys):
    import shutil

    if shutil.which("vllm") is not None:
        pytest.skip("vLLM is installed here: the example would start engines")
    assert _load("run_vllm_pd_with_pega").main([]) == 2
    assert "vLLM is not installed" in capsys.readouterr().err
