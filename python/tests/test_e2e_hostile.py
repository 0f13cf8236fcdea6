"""The hostile-input suite: every field of every RPC given hostile values, and random and mutated protobuf bytes sent
raw to every method, against a node of its own (property-based, Hypothesis; about two minutes in all).

Each answer must be OK or a refusal with a caller's code (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION,
RESOURCE_EXHAUSTED) and a short message; never INTERNAL, UNKNOWN or a hang. And nothing a refusal touches may change:
- a baseline of blocks, saved first and held by a lease, stays visible after every request and byte-exact (loaded
  back and compared at the end of each test);
- nothing a refused Save names ever becomes visible;
- no file outside /dev/shm is ever mapped (a decoy file in /tmp, and links to it from /dev/shm, are among the
  hostile paths: /proc/<node>/maps must never show it, and its bytes never change);
- the node stays up (a Shutdown that does not name the node never stops it) and logs no stack trace.
Accepted hostile registrations are unregistered at once, so the baseline context and its session are the only ones.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import grpc
import pytest
from e2e_support import random_hashes, unique

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed (python/requirements-test.txt)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pegaflow._proto import engine_pb2, fabric_pb2  # noqa: E402
from pegaflow.client import EngineClient, FabricClient  # noqa: E402
from pegaflow.flag import LoadFlagFile, LoadState  # noqa: E402
from pegaflow.shm import HOST_DEVICE, SharedKVCache  # noqa: E402

pytestmark = [pytest.mark.node, pytest.mark.timeout(300)]

SHAPE = {"num_layers": 2, "num_blocks": 32, "block_size": 16, "num_kv_heads": 2, "head_size": 64}
BASELINE_BLOCKS = 4
CHECK_BLOCK = 31  # where the baseline is loaded back for the byte check; hostile loads may write anywhere
CALLER_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
MAX_DETAILS = 1100  # the node cuts descriptions at 1024 characters
ENGINE = "/pegaflow.engine.v1.Engine/"
FABRIC = "/pegaflow.fabric.v1.Fabric/"
SUITE_SETTINGS = settings(
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


class Target:
    """The node, a registered worker with a session, a leased baseline of saved blocks, and the decoys."""

    def __init__(self, node):
        self.node = node
        self.engine = EngineClient(node.endpoint, timeout_s=20.0)
        self.channel = grpc.insecure_channel(node.endpoint)
        self.namespace = unique("hostile")
        self.cache = SharedKVCache(**SHAPE)
        self.flags = LoadFlagFile(slots=8)
        self.decoy_dir = Path(tempfile.mkdtemp(prefix="pegaflow-decoy-"))
        self.decoy = self.decoy_dir / "kv"
        self.decoy.write_bytes(b"D" * (1 << 20))
        self.shm_links = Path("/dev/shm") / unique("pegaflow-hostile-links")
        self.shm_links.mkdir()
        (self.shm_links / "to-decoy").symlink_to(self.decoy)
        (self.shm_links / "to-dir").symlink_to(self.decoy_dir)
        self.context_id = self.engine.register_context(
            unique("engine"), self.namespace, 0, 1, 0, 2, HOST_DEVICE, self.cache.layer_registrations()
        ).context_id
        self.session = self.engine.open_session(self.context_id)
        self.cache.fill_random(range(BASELINE_BLOCKS), seed=7)
        self.baseline = random_hashes(BASELINE_BLOCKS)
        self.expected = [
            [self.cache.block_bytes(layer, b) for layer in range(SHAPE["num_layers"])] for b in range(BASELINE_BLOCKS)
        ]
        blocks = list(zip(range(BASELINE_BLOCKS), self.baseline))
        assert self.engine.save(self.context_id, blocks).blocks_sealed == BASELINE_BLOCKS
        # Held for the whole suite: hostile saves that are accepted may fill the pool, but never evict the baseline.
        assert self.engine.query(self.namespace, self.baseline, lease_ttl_ms=600_000).hit_blocks == BASELINE_BLOCKS
        self.node_id = FabricClient(node.endpoint).health().node_id
        self.accepted_hashes: set[bytes] = set()
        self.hostile_paths = [
            str(self.decoy),
            str(self.shm_links / "to-decoy"),
            str(self.shm_links / "to-dir" / "kv"),
            f"/dev/shm/../{self.decoy.relative_to('/')}",
            "/dev/shm",
            "/dev/shm/",
            "/proc/self/mem",
            "/dev/zero",
            "relative/path",
            "/dev/shm/\x00x",
            "/dev/shm/" + "p" * 5000,
            str(self.cache.path),
            str(self.flags.path),
        ]

    # ---- observing ----

    def call(self, method: str, request: bytes) -> grpc.StatusCode:
        """Sends raw bytes and checks the answer: OK, or a caller's refusal with a short message.

        An accepted registration is unregistered at once; the hashes of an accepted Save are remembered (a later
        refused Save may name them too); a refused Save's hashes must not be visible.
        """
        name = method.rsplit("/", 1)[1]
        reply = None
        try:
            if name == "Session":
                responses = self.channel.unary_stream(method)(request, timeout=10)
                first = next(responses, None)
                responses.cancel()
                if first is not None:
                    assert first.startswith(b"\x0a"), f"{method}: a stream that did not start with 'attached'"
            else:
                reply = self.channel.unary_unary(method)(request, timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            code, details = e.code(), e.details() or ""
            if name == "Session" and code == grpc.StatusCode.CANCELLED:
                code = grpc.StatusCode.OK  # our own cancel after the first event
            else:
                assert code in CALLER_CODES, f"{method}: {code.name}: {details[:300]}"
                assert len(details) <= MAX_DETAILS, f"{method}: a {len(details)}-character message"
        if name == "RegisterContext" and code == grpc.StatusCode.OK:
            self.engine.unregister_context(engine_pb2.RegisterContextResponse.FromString(reply).context_id)
        if name == "Save":
            self.check_save(request, code)
        return code

    def check_save(self, request: bytes, code: grpc.StatusCode) -> None:
        try:
            save = engine_pb2.SaveRequest.FromString(request)
        except Exception:  # noqa: BLE001 - what the Python parser refuses names no block we can look for
            return
        hashes = [b.hash for b in save.blocks if 1 <= len(b.hash) <= 64]
        packed = save.packed_blocks.hashes
        if 1 <= packed.hash_bytes <= 64:
            width = packed.hash_bytes
            hashes += [packed.data[i : i + width] for i in range(0, len(packed.data) - width + 1, width)]
        if code == grpc.StatusCode.OK:
            self.accepted_hashes.update(hashes)
            return
        fresh = [h for h in hashes if h not in self.accepted_hashes and h not in self.baseline]
        for h in fresh[:3]:
            assert self.engine.query(self.namespace, [h]).hit_blocks == 0, "a refused Save stored a block"

    def mapped(self) -> str:
        return Path(f"/proc/{self.node.process.pid}/maps").read_text()

    def assert_unchanged(self) -> None:
        """The cheap check, after every request: the node is up, the baseline visible, nothing outside mapped."""
        assert self.node.alive, "the node stopped"
        assert self.engine.query(self.namespace, self.baseline).hit_blocks == BASELINE_BLOCKS
        maps = self.mapped()
        assert str(self.decoy) not in maps, "the node mapped the decoy outside /dev/shm"

    def assert_byte_exact(self) -> None:
        """The full check: every baseline block loaded back equals what was saved; the decoy is untouched.

        A hostile Load accepted just before may still be copying into the worker's memory: a block that differs is
        loaded once more, and the pool's copy must then match.
        """
        for b, h in enumerate(self.baseline):
            for attempt in range(2):
                slot = self.flags.slot(0)
                slot.reset()
                self.engine.load(self.context_id, [(CHECK_BLOCK, h)], slot)
                assert self.session.wait_for_load(slot, 10) is LoadState.DONE
                actual = [self.cache.block_bytes(layer, CHECK_BLOCK) for layer in range(SHAPE["num_layers"])]
                if actual == self.expected[b]:
                    break
                assert attempt == 0, f"baseline block {b} is no longer byte-exact"
                time.sleep(0.2)
        assert self.decoy.read_bytes() == b"D" * (1 << 20), "the decoy file was written"
        assert self.session.alive

    def close(self) -> None:
        try:
            self.session.close()  # its last session: the node drops the context
        finally:
            self.engine.close()
            self.channel.close()
            self.cache.close()
            self.cache.unlink()
            self.flags.close()
            self.flags.unlink()
            for p in (self.shm_links / "to-decoy", self.shm_links / "to-dir"):
                p.unlink(missing_ok=True)
            self.shm_links.rmdir()
            self.decoy.unlink()
            self.decoy_dir.rmdir()


@pytest.fixture(scope="module")
def target(start_module_node):
    t = Target(start_module_node(pool_size="128mb"))
    yield t
    t.assert_byte_exact()
    log = t.node.log_path.read_text(errors="replace")
    t.close()
    assert "\tat " not in log, "the node logged a stack trace:\n" + log[-4000:]


# ---- hostile values ----

# Block ids the checks write into (CHECK_BLOCK, the last test's 10 and 11) are left to them.
RESERVED_BLOCKS = (10, 11, CHECK_BLOCK)
U32 = st.one_of(st.sampled_from([0, 1, 2, 31, 32, 2**31 - 1, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1))
U64 = st.one_of(
    st.sampled_from([0, 1, 4096, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 4096, 2**64 - 8, 2**64 - 1]),
    st.integers(0, 2**64 - 1),
)
HUGE = ["x" * 300, "y" * 5000, "z" * 70_000, "é" * 200, "\x00" * 10, "名" * 100]
TEXT = st.one_of(st.just(""), st.text(max_size=40), st.sampled_from(HUGE))
HASH = st.one_of(st.binary(min_size=1, max_size=64), st.sampled_from([b"", b"h" * 65, b"h" * 1000]))


def _strings(target, extra=()):
    return st.one_of(TEXT, st.sampled_from(target.hostile_paths + list(extra)))


def _region(target):
    shm = st.builds(engine_pb2.SharedMemoryRegion, path=_strings(target), offset_bytes=U64)
    ipc = st.builds(
        engine_pb2.CudaIpcRegion,
        ipc_handle=st.binary(max_size=80),
        allocation_size_bytes=U64,
        offset_bytes=U64,
    )
    return st.one_of(
        st.builds(lambda s: engine_pb2.MemoryRegion(shm=s), shm),
        st.builds(lambda c: engine_pb2.MemoryRegion(cuda_ipc=c), ipc),
        st.just(engine_pb2.MemoryRegion()),
    )


def _layer(target, valid):
    segment = st.builds(engine_pb2.ByteSegment, offset_bytes=U64, length_bytes=U64)
    hostile = st.builds(
        engine_pb2.LayerRegistration,
        name=TEXT,
        layer_index=U32,
        region=_region(target),
        num_blocks=U32,
        block_stride_bytes=U64,
        segments=st.lists(segment, max_size=10),
    )
    # A valid layer with one field replaced keeps the request close to acceptable, where the interesting checks are.
    return st.one_of(hostile, st.sampled_from(valid), st.builds(_tweak_layer, st.sampled_from(valid), hostile))


def _tweak_layer(valid, hostile):
    layer = engine_pb2.LayerRegistration()
    layer.CopyFrom(valid)
    field = ["name", "layer_index", "region", "num_blocks", "block_stride_bytes", "segments"][hash(hostile.name) % 6]
    if field == "segments":
        del layer.segments[:]
        layer.segments.extend(hostile.segments)
    elif field == "region":
        layer.region.CopyFrom(hostile.region)
    else:
        setattr(layer, field, getattr(hostile, field))
    return layer


def _block_refs(target):
    ref = st.builds(engine_pb2.BlockRef, block_id=U32.filter(lambda b: b not in RESERVED_BLOCKS), hash=HASH)
    baseline = st.builds(lambda i: engine_pb2.BlockRef(block_id=i, hash=target.baseline[i]), st.integers(0, 3))
    return st.lists(st.one_of(ref, baseline), max_size=20)


def _context_ids(target):
    return st.one_of(TEXT, st.just(target.context_id), st.just(target.context_id + "x"), st.just("c" * 16_000))


# ---- every field of every RPC ----


def test_hostile_registrations_are_refused_or_harmless(target):
    valid = list(target.cache.layer_registrations())

    @settings(SUITE_SETTINGS, max_examples=500)
    @given(
        st.builds(
            engine_pb2.RegisterContextRequest,
            instance_id=TEXT,
            namespace=st.one_of(TEXT, st.just(target.namespace)),
            tp_rank=U32,
            tp_size=st.one_of(U32, st.just(1)),
            pp_rank=U32,
            total_layers=st.one_of(U32, st.just(2)),
            device=st.one_of(TEXT, st.just(HOST_DEVICE)),
            layers=st.lists(_layer(target, valid), max_size=6),
        )
    )
    def run(request):
        target.call(ENGINE + "RegisterContext", request.SerializeToString())
        target.assert_unchanged()

    run()


def test_hostile_saves_queries_loads_and_releases_are_refused_or_harmless(target):
    flag = st.builds(
        engine_pb2.LoadFlag,
        path=st.one_of(_strings(target), st.just(str(target.flags.path))),
        # Slots 0 and 1 are the checks' own.
        offset_bytes=st.one_of(U64, st.sampled_from([64, 224, 232, 256])).filter(lambda o: o >= 64),
    )

    @settings(SUITE_SETTINGS, max_examples=1000)
    @given(
        st.one_of(
            st.builds(
                engine_pb2.SaveRequest,
                context_id=_context_ids(target),
                blocks=_block_refs(target),
                layer_indices=st.lists(U32, max_size=5),
            ),
            st.builds(
                engine_pb2.QueryRequest,
                namespace=st.one_of(TEXT, st.just(target.namespace)),
                hashes=st.lists(st.one_of(HASH, st.sampled_from(target.baseline)), max_size=20),
                lease_ttl_ms=st.one_of(U32, st.just(0)),
            ),
            st.builds(
                engine_pb2.LoadRequest,
                context_id=_context_ids(target),
                blocks=_block_refs(target),
                lease_id=U64,
                flag=flag,
            ),
            st.builds(engine_pb2.ReleaseRequest, lease_id=U64),
            st.builds(engine_pb2.UnregisterContextRequest, context_id=TEXT),
            st.builds(engine_pb2.SessionRequest, context_id=_context_ids(target)),
        )
    )
    def run(request):
        method = type(request).__name__.removesuffix("Request")
        if method == "UnregisterContext" and request.context_id == target.context_id:
            return  # a valid request that does what it says
        target.call(ENGINE + method, request.SerializeToString())
        target.assert_unchanged()

    run()
    target.assert_byte_exact()


def test_hostile_fabric_requests_never_stop_the_node(target):
    @settings(SUITE_SETTINGS, max_examples=200)
    @given(
        st.one_of(
            st.builds(
                fabric_pb2.ShutdownRequest,
                reason=TEXT,
                confirm_node_id=st.one_of(
                    TEXT.filter(lambda s: s != target.node_id),
                    st.just(target.node_id + " "),
                    st.just(target.node_id.upper()),
                ),
            ),
            st.just(fabric_pb2.HealthRequest()),
            st.just(fabric_pb2.ClusterStatusRequest()),
        )
    )
    def run(request):
        method = type(request).__name__.removesuffix("Request")
        target.call(FABRIC + method, request.SerializeToString())
        target.assert_unchanged()

    run()
    time.sleep(0.5)  # a Shutdown that was obeyed stops the node 200 ms after its reply
    target.assert_unchanged()


# ---- random and mutated bytes, raw, per method ----

METHODS = [
    ENGINE + "RegisterContext",
    ENGINE + "UnregisterContext",
    ENGINE + "Session",
    ENGINE + "Save",
    ENGINE + "Query",
    ENGINE + "Load",
    ENGINE + "Release",
    FABRIC + "Health",
    FABRIC + "ClusterStatus",
    FABRIC + "Shutdown",
]


def _valid_bytes(target, method: str) -> bytes:
    """A valid request of ``method`` to mutate (none that would unregister the baseline or stop the node)."""
    name = method.rsplit("/", 1)[1]
    blocks = [engine_pb2.BlockRef(block_id=20, hash=h) for h in target.baseline[:1]]
    messages = {
        "RegisterContext": engine_pb2.RegisterContextRequest(
            instance_id=unique("mutant"),
            namespace=target.namespace,
            tp_size=1,
            total_layers=2,
            device=HOST_DEVICE,
            layers=target.cache.layer_registrations(),
        ),
        "UnregisterContext": engine_pb2.UnregisterContextRequest(context_id="not-" + target.context_id),
        "Session": engine_pb2.SessionRequest(context_id=target.context_id),
        "Save": engine_pb2.SaveRequest(context_id=target.context_id, blocks=blocks),
        "Query": engine_pb2.QueryRequest(namespace=target.namespace, hashes=target.baseline),
        "Load": engine_pb2.LoadRequest(
            context_id=target.context_id, blocks=blocks, flag=target.flags.slot(7).to_proto()
        ),
        "Release": engine_pb2.ReleaseRequest(lease_id=12345),
        "Health": fabric_pb2.HealthRequest(),
        "ClusterStatus": fabric_pb2.ClusterStatusRequest(),
        "Shutdown": fabric_pb2.ShutdownRequest(reason="mutant"),  # no confirmation: no mutation makes "n1" of it
    }
    return messages[name].SerializeToString()


@st.composite
def _mutated(draw, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            del data[at : at + draw(st.integers(1, 4))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "splice":
            data[at:at] = draw(st.sampled_from([b"\x0a\xff\xff\xff\xff\x0f", b"\x12\x02\xc3\x28", b"\xff" * 6]))
    return bytes(data)


def _is_unregister_of_baseline(target, method: str, raw: bytes) -> bool:
    if not method.endswith("/UnregisterContext"):
        return False
    try:
        return engine_pb2.UnregisterContextRequest.FromString(raw).context_id == target.context_id
    except Exception:  # noqa: BLE001 - what the Python parser refuses, the node refuses too
        return False


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.rsplit("/", 1)[1])
def test_random_and_mutated_bytes_are_refused_or_harmless(target, method):
    base = _valid_bytes(target, method)

    @settings(SUITE_SETTINGS, max_examples=400)
    @given(st.one_of(st.binary(max_size=200), _mutated(base)))
    def run(raw):
        if _is_unregister_of_baseline(target, method, raw):
            return
        target.call(method, raw)
        target.assert_unchanged()

    run()
    if method.endswith("/Load") or method.endswith("/Save"):
        target.assert_byte_exact()


def test_the_node_serves_normally_after_the_suite(target):
    """Runs last: after everything above the baseline worker still saves and loads, exactly."""
    target.cache.fill_random([10], seed=99)
    fresh = random_hashes(1)
    assert target.engine.save(target.context_id, [(10, fresh[0])]).blocks_sealed == 1
    expected = [target.cache.block_bytes(layer, 10) for layer in range(SHAPE["num_layers"])]
    slot = target.flags.slot(1)
    slot.reset()
    target.engine.load(target.context_id, [(11, fresh[0])], slot)
    assert target.session.wait_for_load(slot, 10) is LoadState.DONE
    assert [target.cache.block_bytes(layer, 11) for layer in range(SHAPE["num_layers"])] == expected
    assert os.path.exists(target.cache.path)
