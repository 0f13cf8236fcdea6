"""A worker's registered context on its node, kept alive across node restarts.

``NodeLink.start()`` registers the worker's layers (RegisterContext) and opens the Session stream. When the stream
ends while the connector still runs (node stopped, crashed or restarted, connection lost, or no heartbeat for
``session_timeout``), the link's keeper thread:

1. probes the node (Fabric.Health, short deadline) to learn whether the old node process is gone (nothing listening,
   or a node with a later start time answers) — then nothing can still be copying into this worker's memory, and the
   loads that were in flight are failed at once (``on_lost(generation, node_gone=True)``); otherwise they keep
   waiting for their flags up to the load timeout;
2. re-registers the same layers and reopens the Session, retrying every ``retry_interval`` until it succeeds.

While no context is registered, ``current()`` says so and the worker skips saves and fails loads instead of waiting.
Threads: the keeper (daemon) and the Session's reader; ``current()`` is safe from any thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import grpc

from pegaflow.client import EngineClient, FabricClient
from pegaflow.errors import EngineError

_log = logging.getLogger(__name__)

# Errors that mean "the node is not there right now" (retry), as opposed to "the node refuses this" (fail closed).
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)

_HEALTH_TIMEOUT_S = 0.5
_RESTART_TOLERANCE_S = 1.0


def make_channel(endpoint: str) -> grpc.Channel:
    """A channel that notices a restarted node within a second (gRPC's default reconnect backoff grows to 120 s)."""
    return grpc.insecure_channel(
        endpoint,
        options=[
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
            ("grpc.enable_retries", 0),
        ],
    )


class NodeLink:
    def __init__(
        self,
        endpoint: str,
        register: Callable[[EngineClient], object],
        *,
        rpc_timeout_s: float,
        retry_interval_s: float,
        session_timeout_s: float,
        on_lost: Callable[[int, bool], None],
        on_reconnect: Callable[[], None] | None = None,
        name: str = "worker",
    ):
        self.endpoint = endpoint
        self.channel = make_channel(endpoint)
        self.client = EngineClient(endpoint, timeout_s=rpc_timeout_s, channel=self.channel)
        self._fabric = FabricClient(endpoint, timeout_s=_HEALTH_TIMEOUT_S, channel=self.channel)
        self._register = register
        self._retry_interval_s = retry_interval_s
        self._session_timeout_s = session_timeout_s
        self._on_lost = on_lost
        self._on_reconnect = on_reconnect
        self._name = name
        self._lock = threading.Condition()
        self._context_id: str | None = None
        self._generation = 0
        self._session = None
        self._node_started_s: float | None = None  # monotonic estimate of the node's start
        self._lost_generation: int | None = None  # set by the session thread, handled by the keeper
        self._closing = False
        self._keeper: threading.Thread | None = None
        self.last_error: str | None = None

    # ---- state ----

    def current(self) -> tuple[str | None, int]:
        """(context id or None while not registered, generation of that registration)."""
        with self._lock:
            return self._context_id, self._generation

    @property
    def connected(self) -> bool:
        return self.current()[0] is not None

    def wait_connected(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._context_id is None and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return self._context_id is not None

    # ---- lifecycle ----

    def start(self) -> None:
        """Registers now; a node that is not reachable is retried in the background, a node that refuses the
        registration (bad layout, wrong namespace geometry, CUDA IPC on a host-only node...) raises EngineError."""
        try:
            self._connect()
        except EngineError as e:
            if e.code not in TRANSIENT_CODES:
                self.close()
                raise
            self.last_error = str(e)
            _log.warning("%s: node %s not reachable (%s); registering in the background", self._name, self.endpoint, e)
            with self._lock:
                self._lost_generation = self._generation  # nothing in flight yet: the keeper just connects
        self._keeper = threading.Thread(target=self._keep, name=f"pegaflow-link-{self._name}", daemon=True)
        self._keeper.start()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            session, self._session = self._session, None
            self._context_id = None
            self._lock.notify_all()
        if session is not None:
            session.close()  # the node unregisters the context when the stream ends
        if self._keeper is not None and self._keeper is not threading.current_thread():
            self._keeper.join(5.0)
        self.channel.close()

    # ---- internals ----

    def _connect(self) -> None:
        reply = self._register(self.client)
        context_id = reply.context_id
        generation = self._generation + 1
        session = self.client.open_session(context_id, on_end=lambda s, g=generation: self._session_ended(g, s))
        started = self._node_start_estimate()
        with self._lock:
            if self._closing:
                session.close()
                return
            self._context_id, self._generation, self._session = context_id, generation, session
            if started is not None:
                self._node_started_s = started
            self._lost_generation = None
            self._lock.notify_all()
        if not session.alive:  # ended between attach and here: the callback may have seen an old generation
            self._session_ended(generation, session)
        _log.info("%s: context %s registered on %s (generation %d)", self._name, context_id, self.endpoint, generation)

    def _node_start_estimate(self) -> float | None:
        try:
            uptime_ms = self._fabric.health().uptime_ms
        except EngineError:
            return None
        return time.monotonic() - uptime_ms / 1e3

    def _session_ended(self, generation: int, session) -> None:
        with self._lock:
            if self._closing or generation != self._generation or self._context_id is None:
                return
            self._context_id, self._session = None, None
            self._lost_generation = generation
            self._lock.notify_all()
        _log.warning("%s: session with %s ended (%s); reconnecting", self._name, self.endpoint, session.end_reason)

    def _keep(self) -> None:
        while True:
            with self._lock:
                while self._lost_generation is None and not self._closing:
                    self._lock.wait(min(1.0, self._session_timeout_s / 2))
                    if self._lost_generation is None and not self._closing:
                        self._check_heartbeat_locked()
                        if self._node_started_s is None and self._context_id is not None:
                            break  # the start-time probe failed at connect: retry it (outside the lock)
                if self._closing:
                    return
                lost = self._lost_generation
            if lost is None:
                self._retry_start_estimate()
                continue
            if lost > 0:
                gone = self._node_gone()
                try:
                    self._on_lost(lost, gone)
                except Exception:  # noqa: BLE001 - a bug in the callback must not stop reconnecting
                    _log.exception("%s: on_lost callback failed", self._name)
            self._reconnect(counts_as_reconnect=lost > 0)

    def _retry_start_estimate(self) -> None:
        """Without the node's start time a restarted node cannot be told from the old one (_node_gone)."""
        started = self._node_start_estimate()
        with self._lock:
            if started is not None and self._node_started_s is None and self._context_id is not None:
                self._node_started_s = started

    def _check_heartbeat_locked(self) -> None:
        session = self._session
        if session is None or session.last_event_monotonic_s is None:
            return
        silent_s = time.monotonic() - session.last_event_monotonic_s
        if silent_s > self._session_timeout_s:
            _log.warning("%s: no heartbeat from %s for %.1f s; reconnecting", self._name, self.endpoint, silent_s)
            self._context_id, self._session = None, None
            self._lost_generation = self._generation
            threading.Thread(target=session.close, daemon=True).start()  # its on_end sees a stale generation

    def _node_gone(self) -> bool:
        """True if the node process that held the lost context cannot still be copying (not running any more)."""
        try:
            uptime_ms = self._fabric.health().uptime_ms
        except EngineError as e:
            return e.code == grpc.StatusCode.UNAVAILABLE  # nothing listening: the process is gone
        started = time.monotonic() - uptime_ms / 1e3
        return self._node_started_s is not None and started > self._node_started_s + _RESTART_TOLERANCE_S

    def _reconnect(self, counts_as_reconnect: bool) -> None:
        attempt = 0
        while True:
            with self._lock:
                if self._closing:
                    return
            try:
                self._connect()
            except EngineError as e:
                attempt += 1
                self.last_error = str(e)
                level = logging.WARNING if attempt == 1 or e.code not in TRANSIENT_CODES else logging.DEBUG
                _log.log(level, "%s: registering on %s failed (attempt %d): %s", self._name, self.endpoint, attempt, e)
                with self._lock:
                    if not self._closing:
                        self._lock.wait(self._retry_interval_s)
                continue
            if counts_as_reconnect and self._on_reconnect is not None:
                self._on_reconnect()
            return
