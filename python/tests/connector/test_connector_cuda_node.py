"""The connector on a GPU: fake vLLM engines whose KV caches are torch CUDA tensors (layers as views into one
allocation), registered with a node running the CUDA copy engine (``--device 0``) through CUDA IPC; a cold request
saves, a second instance hits and loads, and the fake worker checks every loaded byte on the GPU.

Skips without a CUDA device. The node is started with ``./pegaflow node``, or, where there is no JDK (the lent GPU
machine), with ``$PEGAFLOW_NODE_JAVA`` (a ``java`` binary) and the built jars.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")
pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"), pytest.mark.node]


@pytest.fixture(scope="module")
def gpu_node():
    from pegaflow_testing.localnode import START_TIMEOUT_S, LocalNode, free_port, node_jar_missing, repo_root

    missing = node_jar_missing()
    if missing:
        pytest.skip(f"node not built ({missing})")
    root = repo_root()
    grpc_port, cluster_port, metrics_port = free_port(), free_port(), free_port()
    args = [
        "node",
        "--addr",
        f"127.0.0.1:{grpc_port}",
        "--cluster-port",
        str(cluster_port),
        "--metrics-port",
        str(metrics_port),
        "--pool-size",
        "512mb",
        "--device",
        "0",
        "--log-level",
        "info",
    ]
    java = os.environ.get("PEGAFLOW_NODE_JAVA")
    if java:
        classpath = f"{root}/fabric/target/pegaflow-fabric.jar:{root}/fabric/target/lib/*"
        flags = ["--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"]
        argv = [java, *flags, "-cp", classpath, "io.pegaflow.fabric.cli.Main", *args]
    else:
        argv = [str(root / "pegaflow"), *args]
    fd, log_name = tempfile.mkstemp(prefix="pegaflow-gpu-node-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(argv, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    node = LocalNode(process, grpc_port, metrics_port, __import__("pathlib").Path(log_name), argv)
    try:
        node.wait_serving(START_TIMEOUT_S)
    except BaseException:
        node.kill()
        raise
    yield node
    node.stop()


@pytest.mark.parametrize("layout", ["packed", "kv_planes"])
def test_cuda_kv_caches_through_ipc_save_and_load_byte_exact(gpu_node, engines, layout):
    from pegaflow_testing.fake_vllm import ModelShape, prompt

    shape = ModelShape(model=engines.model("gpu"), layout=layout, num_layers=8, num_kv_heads=8, head_size=128)
    extra = {"pegaflow.kv_layout": "kv_planes-nhd"} if layout == "kv_planes" else {}
    first = engines(gpu_node, shape, extra=extra, tensor_kind="cuda")
    registration = first.call_workers("registration")[0]
    assert registration["device"].startswith("GPU-") and registration["regions"] == 1  # one allocation, opened once
    first.add_request("cold", prompt(1, 200), max_tokens=2)
    first.run()
    assert first.totals()["saved_blocks"] == 12
    second = engines(gpu_node, shape, extra=extra, tensor_kind="cuda")
    second.add_request("warm", prompt(1, 200) + prompt(2, 10), max_tokens=2)
    second.run()
    assert second.scheduler.results["warm"].external_tokens == 192
    assert second.verified_blocks == 12 and second.mismatches == []
    totals = second.totals()
    assert totals["loaded_blocks"] == 12 and totals.get("load_failed_blocks", 0) == 0
