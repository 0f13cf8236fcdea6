"""Connector metrics for vLLM's ``get_kv_connector_stats`` (hits, loaded/saved blocks, failures, latencies).

Each connector (the scheduler side and every worker) counts into a ``ConnectorCounters`` and hands vLLM a
``PegaKVConnectorStats`` snapshot per step (then starts over). vLLM aggregates the workers' snapshots with the
scheduler's and logs ``reduce()`` every interval; ``build_kv_connector_stats`` rebuilds the object from its ``data``.
Keys ending in ``_max`` aggregate by maximum, every other key by sum. Thread-safe: counted from the forward thread
and from the connector's background threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from pegaflow.vllm import _vllm

# Every key a snapshot may carry (absent = 0). Durations are seconds.
COUNTER_KEYS = (
    # scheduler side
    "lookups",  # get_num_new_matched_tokens calls that asked the node
    "lookup_cached",  # answered from this request's earlier lookup (lease still valid)
    "lookup_deferred",  # not asked: this step's Query budget was spent (a retry waits, a first lookup answers None)
    "lookup_miss_remembered",  # answered 0 hits from this request's earlier miss (its next retry not due yet)
    "lookup_failures",  # node unreachable / timed out: answered 0 hits
    "lookup_skipped_node_down",  # answered 0 hits without asking (node recently unreachable)
    "lookup_skipped_failed_load",  # answered 0 hits: this request's load from the pool failed before
    "lookup_blocks",  # blocks asked about
    "hit_blocks",  # blocks the node had (and leased)
    "hit_tokens",
    "lookup_seconds_sum",
    "lookup_seconds_max",
    "leases_taken",
    "leases_released",
    "requests_held",  # request_finished returned True (blocks held until saves finish)
    "save_skipped_local_blocks",  # not saved: found in vLLM's prefix cache (the request that computed them saved them)
    "save_replans",  # preempted requests whose saves are planned again from block 0 once they resume
    # scheduler side, prefill/decode hand-off (pegaflow.vllm.pd)
    "pd_handoffs_sent",  # prefill: request_finished answered with a hand-off
    "pd_leases_taken",  # prefill: handed-off blocks leased on this node once sealed
    "pd_handoffs_received",  # decode: requests that came with a valid hand-off
    "pd_claimed_blocks",  # decode: blocks claimed as an asynchronous load from the hand-off
    "pd_seal_wait_seconds_sum",  # decode: waiting until the cluster saw the handed-off blocks sealed
    "pd_seal_wait_seconds_max",
    "pd_seal_wait_timeouts",  # decode: the wait ended before every block was sealed (claimed anyway)
    "pd_hash_mismatches",  # decode: the hand-off names blocks beyond where the prompt's hashes differ
    "pd_refused_params",  # malformed or unfitting kv_transfer_params: computed without the hand-off
    # worker side
    "loads",  # request-level Load operations finished
    "loaded_blocks",
    "load_failed_blocks",  # reported to vLLM through get_block_ids_with_load_errors
    "load_failures",  # loads with at least one failed block
    "load_seconds_sum",  # issue to flag seen
    "load_seconds_max",
    "load_node_seconds_sum",  # node-side copy time from the flag
    "saves",  # Save RPCs finished
    "save_requested_blocks",
    "saved_blocks",  # stored (new slots)
    "save_skipped_blocks",  # already in the pool
    "save_failures",  # Save RPCs that failed
    "save_failed_blocks",
    "save_failed_requests",  # requests with blocks in a failed Save (WorkerSide.failed_save_requests names them)
    "save_in_flight_max",  # most Save calls in flight at once (at most pegaflow.max_saves_in_flight)
    "save_backpressure_waits",  # the saver thread waited for a free in-flight place (vLLM's forward never does)
    "save_backpressure_seconds_sum",
    "save_backpressure_seconds_max",
    "save_dropped_blocks",  # not sent: node down, preempted before its chunk was sent, or the save queue was full
    "save_queue_drops",  # queued save jobs dropped unstarted because the queue was at its cap
    "save_unresolved",  # Save calls with no clear answer (deadline, cancelled, connection lost): blocks kept held
    "preemption_fence_timeouts",  # fences that gave up waiting: the node may read blocks vLLM reuses (logged as error)
    "load_timeouts",  # loads past load_timeout_ms still waiting for the node's flag or for the node to be known gone
    "save_seconds_sum",
    "save_seconds_max",
    "preemption_fences",  # handle_preemptions calls that had preempted requests
    "preemption_fence_waits",  # ... and had to wait for a save being copied
    "reconnects",
)


class ConnectorCounters:
    """The running counts of one connector; ``snapshot_and_reset`` hands them to vLLM."""

    def __init__(self):
        self._lock = threading.Lock()
        self._data: dict[str, float] = {}
        self._totals: dict[str, float] = {}  # never reset: for tests, the demo and logs

    def add(self, key: str, value: float = 1) -> None:
        if key not in _KEYS:
            raise KeyError(f"unknown connector stat {key!r}")
        with self._lock:
            for target in (self._data, self._totals):
                if key.endswith("_max"):
                    target[key] = max(target.get(key, 0), value)
                else:
                    target[key] = target.get(key, 0) + value

    def observe_seconds(self, prefix: str, seconds: float) -> None:
        self.add(f"{prefix}_seconds_sum", seconds)
        self.add(f"{prefix}_seconds_max", seconds)

    def snapshot_and_reset(self) -> dict[str, float]:
        with self._lock:
            data, self._data = self._data, {}
        return data

    def totals(self) -> dict[str, float]:
        """Everything counted since the connector started (not reset by vLLM's polling)."""
        with self._lock:
            return dict(self._totals)


_KEYS = frozenset(COUNTER_KEYS)


@dataclass
class PegaKVConnectorStats(_vllm.stats_base()):
    """What ``get_kv_connector_stats`` returns: one interval's counts in ``data`` (plain numbers, picklable)."""

    data: dict[str, Any] = field(default_factory=dict)

    def reset(self) -> None:
        self.data = {}

    def aggregate(self, other) -> PegaKVConnectorStats:
        """Adds ``other``'s counts into this object (maxima by maximum) and returns it."""
        merged = dict(self.data)
        for key, value in (getattr(other, "data", None) or {}).items():
            if key.endswith("_max"):
                merged[key] = max(merged.get(key, 0), value)
            else:
                merged[key] = merged.get(key, 0) + value
        self.data = merged
        return self

    def reduce(self) -> dict[str, int | float]:
        """A summary for vLLM's periodic log line: counts, hit rate and mean/max latencies in ms."""
        d = self.data
        out: dict[str, int | float] = {}
        for key in ("lookups", "hit_tokens", "loads", "loaded_blocks", "load_failed_blocks", "saves", "saved_blocks"):
            if d.get(key):
                out[key] = int(d[key])
        if d.get("lookup_blocks"):
            out["block_hit_rate"] = round(d.get("hit_blocks", 0) / d["lookup_blocks"], 4)
        for prefix, count_key in (("lookup", "lookups"), ("load", "loads"), ("save", "saves")):
            if d.get(count_key):
                out[f"avg_{prefix}_ms"] = round(1e3 * d.get(f"{prefix}_seconds_sum", 0) / d[count_key], 3)
                out[f"max_{prefix}_ms"] = round(1e3 * d.get(f"{prefix}_seconds_max", 0), 3)
        for key in ("lookup_failures", "load_failures", "save_failures", "save_dropped_blocks", "reconnects"):
            if d.get(key):
                out[key] = int(d[key])
        return out

    def is_empty(self) -> bool:
        return not any(self.data.values())


class LimitedLog:
    """WARNINGs that could repeat every step (node down, loads failing) at most once per ``interval_s`` per key,
    with the number of suppressed repeats; the per-request details go to DEBUG."""

    def __init__(self, logger, interval_s: float = 10.0):
        self._logger = logger
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args) -> None:
        import time

        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                emit, suppressed = False, 0
            else:
                self._last[key] = now
                emit, suppressed = True, self._suppressed.pop(key, 0)
        if emit:
            if suppressed:
                message += f" ({suppressed} similar in the last {self._interval_s:.0f} s)"
            self._logger.warning(message, *args)
        else:
            self._logger.debug(message, *args)
