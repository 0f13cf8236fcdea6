"""End to end: every kind of bad request gets its exact gRPC code and a message naming the field, and changes nothing.

Each case checks the code and the message, then that the blocks the module saved are still all there (query) and
that nothing the request named became visible. The last test compares the node's store metrics from before the
first case with those after the last one. (A save larger than the whole pool, RESOURCE_EXHAUSTED, needs a tiny
pool: test_e2e_pool.py.)
"""

from __future__ import annotations

import grpc
import pytest
from e2e_support import expect_error, random_hashes, unique

from pegaflow._proto import engine_pb2
from pegaflow.flag import LoadFlagFile
from pegaflow.shm import HOST_DEVICE, SharedKVCache

pytestmark = pytest.mark.node

# 2 layers, 64 blocks, 16 KiB per layer per block.
SHAPE = {"num_layers": 2, "num_blocks": 64, "block_size": 16, "num_kv_heads": 2, "head_size": 128}
INVALID = grpc.StatusCode.INVALID_ARGUMENT


class Target:
    """A registered worker with saved blocks that every bad request is aimed at."""

    def __init__(self, engine, node):
        self.engine = engine
        self.node = node
        self.namespace = unique("bad-input")
        self.instance = unique("engine")
        self.cache = SharedKVCache(**SHAPE)
        self.flags = LoadFlagFile(slots=4)
        self.context_id = None
        try:
            self.context_id = engine.register_context(
                self.instance, self.namespace, 0, 1, 0, 2, HOST_DEVICE, self.cache.layer_registrations()
            ).context_id
            self.cache.fill_random(range(4), seed=1)
            self.saved = random_hashes(4)
            assert engine.save(self.context_id, list(zip(range(4), self.saved))).blocks_sealed == 4
            self.before = node.fresh_metrics()
        except BaseException:
            self.close()
            raise

    def request(self, **changes) -> engine_pb2.RegisterContextRequest:
        """A valid RegisterContextRequest (a second worker of the namespace), with ``changes`` applied."""
        request = engine_pb2.RegisterContextRequest(
            instance_id=unique("engine"),
            namespace=self.namespace,
            tp_rank=0,
            tp_size=1,
            pp_rank=0,
            total_layers=2,
            device=HOST_DEVICE,
            layers=self.cache.layer_registrations(),
        )
        for field, value in changes.items():
            if field == "layers":
                del request.layers[:]
                request.layers.extend(value)
            else:
                setattr(request, field, value)
        return request

    def register(self, request: engine_pb2.RegisterContextRequest):
        r = request
        reply = self.engine.register_context(
            r.instance_id, r.namespace, r.tp_rank, r.tp_size, r.pp_rank, r.total_layers, r.device, list(r.layers)
        )
        # Accepted by mistake: do not leave the context behind, then fail on the caller's assertion.
        self.engine.unregister_context(reply.context_id)
        return reply

    def assert_unchanged(self, *named: bytes) -> None:
        assert self.engine.query(self.namespace, self.saved).hit_blocks == len(self.saved)
        for h in named:
            assert self.engine.query(self.namespace, [h]).hit_blocks == 0
        assert self.engine.save(self.context_id, []).blocks_stored == 0  # the context is still registered

    def close(self) -> None:
        try:
            if self.context_id is not None:
                self.engine.unregister_context(self.context_id)
        finally:
            self.cache.close()
            self.cache.unlink()
            self.flags.close()
            self.flags.unlink()


@pytest.fixture(scope="module")
def target(engine, node):
    t = Target(engine, node)
    yield t
    t.close()


def test_save_into_an_unknown_context_is_not_found(target):
    z = random_hashes(1)
    with expect_error(grpc.StatusCode.NOT_FOUND, 'context_id: "nope"', "is not registered"):
        target.engine.save("nope", [(0, z[0])])
    with expect_error(grpc.StatusCode.NOT_FOUND, "context_id"):
        target.engine.load("nope", [(0, target.saved[0])], target.flags.slot(0))
    with expect_error(grpc.StatusCode.NOT_FOUND, "context_id"):
        target.engine.unregister_context("nope")
    target.assert_unchanged(*z)


def test_session_for_an_unknown_context_is_not_found(target):
    with expect_error(grpc.StatusCode.NOT_FOUND, 'context_id: "nope"', "is not registered"):
        target.engine.open_session("nope")
    target.assert_unchanged()


def test_block_ids_out_of_range_are_invalid(target):
    z = random_hashes(2)
    with expect_error(INVALID, "blocks[1].block_id: 64 is out of range 0..63"):
        target.engine.save(target.context_id, [(0, z[0]), (64, z[1])])
    with expect_error(INVALID, "blocks[0].block_id: 4294967295 is out of range 0..63"):
        target.engine.save(target.context_id, [(2**32 - 1, z[0])])
    with expect_error(INVALID, "blocks[0].block_id: 99 is out of range 0..63"):
        target.engine.load(target.context_id, [(99, target.saved[0])], target.flags.slot(0))
    with expect_error(INVALID, "blocks[1].block_id: 5 appears twice with different hashes"):
        target.engine.save(target.context_id, [(5, z[0]), (5, z[1])])
    target.assert_unchanged(*z)


def test_empty_and_oversized_hashes_are_invalid(target):
    z = random_hashes(1)
    with expect_error(INVALID, "blocks[0].hash: 0 bytes; a hash has 1..64 bytes"):
        target.engine.save(target.context_id, [(0, b"")])
    with expect_error(INVALID, "blocks[1].hash: 65 bytes; a hash has 1..64 bytes"):
        target.engine.save(target.context_id, [(0, z[0]), (1, b"h" * 65)])
    with expect_error(INVALID, "hashes[1]: 65 bytes"):
        target.engine.query(target.namespace, [target.saved[0], b"h" * 65])
    with expect_error(INVALID, "hashes[0]: 0 bytes"):
        target.engine.query(target.namespace, [b""])
    with expect_error(INVALID, "blocks[0].hash: 65 bytes"):
        target.engine.load(target.context_id, [(9, b"h" * 65)], target.flags.slot(0))
    assert target.engine.query(target.namespace, [b"h" * 64]).hit_blocks == 0, "64 bytes is a valid hash"
    target.assert_unchanged(*z)


def test_unknown_layer_indices_are_invalid(target):
    z = random_hashes(1)
    with expect_error(INVALID, "layer_indices[0]: layer 7 is not registered by context", target.context_id):
        target.engine.save(target.context_id, [(0, z[0])], layer_indices=[7])
    with expect_error(INVALID, "layer_indices[1]: layer 1 is listed twice"):
        target.engine.save(target.context_id, [(0, z[0])], layer_indices=[1, 1])
    request = target.request()
    request.layers[1].layer_index = 2
    with expect_error(INVALID, "layers[1].layer_index: 2 is out of range 0..1"):
        target.register(request)
    request = target.request()
    request.layers[1].layer_index = 0
    with expect_error(INVALID, "layers[1].layer_index: 0 is registered twice"):
        target.register(request)
    target.assert_unchanged(*z)


def test_missing_namespace_and_instance_are_invalid(target):
    with expect_error(INVALID, "namespace: missing"):
        target.register(target.request(namespace=""))
    with expect_error(INVALID, "instance_id: missing"):
        target.register(target.request(instance_id=""))
    with expect_error(INVALID, "namespace: missing"):
        target.engine.query("", target.saved)
    target.assert_unchanged()


def test_tp_rank_not_below_tp_size_is_invalid(target):
    with expect_error(INVALID, "tp_rank: 2 is out of range 0..1"):
        target.register(target.request(tp_rank=2, tp_size=2))
    with expect_error(INVALID, "tp_rank: 1 is out of range 0..0"):
        target.register(target.request(tp_rank=1))
    with expect_error(INVALID, "tp_size: 0 is out of range 1..1024"):
        target.register(target.request(tp_size=0))
    target.assert_unchanged()


def test_segments_past_the_end_of_the_file_are_invalid(target):
    request = target.request()
    request.layers[1].num_blocks = 65
    with expect_error(
        INVALID, "layers[1].segments[0]: block 64 ends at byte", "past the end of", str(target.cache.path)
    ):
        target.register(request)
    request = target.request()
    request.layers[1].segments[0].length_bytes += 1  # layer 1's last block ends where the file ends
    with expect_error(INVALID, "layers[1].segments[0]: block 63 ends at byte", "past the end of"):
        target.register(request)
    target.assert_unchanged()


def test_a_shared_memory_path_that_does_not_exist_is_invalid(target):
    request = target.request()
    missing = f"/dev/shm/{unique('pegaflow-none')}"
    request.layers[0].region.shm.path = missing
    with expect_error(INVALID, "layers[0].region.shm.path: cannot map", missing):
        target.register(request)
    target.assert_unchanged()


def test_a_cuda_ipc_region_on_a_host_only_node_is_a_failed_precondition(target):
    request = target.request()
    request.layers[0].region.cuda_ipc.CopyFrom(
        engine_pb2.CudaIpcRegion(ipc_handle=bytes(64), allocation_size_bytes=1 << 20, offset_bytes=0)
    )
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "layers[0].region: CUDA IPC"):
        target.register(request)
    target.assert_unchanged()


def test_a_registration_that_disagrees_with_the_namespace_is_a_failed_precondition(target):
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, f'namespace "{target.namespace}"', "tp_size 2 differs"):
        target.register(target.request(tp_size=2))
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "total_layers 3 differs from the namespace's 2"):
        target.register(target.request(total_layers=3))
    with SharedKVCache(**{**SHAPE, "head_size": 64}) as smaller:
        request = target.request(layers=smaller.layer_registrations())
        with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "bytes per block per layer 8192 differ"):
            target.register(request)
    target.assert_unchanged()


def test_a_refused_registration_does_not_fix_the_layout_of_a_new_namespace(target):
    fresh = unique("bad-input-fresh")
    request = target.request(namespace=fresh)
    request.layers[1].num_blocks = 65
    with expect_error(INVALID, "past the end of"):
        target.register(request)
    # Had the refused request claimed the namespace (tp_size 1), this one (tp_size 2) would be refused.
    assert target.register(target.request(namespace=fresh, tp_size=2, tp_rank=1)).block_bytes == 2 * 2 * 16 * 1024


def test_a_block_larger_than_a_pool_slab_is_a_failed_precondition(target):
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "a block of this namespace needs", "--pool-size"):
        target.register(target.request(namespace=unique("huge"), total_layers=4096))
    target.assert_unchanged()


def test_bad_load_flags_are_invalid(target):
    flag_path = str(target.flags.path)  # 4 slots: 128 bytes
    block = [(9, target.saved[0])]
    with expect_error(INVALID, "flag.offset_bytes: 128 + 32 is past the end of", flag_path):
        target.engine.load(target.context_id, block, engine_pb2.LoadFlag(path=flag_path, offset_bytes=128))
    with expect_error(INVALID, "flag.offset_bytes: 104 + 32 is past the end of"):
        target.engine.load(target.context_id, block, engine_pb2.LoadFlag(path=flag_path, offset_bytes=104))
    with expect_error(INVALID, "flag.offset_bytes: 12 is not 8-byte aligned"):
        target.engine.load(target.context_id, block, engine_pb2.LoadFlag(path=flag_path, offset_bytes=12))
    with expect_error(INVALID, "flag.path: missing"):
        target.engine.load(target.context_id, block, engine_pb2.LoadFlag(path="", offset_bytes=0))
    with expect_error(INVALID, "flag.path: cannot map"):
        target.engine.load(
            target.context_id, block, engine_pb2.LoadFlag(path="/dev/shm/does-not-exist", offset_bytes=0)
        )
    target.assert_unchanged()


def test_a_lease_longer_than_ten_minutes_is_invalid(target):
    with expect_error(INVALID, "lease_ttl_ms: 600001 is out of range 0..600000"):
        target.engine.query(target.namespace, target.saved, lease_ttl_ms=600_001)
    target.assert_unchanged()


# ---- unsigned proto fields beyond the signed range (once read as negative Java int/long; fixed) ----


def _huge_layer_index(t):
    request = t.request()
    request.layers[0].layer_index = 2**32 - 1
    t.register(request)


def _huge_tp_rank(t):
    t.register(t.request(tp_rank=2**32 - 1, tp_size=2, namespace=unique("huge-rank")))


def _huge_region_offset(t):
    request = t.request()
    request.layers[0].region.shm.offset_bytes = 2**64 - 4096  # -4096 as a Java long
    t.register(request)


def _huge_segment_offset(t):
    request = t.request()
    request.layers[0].segments[0].offset_bytes = 2**64 - 4096
    t.register(request)


def _huge_flag_offset(t):
    flag = engine_pb2.LoadFlag(path=str(t.flags.path), offset_bytes=2**64 - 8)  # -8 as a Java long: "aligned"
    t.engine.load(t.context_id, [(9, t.saved[0])], flag)


# case -> (the field the error must name, the bad request); in brackets what the node did before the fix.
UNSIGNED_CASES = {
    "layer_index 2^32-1 (INTERNAL: ArrayIndexOutOfBoundsException)": ("layers[0].layer_index", _huge_layer_index),
    "tp_rank 2^32-1 (accepted as rank -1)": ("tp_rank", _huge_tp_rank),
    "shm offset_bytes 2^64-4096 (accepted: blocks then read 4 KiB before the layer)": (
        "layers[0].region.shm.offset_bytes",
        _huge_region_offset,
    ),
    "segment offset_bytes 2^64-4096 (accepted)": ("layers[0].segments[0].offset_bytes", _huge_segment_offset),
    "flag offset_bytes 2^64-8 (INTERNAL: IndexOutOfBoundsException; leaks a context reference and the flag mapping)": (
        "flag.offset_bytes",
        _huge_flag_offset,
    ),
}


@pytest.mark.parametrize("case", list(UNSIGNED_CASES), ids=lambda c: c.split(" (")[0].replace(" ", "-"))
def test_unsigned_fields_beyond_the_signed_range_are_invalid(target, case):
    field, bad_request = UNSIGNED_CASES[case]
    with expect_error(INVALID, field):
        bad_request(target)


def test_refused_requests_changed_nothing_in_the_store(target):
    """Runs last in the module: the store as the metrics show it, before the first case and after the last."""
    after = target.node.fresh_metrics()
    keys = [
        ("pegaflow_store_blocks", {"state": "sealed"}),
        ("pegaflow_store_blocks", {"state": "inflight"}),
        ("pegaflow_pool_used_bytes", {}),
        ("pegaflow_block_insertions_total", {}),
        ("pegaflow_block_evictions_total", {}),
        ("pegaflow_save_rejected_total", {}),
        ("pegaflow_leases_active", {}),
        ("pegaflow_engine_contexts", {}),
    ]
    changed = {
        name + str(labels or ""): (target.before.value(name, **labels), after.value(name, **labels))
        for name, labels in keys
        if target.before.value(name, **labels) != after.value(name, **labels)
    }
    assert not changed, f"refused requests changed the store (before, after): {changed}"
    target.assert_unchanged()
