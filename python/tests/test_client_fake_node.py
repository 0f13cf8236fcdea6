"""EngineClient and FabricClient against an in-process FAKE node (a Python gRPC server that records requests and
scripts its replies), and against nothing at all. Nothing here talks to the real node: that is test_e2e_*.py."""

import socket
import threading
import time
from concurrent import futures

import grpc
import pytest

from pegaflow._proto import engine_pb2, engine_pb2_grpc, fabric_pb2, fabric_pb2_grpc
from pegaflow.client import EngineClient, EngineError, FabricClient, pack_blocks
from pegaflow.flag import LoadFlagFile
from pegaflow.session import CLOSED_BY_CLIENT, ENDED_BY_NODE
from pegaflow.shm import HOST_DEVICE, SharedKVCache


class FakeEngine(engine_pb2_grpc.EngineServicer):
    """Records requests; Session behaviour is chosen per context id."""

    def __init__(self):
        self.requests = []
        self.session_cancelled = threading.Event()

    def RegisterContext(self, request, context):
        self.requests.append(request)
        if not request.layers:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "layers: at least one layer is required")
        return engine_pb2.RegisterContextResponse(context_id="ctx-1", block_bytes=4096, slot_bytes=1024)

    def UnregisterContext(self, request, context):
        self.requests.append(request)
        return engine_pb2.UnregisterContextResponse()

    def Session(self, request, context):
        if request.context_id == "unknown":
            context.abort(grpc.StatusCode.NOT_FOUND, "context unknown is not registered")
        if request.context_id == "silent":
            context.add_callback(self.session_cancelled.set)
            while context.is_active():
                time.sleep(0.01)
            return
        context.add_callback(self.session_cancelled.set)
        yield engine_pb2.SessionEvent(attached=request.context_id)
        if request.context_id == "short":
            return  # the fake node ends the stream
        if request.context_id == "failing":
            context.abort(grpc.StatusCode.INTERNAL, "node stopping")
        uptime_ms = 0
        while context.is_active():
            uptime_ms += 10
            yield engine_pb2.SessionEvent(heartbeat_ms=uptime_ms)
            time.sleep(0.01)

    def Save(self, request, context):
        self.requests.append(request)
        return engine_pb2.SaveResponse(blocks_stored=len(request.blocks) + len(request.packed_blocks.block_ids))

    def Query(self, request, context):
        self.requests.append(request)
        packed = request.packed_hashes
        hits = len(request.hashes) + (len(packed.data) // packed.hash_bytes if packed.hash_bytes else 0)
        return engine_pb2.QueryResponse(hit_blocks=hits, lease_id=9 if request.lease_ttl_ms else 0)

    def Load(self, request, context):
        self.requests.append(request)
        return engine_pb2.LoadResponse(blocks_scheduled=len(request.blocks) + len(request.packed_blocks.block_ids))

    def Release(self, request, context):
        self.requests.append(request)
        return engine_pb2.ReleaseResponse(released=request.lease_id == 9)


class FakeFabric(fabric_pb2_grpc.FabricServicer):
    def Health(self, request, context):
        return fabric_pb2.HealthResponse(node_id="n1", status=fabric_pb2.HealthResponse.SERVING)

    def ClusterStatus(self, request, context):
        return fabric_pb2.ClusterStatusResponse(cluster_name="pegaflow", self_node_id="n1")

    def Shutdown(self, request, context):
        return fabric_pb2.ShutdownResponse(node_id="n1")

    def __init__(self):
        self.requests = []
        self.previous_release = False  # answer with per-hash blocks only, as a node of the previous release

    def Locate(self, request, context):
        self.requests.append(request)
        packed = request.packed_hashes
        width = packed.hash_bytes
        hashes = list(request.hashes) + [packed.data[i : i + width] for i in range(0, len(packed.data), width or 1)]
        if len(hashes) > 8192:
            field = "packed_hashes" if width else "hashes"
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {len(hashes)} hashes; at most 8192")
        held = [h.startswith(b"held") for h in hashes]
        prefix = next((i for i, h in enumerate(held) if not h), len(held))
        reply = fabric_pb2.LocateResponse(prefix_length=prefix, complete=True, node_id="n1")
        if self.previous_release:
            reply.blocks.extend(fabric_pb2.BlockHolders(node_ids=["n1", "n3"] if h else []) for h in held)
            return reply
        reply.holder_node_ids.extend(["n1", "n2", "n3"])
        reply.holder_masks.extend(0b101 if h else 0 for h in held)
        if not request.packed_reply:
            reply.blocks.extend(fabric_pb2.BlockHolders(node_ids=["n1", "n3"] if h else []) for h in held)
        return reply

    def WatchLocations(self, request, context):
        kind = fabric_pb2.LocationEvent
        yield kind(kind=kind.HELD, node_id="n1", hash=b"held-0", sequence=7, incarnation=42)
        yield kind(kind=kind.SNAPSHOT_END, node_id="n1", sequence=7, incarnation=42)
        yield kind(kind=kind.REMOVED, node_id="n1", hash=b"held-0", sequence=8, incarnation=42)


@pytest.fixture
def fake_node():
    engine = FakeEngine()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    engine_pb2_grpc.add_EngineServicer_to_server(engine, server)
    engine.fabric = FakeFabric()  # the fake Fabric service, for tests that look at its requests
    fabric_pb2_grpc.add_FabricServicer_to_server(engine.fabric, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield engine, f"127.0.0.1:{port}"
    server.stop(grace=None)


@pytest.fixture
def client(fake_node):
    with EngineClient(fake_node[1], timeout_s=2.0) as c:
        yield c


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_closed_port_fails_fast_with_unavailable_without_any_node():
    started = time.monotonic()
    with EngineClient(f"127.0.0.1:{_closed_port()}", timeout_s=1.0) as client, pytest.raises(EngineError) as raised:
        client.query("ns", [b"h"])
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    assert raised.value.method == "Query"
    assert isinstance(raised.value.__cause__, grpc.RpcError)
    assert time.monotonic() - started < 1.5


def test_fake_node_receives_the_registered_layers_and_the_client_returns_its_context(fake_node, client):
    engine, _ = fake_node
    with SharedKVCache(num_layers=2, num_blocks=4, block_size=4, num_kv_heads=1, head_size=8) as cache:
        response = client.register_context("engine-0", "ns", 0, 1, 0, 2, HOST_DEVICE, cache.layer_registrations())
        assert response.context_id == "ctx-1"
        sent = engine.requests[-1]
        assert sent.device == "host" and sent.total_layers == 2
        assert list(sent.layers) == cache.layer_registrations()


def test_fake_node_errors_keep_their_status_code(client):
    with pytest.raises(EngineError) as raised:
        client.register_context("engine-0", "ns", 0, 1, 0, 2, HOST_DEVICE, [])
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "layers" in raised.value.details


def test_data_calls_build_the_requests_the_fake_node_records(fake_node, client):
    engine, _ = fake_node
    assert client.save("ctx-1", [(3, b"\x01" * 32), engine_pb2.BlockRef(block_id=4, hash=b"\x02")]).blocks_stored == 2
    save = engine.requests[-1]
    assert [(b.block_id, b.hash) for b in save.blocks] == [(3, b"\x01" * 32), (4, b"\x02")]
    assert list(save.layer_indices) == []
    client.save("ctx-1", [(3, b"h")], layer_indices=[0, 5])
    assert list(engine.requests[-1].layer_indices) == [0, 5]

    query = client.query("ns", [b"a", b"b"], lease_ttl_ms=500)
    assert (query.hit_blocks, query.lease_id) == (2, 9)
    assert engine.requests[-1].lease_ttl_ms == 500

    with LoadFlagFile(slots=2) as flags:
        assert client.load("ctx-1", [(1, b"a")], flags.slot(1), lease_id=9).blocks_scheduled == 1
        load = engine.requests[-1]
        assert (load.flag.path, load.flag.offset_bytes, load.lease_id) == (str(flags.path), 32, 9)

    assert client.release(9).released
    client.unregister_context("ctx-1")
    assert engine.requests[-1] == engine_pb2.UnregisterContextRequest(context_id="ctx-1")


def test_blocks_and_hashes_of_one_length_travel_packed_and_mixed_lengths_as_block_refs(fake_node, client):
    engine, _ = fake_node
    hashes = [bytes([i]) * 32 for i in range(5)]
    assert client.save("ctx-1", list(zip(range(10, 15), hashes))).blocks_stored == 5
    save = engine.requests[-1]
    assert list(save.blocks) == [] and list(save.packed_blocks.block_ids) == [10, 11, 12, 13, 14]
    assert (save.packed_blocks.hashes.data, save.packed_blocks.hashes.hash_bytes) == (b"".join(hashes), 32)

    client.save("ctx-1", [(1, b"\x01" * 31), (2, b"\x02" * 33)])
    mixed = engine.requests[-1]
    assert [(b.block_id, len(b.hash)) for b in mixed.blocks] == [(1, 31), (2, 33)]
    assert not mixed.HasField("packed_blocks")

    assert client.query("ns", hashes).hit_blocks == 5
    query = engine.requests[-1]
    assert list(query.hashes) == [] and query.packed_hashes.data == b"".join(hashes)

    packed = pack_blocks([7, 8], hashes[:2])
    assert client.load("ctx-1", packed, reply_when_done=True).blocks_scheduled == 2
    load = engine.requests[-1]
    assert load.reply_when_done and not load.HasField("flag") and load.packed_blocks == packed
    with pytest.raises(ValueError, match="pass a flag"):
        client.load("ctx-1", packed)
    with pytest.raises(ValueError, match="one length"):
        pack_blocks([1, 2], [b"a", b"bb"])


def test_async_save_and_load_return_pending_calls_with_the_reply(fake_node, client):
    pending = client.save_async("ctx-1", [(1, b"h" * 32), (2, b"i" * 32)])
    assert pending.result(5).blocks_stored == 2 and pending.done()
    seen = []
    load = client.load_async("ctx-1", [(3, b"h" * 32)])
    load.add_done_callback(seen.append)
    assert load.result(5).blocks_scheduled == 1
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [load]


def test_session_with_fake_node_attaches_receives_heartbeats_and_closes(fake_node, client):
    engine, _ = fake_node
    session = client.open_session("ctx-1")
    try:
        assert session.alive
        deadline = time.monotonic() + 5
        while session.last_heartbeat_ms is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert session.last_heartbeat_ms is not None
    finally:
        session.close()
    assert not session.alive
    assert session.end_reason == CLOSED_BY_CLIENT and session.error is None
    assert engine.session_cancelled.wait(5), "the fake node must see the stream end"


def test_session_ended_by_the_fake_node_records_why(client):
    ended = threading.Event()
    session = client.open_session("short", on_end=lambda s: ended.set())
    assert ended.wait(5)
    assert not session.alive
    assert session.end_reason == ENDED_BY_NODE


def test_session_failed_by_the_fake_node_records_the_status(client):
    session = client.open_session("failing")
    assert session.wait_ended(5)
    assert session.error.code == grpc.StatusCode.INTERNAL
    assert "node stopping" in session.end_reason


def test_session_for_a_context_the_fake_node_does_not_know_raises(client):
    with pytest.raises(EngineError) as raised:
        client.open_session("unknown")
    assert raised.value.code == grpc.StatusCode.NOT_FOUND


def test_session_the_fake_node_never_attaches_times_out(fake_node):
    engine, endpoint = fake_node
    with EngineClient(endpoint, timeout_s=0.2) as client, pytest.raises(EngineError) as raised:
        client.open_session("silent")
    assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert engine.session_cancelled.wait(5)


def test_fabric_client_calls_against_the_fake_node(fake_node):
    with FabricClient(fake_node[1], timeout_s=2.0) as fabric:
        assert fabric.health().status == fabric_pb2.HealthResponse.SERVING
        assert fabric.cluster_status().cluster_name == "pegaflow"
        assert fabric.shutdown("n1", "test").node_id == "n1"


def test_fabric_client_locates_and_watches_against_the_fake_node(fake_node):
    with FabricClient(fake_node[1], timeout_s=2.0) as fabric:
        reply = fabric.locate("ns", [b"held-0", b"held-1", b"cold", b"held-2"])
        assert [list(b.node_ids) for b in reply.blocks] == [["n1", "n3"], ["n1", "n3"], [], ["n1", "n3"]]
        assert reply.holders(2) == [] and reply.holders(3) == ["n1", "n3"] and len(reply) == 4
        assert reply.prefix_length == 2 and reply.complete and reply.node_id == "n1"
        with pytest.raises(EngineError) as refused:
            fabric.locate("ns", [b"h"] * 8193)
        assert "packed_hashes: 8193" in str(refused.value)
        events = list(fabric.watch_locations("ns", timeout_s=2.0))
        kinds = fabric_pb2.LocationEvent
        assert [e.kind for e in events] == [kinds.HELD, kinds.SNAPSHOT_END, kinds.REMOVED]
        assert events[-1].sequence == 8 and events[-1].incarnation == 42


def test_fabric_client_sends_locate_hashes_packed_and_asks_for_the_packed_reply(fake_node):
    engine, endpoint = fake_node
    with FabricClient(endpoint, timeout_s=2.0) as fabric:
        fabric.locate("ns", [b"held-0", b"cold-1"])
        fabric.locate("ns", [b"held-00", b"cold"])  # two lengths: one bytes field per hash
    same, mixed = engine.fabric.requests
    assert same.packed_reply and list(same.hashes) == []
    assert same.packed_hashes.hash_bytes == 6 and same.packed_hashes.data == b"held-0cold-1"
    assert mixed.packed_reply and list(mixed.hashes) == [b"held-00", b"cold"] and not mixed.HasField("packed_hashes")


def test_fabric_client_reads_the_per_hash_locate_reply_of_the_previous_release(fake_node):
    engine, endpoint = fake_node
    engine.fabric.previous_release = True
    with FabricClient(endpoint, timeout_s=2.0) as fabric:
        reply = fabric.locate("ns", [b"held-0", b"cold", b"held-1"])
    assert [reply.holders(i) for i in range(len(reply))] == [["n1", "n3"], [], ["n1", "n3"]]
    assert [b.node_ids for b in reply.blocks] == [("n1", "n3"), (), ("n1", "n3")]
    assert reply.prefix_length == 1
