"""The same-host command channel: Save, Load and Query through request slots in a shared-memory file of the node's.

The node creates the file per ``OpenCommandChannel`` (in /dev/shm, mode 0600) for one context; ``EngineClient``
opens one with each session and uses it for the calls that fit, gRPC for the rest. Layout version 1 (docs/engine-
api.md, "Command channel"; fabric's ChannelLayout.java is the other half), all integers little-endian:

    header (header_bytes, 4096): magic "PGFCHAN1", version, slot_count, slot_bytes, max_blocks, max_hash_bytes,
        max_layers, max_name_bytes, node_state (1 open, 2 closed) @36, doorbell @40, client_state @44,
        node_pid @48, node_heartbeat @56
    slot i at header_bytes + i * slot_bytes: state @0 (0 free, 1 request, 2 taken, 3 done), op @4, seq @8, ...

A call: take a free slot, write the request, set state REQUEST last, bump the doorbell and futex-wake it; the node's
thread takes the slot, calls the engine and, when the call's stage completes, writes the reply, sets state DONE and
futex-wakes the slot's state word, on which this client sleeps. The reply carries the gRPC status code the RPC would
have had, so a failure raises the same EngineError.

A wait never hangs: it ends with the reply, DEADLINE_EXCEEDED at the client's timeout, or UNAVAILABLE as soon as the
session ends or the node's heartbeat word stops moving (a node that died). A request the node never took when it
closed the channel is sent again over gRPC.

Threading: one channel per (endpoint, context) in a process (``lookup``); any thread may call; slots are handed out
under a lock, and the doorbell is bumped under it (this process is its only writer, so no bump is lost). A process
forked from the one that opened a channel does not see it (its calls go over gRPC): two processes must never hand out
the same slots.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import queue
import struct
import threading
import time
import weakref
from array import array
from collections import deque
from collections.abc import Callable

import grpc

from pegaflow import _futex
from pegaflow._proto import engine_pb2
from pegaflow._shmfile import map_file
from pegaflow.errors import EngineError

_log = logging.getLogger(__name__)

VERSION = 1
MAGIC = b"PGFCHAN1"

# header
_H_MAGIC, _H_VERSION, _H_SLOT_COUNT, _H_SLOT_BYTES, _H_MAX_BLOCKS = 0, 8, 12, 16, 20
_H_MAX_HASH_BYTES, _H_MAX_LAYERS, _H_MAX_NAME_BYTES = 24, 28, 32
_H_NODE_STATE, _H_DOORBELL, _H_CLIENT_STATE, _H_NODE_PID, _H_NODE_HEARTBEAT, _H_HEADER_BYTES = 36, 40, 44, 48, 56, 64
NODE_OPEN, NODE_CLOSED = 1, 2

# slot
_S_STATE, _S_OP, _S_SEQ = 0, 4, 8
_S_COUNTS = 16  # block_count, hash_bytes, layer_count, flags: 4 x u32
_S_LEASE = 32
_S_NAME_LEN, _S_FLAG_PATH_LEN, _S_FLAG_OFFSET = 40, 44, 48
_S_STATUS, _S_MESSAGE_LEN, _S_R0, _S_R4, _S_R5, _S_FAILED_COUNT, _S_REPLY_SEQ = 56, 60, 64, 80, 88, 96, 104
_S_NAME = 128
MAX_NAME_BYTES = 512
_FLAG_PATH_BYTES = 4096
_MESSAGE_BYTES = 1024
MAX_HASH_BYTES = 64

FREE, REQUEST, TAKEN, DONE = 0, 1, 2, 3
OP_SAVE, OP_LOAD, OP_QUERY = 1, 2, 3
_OP_NAMES = {OP_SAVE: "Save", OP_LOAD: "Load", OP_QUERY: "Query"}
_FLAG_REPLY_WHEN_DONE = 1

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_COUNTS = struct.Struct("<IIII")
_REPLY = struct.Struct("<IIIIIIQQI")  # status, message_len, r0..r3, r4, r5, failed_count (from _S_STATUS)

# A futex wait sleeps at most this long at a time, so the session, the node's heartbeat and the deadline are looked
# at in between; a node whose heartbeat (advanced every 100 ms while it serves) stands still this long is gone.
_SLICE_S = 5e-3
NODE_SILENT_AFTER_S = 3.0
SESSION_GONE_SILENT_AFTER_S = 0.5


class ChannelClosedError(Exception):
    """The node closed the channel before it took the request: nothing ran; the caller sends it over gRPC."""


class CommandChannel:
    """A mapped channel file. ``session``: the context's pegaflow.session.Session (its end fails waits fast)."""

    def __init__(self, info: engine_pb2.OpenCommandChannelResponse, context_id: str, session=None):
        if info.version != VERSION:
            raise ValueError(f"command channel version {info.version}, this client knows {VERSION}")
        self.path = info.path
        self.context_id = context_id
        self.session = session
        self._context_bytes = context_id.encode()
        self._mmap: mmap.mmap | None = map_file(info.path, info.size_bytes, create=False)
        buf = self._mmap
        if bytes(buf[0:8]) != MAGIC or _U32.unpack_from(buf, _H_VERSION)[0] != VERSION:
            self._mmap.close()
            raise ValueError(f"{info.path}: not a version-{VERSION} command channel")
        self.slot_count = _U32.unpack_from(buf, _H_SLOT_COUNT)[0]
        self.slot_bytes = _U32.unpack_from(buf, _H_SLOT_BYTES)[0]
        self.max_blocks = _U32.unpack_from(buf, _H_MAX_BLOCKS)[0]
        self.max_layers = _U32.unpack_from(buf, _H_MAX_LAYERS)[0]
        self.header_bytes = _U32.unpack_from(buf, _H_HEADER_BYTES)[0]
        self.node_pid = _U64.unpack_from(buf, _H_NODE_PID)[0]
        self._flag_path_at = _S_NAME + MAX_NAME_BYTES
        self._message_at = self._flag_path_at + _FLAG_PATH_BYTES
        self._ids_at = self._message_at + _MESSAGE_BYTES
        self._layers_at = self._ids_at + 4 * self.max_blocks
        self._hashes_at = self._layers_at + 4 * self.max_layers
        self._base = _futex.buffer_address(buf)
        self._lock = threading.Lock()
        self._free = list(range(self.slot_count - 1, -1, -1))
        self._abandoned: set[int] = set()  # timed out while the node still had them: free once DONE
        # Slots of calls dropped without result() or cancel(), from their finalizers: a finalizer may run on any
        # thread at any allocation, even one holding self._lock, so it only appends here (deque.append needs no
        # lock) and the slot becomes abandoned the next time a slot is taken or the channel unmaps.
        self._dropped: deque[int] = deque()
        self._seq = [0] * self.slot_count
        self._in_flight = 0
        self._closing = False
        self._pid = os.getpid()  # a forked child must not share this process's slots: lookup() hides it there

    # ---- what fits ----

    def fits(self, blocks: int, hash_bytes: int, layers: int = 0) -> bool:
        return (
            self._mmap is not None
            and not self._closing
            and blocks <= self.max_blocks
            and layers <= self.max_layers
            and (blocks == 0 or 0 < hash_bytes <= MAX_HASH_BYTES)
        )

    @property
    def open(self) -> bool:
        with self._lock:  # close() may unmap meanwhile
            return self._mmap is not None and not self._closing and self._node_state() == NODE_OPEN

    # ---- calls ----

    def submit_save(self, ids, hashes: bytes, hash_bytes: int, layers, timeout_s: float) -> ChannelCall | None:
        return self._submit(OP_SAVE, self._context_bytes, ids, hashes, hash_bytes, layers, 0, 0, b"", 0, timeout_s)

    def submit_load(
        self, ids, hashes: bytes, hash_bytes: int, lease_id: int, flag, reply_when_done: bool, timeout_s: float
    ) -> ChannelCall | None:
        path, offset = (flag.path.encode(), flag.offset_bytes) if flag is not None else (b"", 0)
        flags = _FLAG_REPLY_WHEN_DONE if reply_when_done else 0
        return self._submit(
            OP_LOAD, self._context_bytes, ids, hashes, hash_bytes, (), lease_id, flags, path, offset, timeout_s
        )

    def submit_query(self, namespace: str, hashes: bytes, hash_bytes: int, count: int, ttl_ms: int, timeout_s: float):
        name = namespace.encode()
        if len(name) > MAX_NAME_BYTES:
            return None
        return self._submit(OP_QUERY, name, count, hashes, hash_bytes, (), ttl_ms, 0, b"", 0, timeout_s)

    def _submit(self, op, name, ids, hashes, hash_bytes, layers, lease, flags, flag_path, flag_offset, timeout_s):
        """Posts a request; None when no slot is free or the channel is closing (the caller uses gRPC)."""
        n = ids if isinstance(ids, int) else len(ids)
        if len(flag_path) > _FLAG_PATH_BYTES:
            return None
        with self._lock:
            if self._mmap is None or self._closing or self._node_state() != NODE_OPEN:
                return None
            slot = self._take_slot()
            if slot is None:
                return None
            self._in_flight += 1
            self._seq[slot] += 1
            seq = self._seq[slot]
        buf = self._mmap
        at = self.header_bytes + slot * self.slot_bytes
        if n:
            if not isinstance(ids, int):
                id_bytes = (ids if isinstance(ids, array) else array("I", ids)).tobytes()
                buf[at + self._ids_at : at + self._ids_at + len(id_bytes)] = id_bytes
            buf[at + self._hashes_at : at + self._hashes_at + len(hashes)] = hashes
        if layers:
            layer_bytes = array("I", layers).tobytes()
            buf[at + self._layers_at : at + self._layers_at + len(layer_bytes)] = layer_bytes
        buf[at + _S_NAME : at + _S_NAME + len(name)] = name
        if flag_path:
            buf[at + self._flag_path_at : at + self._flag_path_at + len(flag_path)] = flag_path
        _U32.pack_into(buf, at + _S_OP, op)
        _U64.pack_into(buf, at + _S_SEQ, seq)
        _COUNTS.pack_into(buf, at + _S_COUNTS, n, hash_bytes if n else 0, len(layers), flags)
        _U64.pack_into(buf, at + _S_LEASE, lease)
        struct.pack_into("<IIQ", buf, at + _S_NAME_LEN, len(name), len(flag_path), flag_offset)
        # State last: the node reads the request only after it sees REQUEST (x86-64 keeps stores in order).
        _U32.pack_into(buf, at + _S_STATE, REQUEST)
        with self._lock:
            bell = _U32.unpack_from(buf, _H_DOORBELL)[0]
            _U32.pack_into(buf, _H_DOORBELL, (bell + 1) & 0xFFFFFFFF)
        _futex.wake_all(self._base + _H_DOORBELL)
        return ChannelCall(self, slot, seq, op, timeout_s)

    def _take_slot(self) -> int | None:
        self._adopt_dropped()
        if not self._free and self._abandoned:
            for slot in list(self._abandoned):
                if self._state(slot) == DONE:
                    self._abandoned.discard(slot)
                    self._in_flight -= 1
                    self._set_state(slot, FREE)
                    self._free.append(slot)
        return self._free.pop() if self._free else None

    def _adopt_dropped(self) -> None:
        """Under self._lock: the slots of dropped calls join the abandoned ones (freed once the node is DONE)."""
        while self._dropped:
            self._abandoned.add(self._dropped.popleft())

    # ---- replies (ChannelCall) ----

    def _state(self, slot: int) -> int:
        return _U32.unpack_from(self._mmap, self.header_bytes + slot * self.slot_bytes + _S_STATE)[0]

    def _set_state(self, slot: int, state: int) -> None:
        _U32.pack_into(self._mmap, self.header_bytes + slot * self.slot_bytes + _S_STATE, state)

    def _node_state(self) -> int:
        return _U32.unpack_from(self._mmap, _H_NODE_STATE)[0]

    def _heartbeat(self) -> int:
        return _U64.unpack_from(self._mmap, _H_NODE_HEARTBEAT)[0]

    def _wait(self, call: ChannelCall, timeout_s: float) -> bool:
        """True once the slot is DONE; False at the timeout. Raises ChannelClosedError / EngineError (node gone)."""
        slot = call.slot
        deadline = time.monotonic() + timeout_s
        beat, beat_seen_s = self._heartbeat(), time.monotonic()
        address = self._base + self.header_bytes + slot * self.slot_bytes + _S_STATE
        while True:
            # The node's state first, then the slot's: the node marks a slot TAKEN before it marks the channel
            # CLOSED, so CLOSED with the slot still REQUEST means the node never took it (x86 keeps loads in order)
            # and only then may the call go over gRPC instead without running twice.
            node_state = self._node_state()
            state = self._state(slot)
            if state == DONE:
                return True
            if call._cancelled:
                raise EngineError(grpc.StatusCode.CANCELLED, "cancelled by the client", call.method)
            now = time.monotonic()
            if state == REQUEST and node_state == NODE_CLOSED:
                raise ChannelClosedError(self.path)
            current = self._heartbeat()
            if current != beat:
                beat, beat_seen_s = current, now
            elif node_state == NODE_OPEN and now - beat_seen_s > self._silent_limit_s():
                raise EngineError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the node stopped serving its command channel {self.path} (no heartbeat for "
                    f"{now - beat_seen_s:.1f} s; session {'alive' if self._session_alive() else 'ended'}): "
                    "it died or hangs",
                    call.method,
                )
            remaining = deadline - now
            if remaining <= 0:
                return False
            if not _futex.wait(address, state, min(_SLICE_S, remaining)):
                time.sleep(min(50e-6, remaining))

    def _session_alive(self) -> bool:
        return self.session is None or self.session.alive

    def _silent_limit_s(self) -> float:
        # A live node advances the heartbeat every 100 ms while the channel is open; with the session gone as well,
        # a short silence is enough to call the node dead (the session alone may just have been closed by us).
        return NODE_SILENT_AFTER_S if self._session_alive() else SESSION_GONE_SILENT_AFTER_S

    def _reply(self, call: ChannelCall):
        """Reads the reply of a DONE slot, frees the slot, returns the response message or raises EngineError."""
        buf = self._mmap
        at = self.header_bytes + call.slot * self.slot_bytes
        status, message_len, r0, r1, r2, r3, r4, r5, failed_count = _REPLY.unpack_from(buf, at + _S_STATUS)
        reply_seq = _U64.unpack_from(buf, at + _S_REPLY_SEQ)[0]
        if status != 0:
            message = bytes(buf[at + self._message_at : at + self._message_at + message_len]).decode(errors="replace")
            failed_ids = ()
        else:
            message = ""
            failed_ids = array("I", bytes(buf[at + self._ids_at : at + self._ids_at + 4 * failed_count]))
        self._release(call.slot)
        if reply_seq != call.seq:
            raise EngineError(
                grpc.StatusCode.INTERNAL, f"slot {call.slot}: reply for seq {reply_seq}, sent {call.seq}", call.method
            )
        if status != 0:
            raise EngineError(_status_code(status), message, call.method)
        if call.op == OP_SAVE:
            return engine_pb2.SaveResponse(blocks_stored=r0, blocks_skipped=r1, blocks_sealed=r2)
        if call.op == OP_LOAD:
            reply = engine_pb2.LoadResponse(
                blocks_scheduled=r0, done_state=r1, blocks_loaded=r2, blocks_failed=r3, node_duration_ns=r4
            )
            reply.failed_block_ids.extend(failed_ids)
            return reply
        return engine_pb2.QueryResponse(hit_blocks=r0, local_hit_blocks=r1, lease_id=r4, lease_expires_in_ms=r5)

    def _release(self, slot: int, abandoned: bool = False) -> None:
        with self._lock:
            if abandoned:
                self._abandoned.add(slot)
            else:
                self._set_state(slot, FREE)
                self._free.append(slot)
                self._in_flight -= 1
            self._maybe_unmap()

    # ---- lifetime ----

    def close(self) -> None:
        """Tells the node the channel is done (it removes the file) and unmaps once no call is in flight."""
        if self._pid != os.getpid():  # a forked child's copy: the channel is its parent's to close
            return
        with self._lock:
            if self._closing or self._mmap is None:
                return
            self._closing = True
            _U32.pack_into(self._mmap, _H_CLIENT_STATE, 1)
            bell = _U32.unpack_from(self._mmap, _H_DOORBELL)[0]
            _U32.pack_into(self._mmap, _H_DOORBELL, (bell + 1) & 0xFFFFFFFF)
            _futex.wake_all(self._base + _H_DOORBELL)
            self._maybe_unmap()

    def _maybe_unmap(self) -> None:
        self._adopt_dropped()
        if self._closing and self._in_flight - len(self._abandoned) <= 0 and self._mmap is not None:
            self._mmap.close()
            self._mmap = None


class ChannelCall:
    """A call posted on a command channel: the PendingCall API (``result``, ``done``, ``add_done_callback``)."""

    path = "shm"

    def __init__(self, channel: CommandChannel, slot: int, seq: int, op: int, timeout_s: float = 5.0):
        self._channel = channel
        self._deadline = time.monotonic() + timeout_s
        self.slot = slot
        self.seq = seq
        self.op = op
        self.method = _OP_NAMES[op]
        self._lock = threading.Lock()
        self._outcome = None  # (response, error) once read
        self._fallback: Callable[[], object] | None = None  # set by EngineClient: the same call over gRPC
        self._cancelled = False  # set by cancel(): the waiter gives the slot up (abandoned) and ends CANCELLED
        # Dropped without result() or cancel(): its slot comes back once the node has answered (see _dropped).
        self._on_drop = weakref.finalize(self, channel._dropped.append, slot)

    def done(self) -> bool:
        if self._outcome is not None:  # never waits for result()'s lock, which a waiter holds for the whole wait
            return True
        channel = self._channel
        with channel._lock:
            return channel._mmap is not None and channel._state(self.slot) == DONE

    def result(self, timeout_s: float | None = None):
        """The response, or EngineError: the node's status, DEADLINE_EXCEEDED when ``timeout_s`` passes first (the
        call then still runs until the client's timeout), UNAVAILABLE when the node is gone."""
        with self._lock:
            if self._outcome is None:
                outcome = self._finish(timeout_s)
                if outcome is None:
                    raise EngineError(
                        grpc.StatusCode.DEADLINE_EXCEEDED, f"no reply within {timeout_s} s (still running)", self.method
                    )
                self._outcome = outcome
                self._on_drop.detach()  # the slot is back (or abandoned) already
            response, error = self._outcome
        if error is not None:
            raise error
        return response

    def _finish(self, timeout_s: float | None):
        """(response, error), or None when only ``timeout_s`` (not the call's own deadline) passed."""
        channel = self._channel
        left_s = self._deadline - time.monotonic()
        wait_s = left_s if timeout_s is None else min(timeout_s, left_s)
        try:
            if not channel._wait(self, max(0.0, wait_s)):
                if timeout_s is not None and timeout_s < left_s:
                    return None
                channel._release(self.slot, abandoned=True)
                return None, EngineError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"no reply within the client's timeout over the command channel (slot {self.slot})",
                    self.method,
                )
        except ChannelClosedError:
            channel._release(self.slot)
            if self._fallback is None:
                return None, EngineError(grpc.StatusCode.UNAVAILABLE, "the command channel closed", self.method)
            self.path = "grpc"
            try:
                return self._fallback(), None
            except EngineError as e:
                return None, e
        except EngineError as e:  # the wait ended without a reply (node gone, cancelled): the node may still write
            channel._release(self.slot, abandoned=True)
            return None, e
        try:
            return channel._reply(self), None
        except EngineError as e:  # the node's own error reply: _reply has freed the slot already
            return None, e

    def add_done_callback(self, fn: Callable[[ChannelCall], None]) -> None:
        """Calls ``fn(self)`` once the reply (or failure) is in, on one of a few reused helper threads (at most
        ``_CALLBACK_THREADS`` wait at once; later callbacks queue behind them)."""

        def run():
            with contextlib.suppress(EngineError):
                self.result()
            fn(self)

        _callback_pool().submit(run)

    def cancel(self) -> bool:
        """Stops waiting for the reply: the call ends CANCELLED at once (a waiter wakes within a wait slice) and its
        slot is reused only after the node has answered it. The node may still carry the call out."""
        if self._outcome is not None or self._cancelled:
            return False
        self._cancelled = True
        if self._lock.acquire(blocking=False):  # no waiter: end it here, else the slot would never come back
            try:
                if self._outcome is None:
                    self._channel._release(self.slot, abandoned=True)
                    cancelled = EngineError(grpc.StatusCode.CANCELLED, "cancelled by the client", self.method)
                    self._outcome = (None, cancelled)
                    self._on_drop.detach()
            finally:
                self._lock.release()
        return True


_CALLBACK_THREADS = 8


class _CallbackThreads:
    """At most ``limit`` daemon threads that run callbacks, started as needed and reused; a callback that finds every
    thread busy queues. Daemon threads: a callback still waiting for a node never holds up the process's exit."""

    def __init__(self, limit: int):
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._limit = limit
        self._threads = 0
        self._idle = 0

    def submit(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._queue.put(fn)
            if self._idle == 0 and self._threads < self._limit:
                self._threads += 1
                threading.Thread(target=self._work, name="pegaflow-channel-callback", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            fn = self._queue.get()
            with self._lock:
                self._idle -= 1
            try:
                fn()
            except Exception:  # noqa: BLE001 - a callback's failure is its own; the thread serves the next one
                _log.exception("a command-channel call's done callback failed")


_callbacks: tuple[int, _CallbackThreads] | None = None
_callbacks_lock = threading.Lock()


def _callback_pool() -> _CallbackThreads:
    """The process's callback threads (made again in a forked child, whose copy has no threads)."""
    global _callbacks
    with _callbacks_lock:
        if _callbacks is None or _callbacks[0] != os.getpid():
            _callbacks = (os.getpid(), _CallbackThreads(_CALLBACK_THREADS))
        return _callbacks[1]


def _status_code(number: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code
    return grpc.StatusCode.UNKNOWN


# ---- one channel per (endpoint, context) in this process ----

_registry: dict[tuple[str, str], CommandChannel] = {}
_registry_lock = threading.Lock()


def register(endpoint: str, channel: CommandChannel) -> None:
    with _registry_lock:
        old = _registry.get((endpoint, channel.context_id))
        _registry[(endpoint, channel.context_id)] = channel
    if old is not None and old is not channel:
        old.close()


def unregister(endpoint: str, channel: CommandChannel) -> None:
    with _registry_lock:
        if _registry.get((endpoint, channel.context_id)) is channel:
            del _registry[(endpoint, channel.context_id)]
    channel.close()


def lookup(endpoint: str, context_id: str) -> CommandChannel | None:
    channel = _registry.get((endpoint, context_id))
    return channel if channel is not None and channel._pid == os.getpid() else None


def any_for(endpoint: str) -> CommandChannel | None:
    """Some open channel to ``endpoint`` (a Query names a namespace, not a context: any of the node's will do)."""
    for (ep, _), channel in list(_registry.items()):
        if ep == endpoint and channel._pid == os.getpid() and channel.open:
            return channel
    return None
