"""End to end: the same-host command channel (pegaflow.channel) between real client processes and a real node.

What it must hold: Save, Load and Query over shared memory give the replies and errors of the RPCs; the client says
which path ran and the node's metrics count both; a call that does not fit goes over gRPC; the channel file is 0600
and goes with the session; and no failure hangs a wait: a client killed mid-call, a node killed under a waiting
client, a session closed with calls in flight.
"""

from __future__ import annotations

import gc
import os
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import grpc
import pytest
from e2e_support import expect_error, random_hashes, unique, wait_until

from pegaflow import _futex, channel
from pegaflow.client import EngineClient, pack_blocks
from pegaflow.errors import EngineError
from pegaflow.flag import LoadFlagFile, LoadState
from pegaflow.shm import HOST_DEVICE, SharedKVCache

pytestmark = pytest.mark.node

LAYERS = 4


class Worker:
    """A registered host KV cache with a session (and so a channel) in this process."""

    def __init__(self, endpoint: str, blocks: int = 64, *, command_channel: bool = True, head_size: int = 8):
        self.cache = SharedKVCache(
            num_layers=LAYERS, num_blocks=blocks, block_size=1, num_kv_heads=1, head_size=head_size
        )
        self.client = EngineClient(endpoint, timeout_s=10.0, command_channel=command_channel)
        self.namespace = unique("chan")
        reg = self.client.register_context(
            unique("chan-engine"), self.namespace, 0, 1, 0, LAYERS, HOST_DEVICE, self.cache.layer_registrations()
        )
        self.ctx = reg.context_id
        self.session = self.client.open_session(self.ctx)
        self.channel = channel.lookup(endpoint, self.ctx)

    def close(self):
        self.session.close()
        self.client.close()
        self.cache.close()
        self.cache.unlink()


@pytest.fixture
def worker(node):
    w = Worker(node.endpoint)
    yield w
    w.close()


def test_save_load_and_query_take_the_channel_and_reply_as_the_rpcs_do(node, worker):
    assert worker.channel is not None, "the node offers a channel"
    mode = stat.S_IMODE(os.stat(worker.channel.path).st_mode)
    assert mode == 0o600, oct(mode)
    hashes = random_hashes(16)
    worker.cache.fill_random(list(range(16)), seed=3)
    saved = worker.client.save(worker.ctx, list(zip(range(16), hashes)))
    assert worker.client.last_path == "shm"
    assert (saved.blocks_stored, saved.blocks_sealed) == (16, 16)
    again = worker.client.save(worker.ctx, pack_blocks(range(16), hashes))
    assert (again.blocks_stored, again.blocks_skipped, again.blocks_sealed) == (0, 16, 0)
    hits = worker.client.query(worker.namespace, hashes + random_hashes(2), lease_ttl_ms=5000)
    assert worker.client.last_path == "shm"
    assert hits.hit_blocks == 16 and hits.local_hit_blocks == 16 and hits.lease_id > 0
    loaded = worker.client.load(
        worker.ctx, list(zip(range(32, 48), hashes)), lease_id=hits.lease_id, reply_when_done=True
    )
    assert worker.client.last_path == "shm"
    assert (loaded.done_state, loaded.blocks_loaded, loaded.blocks_failed) == (1, 16, 0)
    assert loaded.node_duration_ns > 0
    for layer in range(LAYERS):
        for i in range(16):
            assert worker.cache.block_bytes(layer, 32 + i) == worker.cache.block_bytes(layer, i)
    assert worker.client.calls_by_path[("Save", "shm")] == 2


def test_load_with_a_flag_and_missing_blocks_reports_like_the_rpc(worker):
    hashes = random_hashes(3)
    worker.client.save(worker.ctx, [(0, hashes[0])])
    with LoadFlagFile(slots=1) as flags:
        slot = flags.slot(0)
        reply = worker.client.load(worker.ctx, list(zip([10, 11, 12], hashes)), slot)
        assert worker.client.last_path == "shm"
        assert list(reply.failed_block_ids) == [11, 12]
        assert slot.wait(10, session=worker.session) is LoadState.FAILED
        assert (slot.loaded, slot.failed) == (1, 2)
    pending = worker.client.load_async(worker.ctx, [(13, hashes[0])])
    reply = pending.result()
    assert pending.path == "shm" and reply.done_state == 1 and reply.blocks_loaded == 1


def test_refusals_carry_the_same_code_and_message_on_both_paths(node, worker):
    grpc_only = EngineClient(node.endpoint, timeout_s=10.0, command_channel=False)
    channel._registry_lock.acquire()
    try:
        saved_registry = dict(channel._registry)
        channel._registry.clear()
        with pytest.raises(EngineError) as over_grpc:
            grpc_only.save(worker.ctx, [(10_000, b"h" * 32)])
        assert grpc_only.last_path == "grpc"
    finally:
        channel._registry.update(saved_registry)
        channel._registry_lock.release()
    with pytest.raises(EngineError) as over_shm:
        worker.client.save(worker.ctx, [(10_000, b"h" * 32)])
    assert worker.client.last_path == "shm"
    assert over_shm.value.code == over_grpc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert over_shm.value.details == over_grpc.value.details
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "layer"):
        worker.client.save(worker.ctx, [(0, b"h" * 32)], layer_indices=[99])
    grpc_only.close()


def test_calls_that_do_not_fit_the_channel_go_over_grpc(node, worker):
    mixed = [(0, b"a" * 31), (1, b"b" * 33)]
    worker.client.save(worker.ctx, mixed)
    assert worker.client.last_path == "grpc"
    too_many = worker.channel.max_blocks + 1
    with pytest.raises(EngineError):  # block ids past the cache: refused, but over gRPC
        worker.client.save(worker.ctx, list(zip(range(too_many), random_hashes(too_many))))
    assert worker.client.last_path == "grpc"
    worker.client.query(worker.namespace, random_hashes(2), scope="cluster")
    assert worker.client.last_path == "grpc"
    off = Worker(node.endpoint, command_channel=False)
    try:
        assert off.channel is None
        off.client.save(off.ctx, [(0, b"c" * 32)])
        assert off.client.last_path == "grpc"
    finally:
        off.close()


def test_metrics_count_calls_by_path(node, worker):
    worker.client.save(worker.ctx, [(0, b"m" * 32)])
    metrics = node.fresh_metrics()
    assert metrics.value("pegaflow_engine_calls_total", default=0, op="Save", path="shm", status="OK") >= 1


def test_closing_the_session_removes_the_file_and_calls_then_use_grpc(node):
    w = Worker(node.endpoint)
    path = Path(w.channel.path)
    assert path.exists()
    w.session.close()
    wait_until(lambda: not path.exists(), 5, "the channel file removed once the session ended")
    assert channel.lookup(node.endpoint, w.ctx) is None

    # The file goes when the node's channel loop sees the client's close flag; the context goes when the node hears
    # of the cancelled stream. The two are independent, so the save is NOT_FOUND only once the cancel has arrived.
    def save_is_refused():
        try:
            w.client.save(w.ctx, [(0, b"x" * 32)])
        except EngineError as e:
            assert e.code == grpc.StatusCode.NOT_FOUND, e
            return True
        return False

    wait_until(save_is_refused, 5, "saves refused (NOT_FOUND) once the node has heard of the cancelled session")
    assert w.client.last_path == "grpc"
    w.client.close()
    w.cache.close()
    w.cache.unlink()


def test_a_session_closed_with_calls_in_flight_ends_every_wait(node):
    w = Worker(node.endpoint, blocks=48, head_size=16384)  # 128 KiB per block and layer: copies that take a while
    try:
        hashes = random_hashes(24)
        w.client.save(w.ctx, list(zip(range(24), hashes)))
        calls = [w.client.load_async(w.ctx, list(zip(range(24, 48), hashes))) for _ in range(4)]
        assert all(c.path == "shm" for c in calls)
        w.session.close()
        started = time.monotonic()
        for call in calls:
            try:
                reply = call.result()
                assert reply.done_state in (1, 2)
            except EngineError as e:
                assert e.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE), e
        assert time.monotonic() - started < 8, "no wait ran into the client's timeout"
        wait_until(lambda: not Path(w.channel.path).exists(), 5, "the channel file removed")
    finally:
        w.client.close()
        w.cache.close()
        w.cache.unlink()


_DYING_CLIENT = textwrap.dedent(
    """
    import os, signal, sys
    from pegaflow import channel
    from pegaflow.client import EngineClient
    from pegaflow.shm import HOST_DEVICE, SharedKVCache
    endpoint, namespace = sys.argv[1], sys.argv[2]
    cache = SharedKVCache(num_layers=4, num_blocks=64, block_size=1, num_kv_heads=1, head_size=4096)
    client = EngineClient(endpoint, timeout_s=10)
    reg = client.register_context("dying", namespace, 0, 1, 0, 4, HOST_DEVICE, cache.layer_registrations())
    session = client.open_session(reg.context_id)
    ch = channel.lookup(endpoint, reg.context_id)
    print(ch.path, cache.path, flush=True)
    call = client.save_async(reg.context_id, [(i, bytes([i]) * 32) for i in range(64)])
    assert call.path == "shm"
    os.kill(os.getpid(), signal.SIGKILL)  # mid-call: the reply is never read
    """
)


def test_a_client_killed_mid_call_harms_neither_the_node_nor_other_clients(node, worker):
    namespace = unique("dying")
    child = subprocess.run(
        [sys.executable, "-c", _DYING_CLIENT, node.endpoint, namespace],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    channel_path, cache_path = child.stdout.split()
    try:
        # Its session died with it: the node drops the context and removes its channel.
        wait_until(lambda: not Path(channel_path).exists(), 15, "the dead client's channel file removed")
        assert node.alive
        saved = worker.client.save(worker.ctx, [(1, b"alive" * 6 + b"!!")])
        assert worker.client.last_path == "shm" and saved.blocks_stored == 1
    finally:
        Path(cache_path).unlink(missing_ok=True)


@pytest.mark.timeout(90)
def test_a_node_killed_under_a_waiting_client_ends_the_wait_with_unavailable(start_node):
    node = start_node(pool_size="64mb")
    w = Worker(node.endpoint)
    try:
        ch = w.channel
        assert ch is not None
        start_node.forget(node)  # SIGKILL: no reply, no closed state, no file removal
        call = ch.submit_save([0, 1, 2, 3], b"k" * 128, 32, [], 30.0)
        started = time.monotonic()
        with pytest.raises(EngineError) as raised:
            if call is None:  # the session ended first and took the channel with it: the RPC fails instead
                w.client.save(w.ctx, [(0, b"k" * 32)])
            else:
                call.result()
        assert raised.value.code == grpc.StatusCode.UNAVAILABLE, raised.value
        assert time.monotonic() - started < 15, "ended long before the 30 s timeout"
    finally:
        w.client.close()
        w.cache.close()
        w.cache.unlink()
        for leftover in Path("/dev/shm").glob(f"pegaflow-chan-{node.process.pid}-*"):
            leftover.unlink()


def _raw_call(ch, slot: int, op: int, seq: int, name: bytes, count: int, hash_bytes: int, layers: int = 0, flags=0):
    """Writes one request into ``slot`` by hand (as a buggy or hostile client might) and waits for its reply."""
    buf, at = ch._mmap, ch.header_bytes + slot * ch.slot_bytes
    buf[at + 128 : at + 128 + len(name)] = name
    struct.pack_into("<IQIIII", buf, at + 4, op, seq, count, hash_bytes, layers, flags)
    struct.pack_into("<QIIQ", buf, at + 32, 0, len(name), 0, 0)
    struct.pack_into("<I", buf, at, channel.REQUEST)
    bell = struct.unpack_from("<I", buf, 40)[0]
    struct.pack_into("<I", buf, 40, bell + 1)
    _futex.wake_all(ch._base + 40)
    wait_until(lambda: struct.unpack_from("<I", buf, at)[0] == channel.DONE, 10, f"a reply in slot {slot}", 0.001)
    status, length = struct.unpack_from("<II", buf, at + 56)
    message = bytes(buf[at + ch._message_at : at + ch._message_at + length]).decode()
    struct.pack_into("<I", buf, at, channel.FREE)
    return status, message


def test_malformed_slots_written_by_hand_get_their_code_and_change_nothing(worker):
    ch = worker.channel
    slot = ch.slot_count - 1
    with ch._lock:
        ch._free.remove(slot)  # this test writes the slot itself
    ctx = worker.ctx.encode()
    hashes = random_hashes(2)
    worker.cache.fill_random([0, 1], seed=5)
    at = ch.header_bytes + slot * ch.slot_bytes
    ch._mmap[at + ch._ids_at : at + ch._ids_at + 8] = struct.pack("<II", 0, 1)
    ch._mmap[at + ch._hashes_at : at + ch._hashes_at + 64] = b"".join(hashes)
    cases = [
        ({"op": 7, "seq": 1, "name": ctx, "count": 2, "hash_bytes": 32}, 3, "op 7 is not Save"),
        ({"op": 1, "seq": 2, "name": ctx, "count": ch.max_blocks + 1, "hash_bytes": 32}, 3, "block_count"),
        ({"op": 1, "seq": 3, "name": ctx, "count": 2, "hash_bytes": 65}, 3, "hash_bytes 65"),
        ({"op": 1, "seq": 4, "name": ctx, "count": 2, "hash_bytes": 32, "layers": ch.max_layers + 1}, 3, "layer_count"),
        ({"op": 1, "seq": 5, "name": ctx, "count": 2, "hash_bytes": 32, "flags": 8}, 3, "unknown bits"),
        (
            {"op": 1, "seq": 6, "name": b"someone-else#1-00", "count": 2, "hash_bytes": 32},
            5,
            "is not this channel's context",
        ),
        ({"op": 1, "seq": 6, "name": ctx, "count": 2, "hash_bytes": 32}, 9, "seq 6 is stale"),
    ]
    for fields, code, fragment in cases:
        status, message = _raw_call(ch, slot, **fields)
        assert (status, fragment in message) == (code, True), (fields, status, message)
    assert worker.client.query(worker.namespace, hashes).hit_blocks == 0, "no refused slot stored anything"
    status, message = _raw_call(ch, slot, op=1, seq=7, name=ctx, count=2, hash_bytes=32)
    assert status == 0, message
    assert worker.client.query(worker.namespace, hashes).hit_blocks == 2, "and a well-formed one in that slot does"


def test_a_cancelled_call_nobody_waits_for_ends_cancelled_and_its_slot_comes_back(node):
    w = Worker(node.endpoint, blocks=48, head_size=16384)  # 128 KiB per block and layer: loads that take a while
    try:
        hashes = random_hashes(24)
        w.client.save(w.ctx, list(zip(range(24), hashes)))
        slots = w.channel.slot_count
        calls = [w.client.load_async(w.ctx, list(zip(range(24, 48), hashes))) for _ in range(slots)]
        assert all(c.path == "shm" for c in calls), "every slot taken"
        assert all(c.cancel() for c in calls)
        for call in calls:
            with pytest.raises(EngineError) as ended:
                call.result()
            assert ended.value.code == grpc.StatusCode.CANCELLED
        # The node still answers them; once it has, the slots serve new calls again (none leaked to gRPC).
        wait_until(lambda: all(w.channel._state(c.slot) == channel.DONE for c in calls), 20, "the node answered all")
        for _ in range(slots):
            reply = w.client.load(w.ctx, list(zip(range(24, 48), hashes)), reply_when_done=True)
            assert reply.done_state == 1
            assert w.client.last_path == "shm"
    finally:
        w.close()


def test_calls_dropped_without_a_result_give_their_slots_back_once_the_node_answered(node):
    w = Worker(node.endpoint, blocks=48, head_size=16384)
    try:
        hashes = random_hashes(24)
        w.client.save(w.ctx, list(zip(range(24), hashes)))
        slots = w.channel.slot_count
        calls = [w.client.load_async(w.ctx, list(zip(range(24, 48), hashes))) for _ in range(slots)]
        assert all(c.path == "shm" for c in calls), "every slot taken"
        taken = [c.slot for c in calls]
        del calls  # nobody asks for the results: the finalizers hand the slots over
        gc.collect()
        wait_until(lambda: all(w.channel._state(s) == channel.DONE for s in taken), 20, "the node answered all")
        for _ in range(slots):
            reply = w.client.load(w.ctx, list(zip(range(24, 48), hashes)), reply_when_done=True)
            assert reply.done_state == 1
            assert w.client.last_path == "shm", "a dropped call's slot came back (no fallback to gRPC)"
    finally:
        w.close()


def test_done_callbacks_run_on_a_few_reused_threads(node, worker):
    hashes = random_hashes(8)
    worker.client.save(worker.ctx, list(zip(range(8), hashes)))
    seen: list[str] = []
    lock = threading.Lock()
    rounds, per_round = 3, worker.channel.slot_count

    def callback(call):
        with lock:
            seen.append(threading.current_thread().name)

    for r in range(rounds):  # a round fills every slot; the next starts once all its callbacks ran
        for _ in range(per_round):
            pending = worker.client.save_async(worker.ctx, list(zip(range(8), hashes)))
            assert isinstance(pending, channel.ChannelCall), "over the channel"
            pending.add_done_callback(callback)
        wait_until(lambda r=r: len(seen) == (r + 1) * per_round, 20, f"round {r}'s callbacks")
    assert set(seen) == {"pegaflow-channel-callback"}
    threads = [t for t in threading.enumerate() if t.name == "pegaflow-channel-callback"]
    assert 1 <= len(threads) <= channel._CALLBACK_THREADS, f"{len(threads)} threads for {len(seen)} callbacks"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_closing_its_copy_leaves_the_parents_channel_open(node, worker):
    pid = os.fork()
    if pid == 0:  # the child: its inherited channel object is its parent's, not to be closed from here
        try:
            worker.channel.close()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    time.sleep(0.3)  # longer than the node thread's wake-up: a close request would have been seen
    assert Path(worker.channel.path).exists()
    worker.client.save(worker.ctx, [(0, b"f" * 32)])
    assert worker.client.last_path == "shm"
