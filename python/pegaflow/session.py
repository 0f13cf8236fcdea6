"""The Session stream: a worker's liveness towards its node, consumed by one background daemon thread.

The node unregisters the context when this stream ends, so a worker keeps one Session open for the whole life
of its context. The thread only records what it sees (attach, heartbeats, why it ended); it never blocks the
caller. ``on_end`` (if given) runs on that thread once, whatever the reason.

A node keeps a context while at least one of its sessions is open (a second session does not end the first), and
drops a context that never opened one after ``pegaflow.engine.sessionless-idle-ms`` (120 s) without a Save or Load.
``wait_for_load`` waits for a load flag but gives up as soon as the session ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import grpc

from pegaflow._proto import engine_pb2
from pegaflow.errors import EngineError

_log = logging.getLogger(__name__)

CLOSED_BY_CLIENT = "closed by client"
ENDED_BY_NODE = "stream ended by the node"


class Session:
    """Owned by the thread that opened it; ``close`` and the properties may be called from any thread."""

    def __init__(
        self, stream_call, context_id: str, on_end: Callable[[Session], None] | None = None
    ):  # use EngineClient.open_session
        self.context_id = context_id
        self._call = stream_call
        self._on_end = on_end
        self._closing = False
        self._attached = threading.Event()
        self._settled = threading.Event()  # attached, or ended before attaching
        self._ended = threading.Event()
        self.end_reason: str | None = None  # why the stream ended; None while it runs
        self.error: EngineError | None = None  # the stream's failure, if it ended on an RPC error
        self.last_heartbeat_ms: int | None = None  # node uptime carried by the last heartbeat
        self.last_event_monotonic_s: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"pegaflow-session-{context_id}", daemon=True)

    def _start(self, attach_timeout_s: float) -> None:
        """Starts the thread and waits for the ``attached`` event; raises EngineError if it does not come."""
        self._thread.start()
        if not self._settled.wait(attach_timeout_s):
            self.close()
            raise EngineError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"no 'attached' event within {attach_timeout_s} s", "Session"
            )
        if not self._attached.is_set():
            raise self.error or EngineError(grpc.StatusCode.UNAVAILABLE, self.end_reason or "ended", "Session")

    @property
    def alive(self) -> bool:
        """True between the ``attached`` event and the end of the stream."""
        return self._attached.is_set() and not self._ended.is_set()

    def close(self, timeout_s: float = 5.0) -> None:
        """Cancels the stream (the node then unregisters the context) and waits for the thread to finish."""
        self._closing = True
        self._call.cancel()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def wait_for_load(self, slot, timeout_s: float):
        """Waits for a load's flag ``slot`` (a pegaflow.flag.LoadFlagSlot) to leave PENDING; returns its LoadState.

        Fails fast: SessionEndedError once this session ends (or hears nothing from the node for 10 s) while the load
        is pending, since a node that died never writes the flag. PENDING after ``timeout_s`` otherwise.
        """
        return slot.wait(timeout_s, session=self)

    def wait_ended(self, timeout_s: float) -> bool:
        """Waits for the stream to end; True if it has."""
        return self._ended.wait(timeout_s)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        reason, error = ENDED_BY_NODE, None
        try:
            for event in self._call:
                self._on_event(event)
        except grpc.RpcError as e:
            if self._closing:
                reason = CLOSED_BY_CLIENT
            else:
                error = EngineError.from_rpc_error(e, "Session")
                reason = f"stream failed: {error.code.name}: {error.details}"
        except _ProtocolError as e:
            self._call.cancel()
            reason = f"protocol error: {e}"
        except Exception as e:  # noqa: BLE001 - a bug here must still end the session visibly, not kill the thread
            self._call.cancel()
            reason = f"session thread failed: {e!r}"
        self.end_reason, self.error = reason, error
        self._ended.set()
        self._settled.set()
        if self._on_end is not None:
            try:
                self._on_end(self)
            except Exception:  # noqa: BLE001 - a failing callback is logged; the session still ends
                _log.exception("on_end callback of session %s failed", self.context_id)

    def _on_event(self, event: engine_pb2.SessionEvent) -> None:
        kind = event.WhichOneof("event")
        if not self._attached.is_set() and kind != "attached":
            raise _ProtocolError(f"first event was {kind!r}, expected 'attached'")
        if kind == "attached":
            if event.attached != self.context_id:
                raise _ProtocolError(f"attached to context {event.attached!r}, asked for {self.context_id!r}")
            self._attached.set()
            self._settled.set()
        elif kind == "heartbeat_ms":
            self.last_heartbeat_ms = event.heartbeat_ms
        self.last_event_monotonic_s = time.monotonic()


class _ProtocolError(Exception):
    pass
