"""LoadFlagSlot reads what the node writes: counters first, state last, int64 little-endian."""

import struct
import threading
import time

import grpc
import pytest

from pegaflow import _futex
from pegaflow.errors import SessionEndedError
from pegaflow.flag import SLOT_BYTES, LoadFlagFile, LoadFlagSnapshot, LoadState


@pytest.fixture
def flags():
    with LoadFlagFile(slots=4) as f:
        yield f


def _node_writes(path, offset_bytes: int, state: int, loaded: int, failed: int, duration_ns: int) -> None:
    """What the node does, through its own mapping (here: the file): counters, then state."""
    with open(path, "r+b") as f:
        f.seek(offset_bytes + 8)
        f.write(struct.pack("<qqq", loaded, failed, duration_ns))
        f.flush()
        f.seek(offset_bytes)
        f.write(struct.pack("<q", state))


def test_a_new_slot_is_pending_with_zero_counters(flags):
    slot = flags.slot(2)
    assert slot.offset_bytes == 2 * SLOT_BYTES
    assert slot.snapshot() == LoadFlagSnapshot(LoadState.PENDING, 0, 0, 0)
    assert flags.path.stat().st_size == 4 * SLOT_BYTES


def test_reads_the_node_written_state_and_counters(flags):
    slot = flags.slot(1)
    _node_writes(flags.path, slot.offset_bytes, state=2, loaded=7, failed=3, duration_ns=123_456_789)
    assert slot.state is LoadState.FAILED
    assert (slot.loaded, slot.failed, slot.duration_ns) == (7, 3, 123_456_789)
    assert flags.slot(0).state is LoadState.PENDING and flags.slot(2).state is LoadState.PENDING  # neighbours

    slot.reset()
    assert slot.snapshot() == LoadFlagSnapshot(LoadState.PENDING, 0, 0, 0)


def test_wait_returns_done_once_the_node_finishes(flags):
    slot = flags.slot(3)
    writer = threading.Timer(0.05, _node_writes, args=(flags.path, slot.offset_bytes, 1, 16, 0, 5_000))
    writer.start()
    try:
        assert slot.wait(timeout_s=5.0) is LoadState.DONE
        assert slot.snapshot() == LoadFlagSnapshot(LoadState.DONE, 16, 0, 5_000)
    finally:
        writer.cancel()


def test_wait_returns_pending_after_the_timeout(flags):
    started = time.monotonic()
    assert flags.slot(0).wait(timeout_s=0.05) is LoadState.PENDING
    assert 0.05 <= time.monotonic() - started < 2.0


def test_an_unknown_state_is_reported_not_guessed(flags):
    _node_writes(flags.path, 0, state=9, loaded=0, failed=0, duration_ns=0)
    with pytest.raises(ValueError, match="unknown load state 9"):
        _ = flags.slot(0).state


def test_to_proto_names_the_file_and_offset(flags):
    flag = flags.slot(3).to_proto()
    assert (flag.path, flag.offset_bytes) == (str(flags.path), 96)


def test_slot_index_is_checked(flags):
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        flags.slot(4)


def test_closing_removes_the_file():
    with LoadFlagFile("pegaflow-test-flags", slots=1) as f:
        assert str(f.path) == "/dev/shm/pegaflow-test-flags"
    assert not f.path.exists()
    with pytest.raises(ValueError, match="closed"):
        _ = f.slot(0).state


class _FakeSession:
    """What LoadFlagSlot.wait reads of a pegaflow.session.Session: alive, end_reason, the last event's time."""

    def __init__(self):
        self.context_id = "ctx"
        self.alive = True
        self.end_reason = None
        self.last_event_monotonic_s = time.monotonic()


def test_wait_fails_fast_when_the_session_ends_while_the_load_is_pending(flags):
    slot, session = flags.slot(0), _FakeSession()

    def node_dies():
        time.sleep(0.2)
        session.alive, session.end_reason = False, "stream failed: UNAVAILABLE: Socket closed"

    threading.Thread(target=node_dies, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(SessionEndedError) as raised:
        slot.wait(30.0, session=session)
    assert time.monotonic() - started < 5.0, "waited out the timeout instead of failing fast"
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    assert "Socket closed" in raised.value.details and "not loaded" in raised.value.details


def test_wait_fails_fast_when_the_node_goes_silent(flags):
    session = _FakeSession()
    session.last_event_monotonic_s = time.monotonic() - 60
    with pytest.raises(SessionEndedError, match="nothing heard from the node"):
        flags.slot(0).wait(30.0, session=session, silent_after_s=10.0)


def test_a_final_state_wins_over_an_ended_session(flags):
    slot, session = flags.slot(1), _FakeSession()
    _node_writes(flags.path, slot.offset_bytes, state=1, loaded=2, failed=0, duration_ns=5)
    session.alive = False
    assert slot.wait(1.0, session=session) is LoadState.DONE


_WRITER = """
import mmap, os, struct, sys, time, ctypes
sys.path.insert(0, sys.argv[3])
from pegaflow import _futex
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 0, flags=mmap.MAP_SHARED)
offset = int(sys.argv[2])
time.sleep(0.3)
m[offset + 8 : offset + 32] = struct.pack("<qqq", 4, 0, 77)
m[offset : offset + 8] = struct.pack("<q", 1)
print(time.monotonic(), _futex.wake_all(_futex.buffer_address(m) + offset), flush=True)
"""


@pytest.mark.skipif(not _futex.AVAILABLE, reason="futex is Linux-only")
@pytest.mark.timeout(30)
def test_a_futex_wait_wakes_when_another_process_writes_the_state_and_wakes_it(flags):
    import subprocess
    import sys
    from pathlib import Path

    slot = flags.slot(2)
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(flags.path), str(slot.offset_bytes), str(Path(_futex.__file__).parents[1])],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert slot.wait(20.0, strategy="futex") is LoadState.DONE
        woke = time.monotonic()
        written_at, woken = writer.communicate(timeout=20)[0].split()
    finally:
        writer.kill()
    assert int(woken) >= 1, "the waiter was not asleep in futex when the state was written"
    assert woke - float(written_at) < 0.5
    assert slot.snapshot() == LoadFlagSnapshot(LoadState.DONE, 4, 0, 77)


@pytest.mark.parametrize("strategy", ["auto", "spin", "sleep"])
def test_every_wait_strategy_sees_a_plain_write_and_times_out_when_none_comes(flags, strategy):
    slot = flags.slot(1)
    started = time.monotonic()
    assert slot.wait(0.05, strategy=strategy) is LoadState.PENDING
    assert 0.05 <= time.monotonic() - started < 2.0
    writer = threading.Timer(0.05, _node_writes, args=(flags.path, slot.offset_bytes, 2, 1, 1, 9))
    writer.start()
    try:
        assert slot.wait(5.0, strategy=strategy) is LoadState.FAILED
    finally:
        writer.cancel()
    with pytest.raises(ValueError, match="strategy"):
        slot.wait(1.0, strategy="busy")
