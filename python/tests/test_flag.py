"""LoadFlagSlot reads what the node writes: counters first, state last, int64 little-endian."""

import struct
import threading
import time

import grpc
import pytest

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
