"""The connector's pieces without a node: settings, identity/namespace, KV layouts, memory resolvers, metadata,
stats, block hashes, capabilities, vLLM import confinement, and behaviour when no node answers."""

from __future__ import annotations

import hashlib
import mmap
import pickle
import re
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pegaflow.shm import KV_PLANES, PACKED, SharedKVCache
from pegaflow.vllm import block_hash
from pegaflow.vllm.config import OPTIONS, ConnectorSettings, EngineIdentity
from pegaflow.vllm.kvlayout import UnsupportedKVCache, classify, tensor_info
from pegaflow.vllm.memory import CudaIpcResolver, SharedMemoryResolver
from pegaflow.vllm.metadata import BlockTransfer, PegaConnectorMetadata
from pegaflow.vllm.stats import ConnectorCounters, PegaKVConnectorStats
from pegaflow_testing.fake_vllm import (
    FakeCachedRequestData,
    FakeKVCacheConfig,
    FakeRequest,
    FakeRole,
    FakeSchedulerOutput,
    ModelShape,
    make_vllm_config,
    prompt,
)

PACKAGE = Path(__file__).resolve().parents[2] / "pegaflow"
README = Path(__file__).resolve().parents[2] / "README.md"


def _unused_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"  # nothing listens once the socket is closed


def _identity(shape=None, tp_size=1, extra=None, **kwargs) -> EngineIdentity:
    config = make_vllm_config(shape or ModelShape(), "engine-1", extra or {}, tp_size=tp_size, **kwargs)
    return EngineIdentity.from_vllm_config(config, ConnectorSettings.from_extra_config(extra or {}))


@pytest.fixture
def caches():
    made = []

    def make(**kwargs):
        args = {"num_layers": 2, "num_blocks": 6, "block_size": 16, "num_kv_heads": 2, "head_size": 8, **kwargs}
        cache = SharedKVCache(**args)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()
        cache.unlink()


# ---- settings ----


def test_settings_defaults_and_parsing():
    s = ConnectorSettings.from_extra_config({"pegaflow.endpoint": "10.0.0.1:7000", "other.key": 1})
    assert s.endpoint == "10.0.0.1:7000"
    assert s.query_timeout_s == 0.2  # lookups never stall the scheduler for long
    assert s.lease_ttl_ms == 30_000 and s.kv_layout == "auto"
    assert ConnectorSettings.from_extra_config({"pegaflow.lease_ttl_ms": "0"}).lease_ttl_ms == 0


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ({"pegaflow.endpont": "x:1"}, "unknown key(s) ['pegaflow.endpont']"),
        ({"pegaflow.endpoint": "nohost"}, "is not HOST:PORT"),
        ({"pegaflow.endpoint": "h:99999"}, "is not HOST:PORT"),
        ({"pegaflow.query_timeout_ms": 0}, "below the minimum"),
        ({"pegaflow.lease_ttl_ms": "soon"}, "not a valid int"),
    ],
)
def test_settings_reject_bad_values_naming_the_key(extra, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        ConnectorSettings.from_extra_config(extra)


def test_readme_documents_every_extra_config_key():
    text = README.read_text()
    section = text[text.index("### `kv_connector_extra_config` keys") :]
    section = section[: section.index("### How it works")]
    documented = set(re.findall(r"^\| `(pegaflow\.[a-z_]+)` \|", section, re.MULTILINE))
    assert documented == set(OPTIONS), f"README.md table vs OPTIONS: {sorted(documented ^ set(OPTIONS))}"
    assert "--prefix-caching-hash-algo sha256_cbor" in text
    assert '"kv_connector_module_path":"pegaflow.vllm"' in text


# ---- identity ----


def test_namespace_names_what_decides_the_bytes():
    base = _identity()
    assert base.namespace == "fake/llama-tiny|bfloat16|packed-nhd|b16|l4|kv2x64|tp1"
    assert base.instance_id == "engine-1"
    assert _identity(tp_size=2).namespace.endswith("|tp2")
    assert _identity(ModelShape(block_size=32)).namespace != base.namespace
    assert _identity(ModelShape(dtype="float16")).namespace != base.namespace
    layout = {"pegaflow.kv_layout": "kv_planes-nhd"}
    assert "|kv_planes-nhd|" in _identity(extra=layout).namespace
    assert _identity(extra={"pegaflow.namespace": "shared"}).namespace == "shared"


def test_mla_namespace_is_shared_by_every_tp_size():
    mla = ModelShape(layout="mla", head_size=288)
    one, two = _identity(mla, tp_size=1), _identity(mla, tp_size=4)
    assert one.namespace == two.namespace and "|mla|" in one.namespace and one.namespace.endswith("|tp*")
    with pytest.raises(ValueError, match="use_mla=True"):
        _identity(mla, extra={"pegaflow.kv_layout": "packed-nhd"})


def test_identity_refuses_what_cannot_work():
    config = make_vllm_config(ModelShape(), "e", {})
    config.model_config.enable_sleep_mode = True
    with pytest.raises(ValueError, match="sleep mode"):
        EngineIdentity.from_vllm_config(config, ConnectorSettings.from_extra_config({}))
    with pytest.raises(ValueError, match="kv_role"):
        _identity(kv_role="kv_sideways")
    with pytest.raises(ValueError, match=r"pegaflow\.kv_layout"):
        _identity(extra={"pegaflow.kv_layout": "diagonal"})


def test_data_parallel_ranks_are_separate_instances_of_one_namespace():
    config = make_vllm_config(ModelShape(), "engine-x", {})
    config.parallel_config.data_parallel_size = 2
    config.parallel_config.data_parallel_rank = 1
    identity = EngineIdentity.from_vllm_config(config, ConnectorSettings.from_extra_config({}))
    assert identity.instance_id == "engine-x_dp1"
    assert identity.namespace == _identity().namespace


# ---- KV layouts ----


def test_packed_nhd_layer_is_one_segment_per_block(caches):
    cache = caches(layout=PACKED)
    found = classify(tensor_info(cache.layer(0)), block_size=16, num_blocks=6, use_mla=False, name="l0")
    reg = cache.layer_registrations()[0]
    assert found.tag == "packed-nhd" and found.num_blocks == 6 and found.kv_heads == 2
    assert found.block.block_stride_bytes == reg.block_stride_bytes
    assert [(s.offset_bytes, s.length_bytes) for s in found.block.segments] == [
        (s.offset_bytes, s.length_bytes) for s in reg.segments
    ]


def test_kv_planes_layer_has_a_k_and_a_v_segment(caches):
    cache = caches(layout=KV_PLANES)
    found = classify(tensor_info(cache.layer(1)), block_size=16, num_blocks=6, use_mla=False, name="l1")
    assert found.tag == "kv_planes-nhd" and len(found.block.segments) == 2


def test_hnd_and_blocks_kv_orders_are_told_apart():
    hnd = np.zeros((6, 2, 16, 16), dtype=np.float16)  # (blocks, heads, tokens, 2*head) contiguous: HND in memory
    assert classify(tensor_info(hnd), block_size=16, num_blocks=6, use_mla=False, name="x").tag == "packed-hnd"
    blocks_kv = np.zeros((6, 2, 16, 2, 8), dtype=np.float16)
    assert classify(tensor_info(blocks_kv), block_size=16, num_blocks=6, use_mla=False, name="x").tag == "blocks_kv-nhd"


def test_scheduler_block_may_cover_several_kernel_blocks():
    # 12 kernel blocks of 8 tokens (NHD in memory) under 16-token scheduler blocks
    kernel = np.zeros((12, 8, 2, 16), dtype=np.float16).transpose(0, 2, 1, 3)
    found = classify(tensor_info(kernel), block_size=16, num_blocks=6, use_mla=False, name="x")
    assert found.num_blocks == 6 and found.kernel_blocks_per_block == 2
    assert found.block.block_stride_bytes == 2 * kernel.strides[0]
    assert found.block.block_bytes == 2 * kernel[0].nbytes and len(found.block.segments) == 1


def test_mla_layer_is_blocks_tokens_latent():
    latent = np.zeros((6, 16, 576), dtype=np.float16)
    found = classify(tensor_info(latent), block_size=16, num_blocks=6, use_mla=True, name="x")
    assert found.tag == "mla" and found.block.block_bytes == 16 * 576 * 2


@pytest.mark.parametrize(
    "array, fragment",
    [
        # tokens outside the blocks (heads outside them are fine: vLLM 0.29 LHBNC, tested below)
        (np.zeros((16, 6, 2, 16), dtype=np.float16).transpose(1, 2, 0, 3), "blocks are not the outermost"),
        (np.zeros((6, 2, 16), dtype=np.float16), "expected (num_blocks"),
        (np.zeros((6, 2, 16, 16), dtype=np.float16)[..., ::2], "last dimension must be contiguous"),
        (np.zeros((6, 2, 24, 16), dtype=np.float16), "does not divide the scheduler block size"),
    ],
)
def test_unsupported_layouts_are_refused_with_the_reason(array, fragment):
    with pytest.raises(UnsupportedKVCache, match=re.escape(fragment)):
        classify(tensor_info(array), block_size=16, num_blocks=None, use_mla=False, name="layer.3")


def test_torch_and_numpy_views_read_the_same(caches):
    pytest.importorskip("torch", reason="torch is optional (pip install torch)")
    cache = caches(layout=KV_PLANES)
    a = tensor_info(cache.layer(0))
    b = tensor_info(cache.as_torch(0))
    assert (a.shape, a.strides_bytes, a.itemsize, a.data_ptr) == (b.shape, b.strides_bytes, b.itemsize, b.data_ptr)
    assert b.device_type == "cpu" and b.dtype == "bfloat16"


# ---- memory resolvers ----


def test_host_tensors_resolve_to_their_shared_memory_file_and_offset(caches):
    cache = caches(layer_gap_bytes=4096)
    registrations = cache.layer_registrations()
    for i in range(cache.num_layers):
        info = tensor_info(cache.layer(i))
        placement = SharedMemoryResolver().place(info, info.extent_bytes)
        assert placement.device == "host" and placement.region_key == ("shm", str(cache.path))
        assert placement.region.shm.path == str(cache.path)
        assert placement.region.shm.offset_bytes == registrations[i].region.shm.offset_bytes


def test_host_memory_the_node_cannot_see_is_refused(tmp_path):
    anonymous = np.zeros((4, 2, 16, 16), dtype=np.float16)
    with pytest.raises(UnsupportedKVCache, match="not in a shared file mapping"):
        SharedMemoryResolver().place(tensor_info(anonymous), anonymous.nbytes)
    path = tmp_path / "private"
    path.write_bytes(bytes(8192))
    with open(path, "r+b") as f:
        private = mmap.mmap(f.fileno(), 8192, flags=mmap.MAP_PRIVATE)
    view = np.frombuffer(private, dtype=np.uint8)
    with pytest.raises(UnsupportedKVCache, match="private mapping"):
        SharedMemoryResolver().place(tensor_info(view), view.nbytes)
    del view
    private.close()


class _FakeCudaStorage:
    def __init__(self, handle: bytes):
        self._handle = handle

    def _share_cuda_(self):
        return (0, self._handle, 1 << 20, 0, b"", 0, b"", False)


class _FakeCudaTensor:
    is_cuda = True

    def __init__(self, handle: bytes):
        self._storage = _FakeCudaStorage(handle)
        self.device = SimpleNamespace(type="cuda", index=0)

    def untyped_storage(self):
        return self._storage

    def storage_offset(self) -> int:
        return 0

    def element_size(self) -> int:
        return 2


def _cuda_info(handle: bytes):
    from pegaflow.vllm.kvlayout import TensorInfo

    return TensorInfo((4, 2, 16, 16), (1024, 512, 32, 2), 2, 0x7000, "cuda", 0, "bfloat16", _FakeCudaTensor(handle))


def test_cuda_expandable_segments_are_refused(monkeypatch):
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    with pytest.raises(UnsupportedKVCache, match="expandable_segments"):
        CudaIpcResolver().place(_cuda_info(b"\x02c" + bytes(64)), 4096)


def test_cuda_handles_of_type_e_or_unknown_format_are_refused(monkeypatch):
    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    with pytest.raises(UnsupportedKVCache, match="expandable segment"):
        CudaIpcResolver().place(_cuda_info(b"\x02e" + bytes(64)), 4096)
    with pytest.raises(UnsupportedKVCache, match="12-byte IPC handle"):
        CudaIpcResolver().place(_cuda_info(b"\x01c" + bytes(10)), 4096)


# ---- metadata, stats, hashes ----


def test_metadata_is_plain_picklable_data():
    meta = PegaConnectorMetadata(
        loads=[BlockTransfer("r1", [3, 4], [b"a" * 32, b"b" * 32])],
        saves=[BlockTransfer("r2", [5], [b"c" * 32])],
        preempted_req_ids=["r3"],
        hold_req_ids=["r4"],
    )
    assert pickle.loads(pickle.dumps(meta)) == meta
    assert PegaConnectorMetadata().is_empty()
    with pytest.raises(ValueError, match="2 block ids but 1 hashes"):
        BlockTransfer("r", [1, 2], [b"x"])


def test_stats_aggregate_sums_counts_and_keeps_maxima():
    a = PegaKVConnectorStats(
        data={"loads": 2, "loaded_blocks": 10, "load_seconds_sum": 0.004, "load_seconds_max": 0.003}
    )
    b = PegaKVConnectorStats(
        data={"loads": 1, "loaded_blocks": 5, "load_seconds_sum": 0.005, "load_seconds_max": 0.005}
    )
    merged = a.aggregate(b)
    assert merged.data == pytest.approx(
        {"loads": 3, "loaded_blocks": 15, "load_seconds_sum": 0.009, "load_seconds_max": 0.005}
    )
    summary = merged.reduce()
    assert summary["loaded_blocks"] == 15 and summary["avg_load_ms"] == 3.0 and summary["max_load_ms"] == 5.0
    assert PegaKVConnectorStats().is_empty() and not merged.is_empty()
    counters = ConnectorCounters()
    with pytest.raises(KeyError):
        counters.add("bogus")
    counters.add("hit_blocks", 3)
    assert counters.snapshot_and_reset() == {"hit_blocks": 3} and counters.snapshot_and_reset() == {}
    assert counters.totals() == {"hit_blocks": 3}


@pytest.mark.parametrize(
    "value, encoded",
    [
        (0, "00"),
        (23, "17"),
        (24, "1818"),
        (100, "1864"),
        (1000, "1903e8"),
        (1000000, "1a000f4240"),
        (1000000000000, "1b000000e8d4a51000"),
        (-1, "20"),
        (-100, "3863"),
        (b"\x01\x02\x03\x04", "4401020304"),
        ("IETF", "6449455446"),
        ([1, [2, 3], [4, 5]], "8301820203820405"),
        ([], "80"),
        (None, "f6"),
    ],
)
def test_cbor_matches_rfc8949_examples(value, encoded):
    assert block_hash.cbor(value).hex() == encoded


def test_block_hashes_are_chained_sha256_of_cbor():
    none = hashlib.sha256(b"\x6evllm-none-hash").digest()
    assert block_hash.none_hash() == none
    first = hashlib.sha256(block_hash.cbor([none, list(range(4)), None])).digest()
    hashes = block_hash.block_hashes(list(range(10)), 4)
    assert len(hashes) == 2 and hashes[0] == first
    assert hashes[1] == hashlib.sha256(block_hash.cbor([first, [4, 5, 6, 7], None])).digest()
    request = FakeRequest("r", list(range(6)), max_tokens=4, block_size=4)
    for token in (6, 7, 8):
        request.append_output_token_ids(token)
    assert request.block_hashes == block_hash.block_hashes(list(range(9)), 4)


# ---- the connector class ----


def test_connector_answers_capability_questions_and_keeps_roles_apart():
    import inspect

    from pegaflow.vllm import PegaKVConnector

    assert list(inspect.signature(PegaKVConnector.__init__).parameters)[1:] == [
        "vllm_config",
        "role",
        "kv_cache_config",
    ]
    assert PegaKVConnector.requires_piecewise_for_cudagraph({}) is False
    assert PegaKVConnector.get_required_kvcache_layout(None) is None
    assert PegaKVConnector.build_kv_connector_stats({"loads": 1}).data == {"loads": 1}
    config = make_vllm_config(ModelShape(), "e", {"pegaflow.endpoint": _unused_endpoint()})
    connector = PegaKVConnector(config, FakeRole.SCHEDULER, FakeKVCacheConfig(64))
    try:
        assert connector.requires_kv_delivery is False
        assert connector.role is FakeRole.SCHEDULER
        with pytest.raises(RuntimeError, match="SCHEDULER role"):
            connector.get_finished(set())
        request = FakeRequest("never-scheduled", prompt(1, 40), 4, 16)
        assert connector.request_finished(request, []) == (False, None)  # never scheduled: nothing to hold
        empty = FakeSchedulerOutput([], FakeCachedRequestData([], set(), [], {}, [], [], []), {}, 0, set())
        meta = connector.build_connector_meta(empty)
        assert meta.is_empty()
    finally:
        connector.shutdown()


def test_only_one_module_imports_vllm():
    pattern = re.compile(r"^\s*(import vllm|from vllm)", re.MULTILINE)
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if pattern.search(path.read_text()) and path.name != "_vllm.py"
    ]
    assert offenders == []
    source = (PACKAGE / "vllm" / "_vllm.py").read_text()
    assert not re.search(r"^(import vllm|from vllm)", source, re.MULTILINE), "vLLM imports must stay inside functions"


# ---- no node answering ----


def test_lookups_answer_zero_quickly_when_no_node_answers():
    from pegaflow.vllm import PegaKVConnector

    config = make_vllm_config(ModelShape(), "e", {"pegaflow.endpoint": _unused_endpoint()})
    connector = PegaKVConnector(config, FakeRole.SCHEDULER, FakeKVCacheConfig(64))
    try:
        request = FakeRequest("r", prompt(2, 64), 4, 16)
        started = time.monotonic()
        assert connector.get_num_new_matched_tokens(request, 0) == (0, False)
        assert time.monotonic() - started < 1.0
        started = time.monotonic()
        for _ in range(100):  # while the node is down the scheduler does not even ask
            assert connector.get_num_new_matched_tokens(request, 0) == (0, False)
        assert time.monotonic() - started < 0.1
        totals = connector.counters.totals()
        assert totals["lookup_failures"] == 1 and totals["lookup_skipped_node_down"] == 100
    finally:
        connector.shutdown()


def test_worker_without_a_node_starts_and_fails_loads_instead_of_waiting(caches):
    from pegaflow.vllm import PegaKVConnector

    config = make_vllm_config(
        ModelShape(num_layers=2, num_gpu_blocks=6), "e", {"pegaflow.endpoint": _unused_endpoint()}
    )
    cache = caches()
    connector = PegaKVConnector(config, FakeRole.WORKER, FakeKVCacheConfig(6))
    try:
        connector.register_kv_caches({name: cache.layer(i) for i, name in enumerate(cache.layer_names)})
        assert not connector.worker_side.link.connected
        meta = PegaConnectorMetadata(
            loads=[BlockTransfer("r1", [2, 3], [b"h1", b"h2"])], saves=[BlockTransfer("r2", [4], [b"h3"])]
        )
        connector.bind_connector_metadata(meta)
        connector.start_load_kv(None)  # returns at once: the loader thread sends the Load
        connector.wait_for_save()
        deadline = time.monotonic() + 5
        while (finished := connector.get_finished(set()))[1] is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert finished == (None, {"r1"})
        assert connector.get_block_ids_with_load_errors() == {2, 3}
        assert connector.get_block_ids_with_load_errors() == set()
        connector.clear_connector_metadata()
        assert connector.worker_side.saves_idle(5.0)
        assert connector.counters.totals()["save_dropped_blocks"] == 1
    finally:
        connector.shutdown()


def test_worker_refuses_tensors_whose_layout_the_namespace_does_not_name(caches):
    from pegaflow.vllm import PegaKVConnector

    config = make_vllm_config(
        ModelShape(num_layers=2, num_gpu_blocks=6), "e", {"pegaflow.endpoint": _unused_endpoint()}
    )
    cache = caches(layout=KV_PLANES)
    connector = PegaKVConnector(config, FakeRole.WORKER, FakeKVCacheConfig(6))
    try:
        with pytest.raises(UnsupportedKVCache, match=r"'pegaflow\.kv_layout': 'kv_planes-nhd'"):
            connector.register_kv_caches({name: cache.layer(i) for i, name in enumerate(cache.layer_names)})
    finally:
        connector.shutdown()


# ---- vLLM 0.29's standardized layouts ----


def test_vllm_029_layout_names_decide_the_namespace_layout():
    def identity(layout, **extra):
        config = make_vllm_config(ModelShape(), "engine-1", extra)
        config.cache_config.kv_cache_layout = layout
        return EngineIdentity.from_vllm_config(config, ConnectorSettings.from_extra_config(extra))

    assert identity("LBNHC").kv_layout == identity("BLNHC").kv_layout == "packed-nhd"
    assert {identity(n).kv_layout for n in ("LBHNC", "BLHNC", "BHLNC", "LHBNC")} == {"packed-hnd"}
    assert identity(SimpleNamespace(name="BLNHC")).vllm_layout == "BLNHC"  # vLLM's enum member, read by name
    assert identity(None).kv_layout == "packed-nhd" and identity(None).vllm_layout is None  # older vLLM
    with pytest.raises(ValueError, match="'LBCNH' is not a KV-cache layout PegaKVConnector knows"):
        identity("LBCNH")
    with pytest.raises(ValueError, match="vLLM's KV-cache layout LBHNC stores 'packed-hnd'"):
        identity("LBHNC", **{"pegaflow.kv_layout": "packed-nhd"})
    assert identity("LBHNC", **{"pegaflow.kv_layout": "packed-hnd"}).kv_layout == "packed-hnd"


def test_required_kvcache_layout_is_none_or_a_standardized_name():
    from pegaflow.vllm.connector import PegaKVConnector

    assert PegaKVConnector.get_required_kvcache_layout(None) in (
        None,
        "LBHNC",
        "LBNHC",
        "LHBNC",
        "BLHNC",
        "BLNHC",
        "BHLNC",
    )


def test_heads_outside_the_blocks_register_one_segment_per_head_plane():
    physical = np.zeros((2, 6, 16, 16), dtype=np.float16)  # (heads, blocks, tokens, 2*head): vLLM's LHBNC layer view
    found = classify(
        tensor_info(physical.transpose(1, 0, 2, 3)),
        block_size=16,
        num_blocks=6,
        use_mla=False,
        name="l.0",
        vllm_layout="LHBNC",
    )
    assert found.tag == "packed-hnd" and found.num_blocks == 6 and found.block.block_stride_bytes == 512
    assert [(s.offset_bytes, s.length_bytes) for s in found.block.segments] == [(0, 512), (6 * 512, 512)]
