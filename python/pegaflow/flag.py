"""Load-completion flags: 32-byte slots in a shared-memory file that the node writes when a Load ends.

Slot layout (engine.proto, LoadFlag), all int64 little-endian:
    [0,8) state: 0 pending, 1 done, 2 failed   [8,16) blocks loaded   [16,24) blocks failed   [24,32) node ns
The node writes the counters first and the state last, so a reader reads the state first and the counters only
after seeing a final state.

Threading: one slot belongs to one load in flight; reset it before issuing the Load that reports into it.

A node that dies mid-load never writes the flag: ``wait(timeout_s, session=...)`` (or ``Session.wait_for_load``)
watches the context's Session stream too and raises SessionEndedError as soon as it ends (or stays silent for
``silent_after_s``), instead of waiting out the timeout.

Waiting: the node wakes futex waiters on the state word after writing it, so ``wait`` sleeps in futex(FUTEX_WAIT)
and returns within a thread wake-up of the write (Linux); elsewhere it spins briefly, then polls with growing pauses.
"""

from __future__ import annotations

import enum
import mmap
import os
import struct
import time
from dataclasses import dataclass

from pegaflow import _futex
from pegaflow._proto import engine_pb2
from pegaflow._shmfile import map_file, resolve_shm_path
from pegaflow.errors import SessionEndedError

SLOT_BYTES = 32
_INT64 = struct.Struct("<q")
_COUNTERS = struct.Struct("<qqq")  # loaded, failed, duration_ns at [8,32)

# Polling (where futex is not available): spin this long first (a load of a few blocks ends in microseconds), then
# pauses that start fine-grained and back off to keep a CPU free.
_SPIN_S = 200e-6
_FIRST_POLL_S = 20e-6
_MAX_POLL_S = 1e-3
# A futex wait sleeps at most this long at a time (growing from the first), so the session and the deadline are
# looked at in between, and a writer that wakes nobody (a file write in a test) is seen within a few ms.
_FUTEX_FIRST_SLICE_S = 1e-3
_FUTEX_MAX_SLICE_S = 10e-3
WAIT_STRATEGIES = ("auto", "futex", "spin", "sleep")
# The node sends a heartbeat every 2 s: a session silent for this long is as good as ended.
SESSION_SILENT_AFTER_S = 10.0


class LoadState(enum.IntEnum):
    PENDING = 0
    DONE = 1
    FAILED = 2


@dataclass(frozen=True)
class LoadFlagSnapshot:
    """One consistent reading of a slot: the counters are meaningful only once state is not PENDING."""

    state: LoadState
    loaded_blocks: int
    failed_blocks: int
    duration_ns: int


class LoadFlagSlot:
    """One 32-byte slot of a LoadFlagFile."""

    def __init__(self, file: LoadFlagFile, index: int):
        self._file = file
        self.index = index
        self.path = file.path
        self.offset_bytes = index * SLOT_BYTES

    def reset(self) -> None:
        """Marks the slot pending with zero counters; do this before issuing the Load that reports here."""
        self._file._buffer()[self.offset_bytes : self.offset_bytes + SLOT_BYTES] = bytes(SLOT_BYTES)

    @property
    def state(self) -> LoadState:
        raw = _INT64.unpack_from(self._file._buffer(), self.offset_bytes)[0]
        try:
            return LoadState(raw)
        except ValueError:
            raise ValueError(f"{self.path} slot {self.index}: unknown load state {raw}") from None

    @property
    def loaded(self) -> int:
        return self.snapshot().loaded_blocks

    @property
    def failed(self) -> int:
        return self.snapshot().failed_blocks

    @property
    def duration_ns(self) -> int:
        return self.snapshot().duration_ns

    def snapshot(self) -> LoadFlagSnapshot:
        """Reads the state first, then the counters (the mirror of the node's write order)."""
        state = self.state
        # CPython gives no fence here; x86 does not reorder a load with a later load, which is what this needs.
        loaded, failed, duration_ns = _COUNTERS.unpack_from(self._file._buffer(), self.offset_bytes + 8)
        return LoadFlagSnapshot(state, loaded, failed, duration_ns)

    def wait(
        self,
        timeout_s: float,
        session=None,
        silent_after_s: float = SESSION_SILENT_AFTER_S,
        strategy: str = "auto",
    ) -> LoadState:
        """Waits until the state is final or ``timeout_s`` passes; returns the state (PENDING on timeout).

        With ``session`` (the context's pegaflow.session.Session) it fails fast: SessionEndedError as soon as the
        session ends or has heard nothing from the node for ``silent_after_s`` while the load is pending (a node that
        died mid-load never writes the flag). A final state already written wins over an ended session.

        ``strategy``: "auto" (futex where available, else "spin"), "futex" (sleep in the kernel until the node's
        wake-up), "spin" (spin 200 us, then poll with growing pauses), "sleep" (poll with growing pauses from 20 us to
        1 ms: the older behaviour, kept for comparison).
        """
        if strategy not in WAIT_STRATEGIES:
            raise ValueError(f"strategy: {strategy!r} is not one of {WAIT_STRATEGIES}")
        use_futex = strategy in ("auto", "futex") and _futex.AVAILABLE
        if strategy == "futex" and not use_futex:
            raise ValueError("strategy 'futex': futex is not available on this platform")
        now = time.monotonic()
        deadline = now + timeout_s
        spin_until = now + (_SPIN_S if strategy in ("auto", "spin") and not use_futex else 0.0)
        pause_s = _FIRST_POLL_S
        slice_s = _FUTEX_FIRST_SLICE_S
        while True:
            state = self.state
            if state is not LoadState.PENDING:
                return state
            if session is not None:
                _raise_if_gone(session, silent_after_s)
            now = time.monotonic()
            remaining_s = deadline - now
            if remaining_s <= 0:
                return LoadState.PENDING
            if use_futex:
                address = self._file._address() + self.offset_bytes
                if _futex.wait(address, LoadState.PENDING, min(slice_s, remaining_s)):
                    slice_s = min(slice_s * 2, _FUTEX_MAX_SLICE_S)
                    continue
                use_futex = False  # unusable after all: poll
            if now < spin_until:
                continue
            time.sleep(min(pause_s, remaining_s))
            pause_s = min(pause_s * 2, _MAX_POLL_S)

    def to_proto(self) -> engine_pb2.LoadFlag:
        return engine_pb2.LoadFlag(path=str(self.path), offset_bytes=self.offset_bytes)

    def __repr__(self) -> str:
        return f"LoadFlagSlot({str(self.path)!r}, index={self.index})"


def _raise_if_gone(session, silent_after_s: float) -> None:
    if not session.alive:
        raise SessionEndedError(session.context_id, session.end_reason or "not attached")
    last = session.last_event_monotonic_s
    if last is not None and time.monotonic() - last > silent_after_s:
        raise SessionEndedError(session.context_id, f"nothing heard from the node for {silent_after_s:.0f} s")


class LoadFlagFile:
    """A shared-memory file of ``slots`` load flags (32 bytes each), created zeroed (every slot pending)."""

    def __init__(self, path: str | os.PathLike | None = None, slots: int = 64):
        if slots <= 0:
            raise ValueError(f"slots must be > 0, got {slots}")
        self.path = resolve_shm_path(path)
        self.slots = slots
        self._mmap: mmap.mmap | None = map_file(self.path, slots * SLOT_BYTES, create=True)
        self._base_address: int | None = None

    def slot(self, index: int) -> LoadFlagSlot:
        if not 0 <= index < self.slots:
            raise ValueError(f"slot index must be in [0, {self.slots}), got {index}")
        return LoadFlagSlot(self, index)

    def _buffer(self) -> mmap.mmap:
        if self._mmap is None:
            raise ValueError(f"LoadFlagFile {self.path} is closed")
        return self._mmap

    def _address(self) -> int:
        """The mapping's address, for futex waits (the same pages the node maps)."""
        buffer = self._buffer()
        if self._base_address is None:
            self._base_address = _futex.buffer_address(buffer)
        return self._base_address

    def close(self) -> None:
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None
            self._base_address = None

    def unlink(self) -> None:
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> LoadFlagFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        self.unlink()
