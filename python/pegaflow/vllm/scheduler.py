"""The scheduler side of the connector (vLLM's engine-core process, one per DP rank).

Per request it remembers: the last lookup (hits and the lease pinning them) or the last miss and when to ask again,
the load it asked the workers for, the request's block ids as the workers see them, how many leading blocks came
from vLLM's own prefix cache, how far its full blocks have been planned for saving, and whether any save was issued
(then ``request_finished`` holds the blocks until every worker reports the request in ``finished_sending``; a
request that has no blocks left is never held).

Saves: a step's newly full blocks are saved unless they were loaded from the pool or found in vLLM's local prefix
cache (another request of this engine computed them and saved them). A preempted request's queued saves are dropped
by the workers' fence, so preemption re-plans: the request's planned blocks become "unconfirmed" (engine-wide, so a
request that finds them in the local cache saves them instead of skipping them) and the request plans its saves from
block 0 again once it is rescheduled; blocks that did land are found in the pool by its next lookup and loaded, not
saved twice.

Misses: a lookup that finds nothing is remembered per request. A request waiting in vLLM's queue asks again only on a
bounded, jittered schedule (``pegaflow.miss_retry_ms``, doubling, at most ``pegaflow.miss_retries`` more times), or
at once when its question changed (a longer local prefix hit); and one step sends at most
``pegaflow.max_queries_per_step`` Queries (a due retry waits a step, a first lookup answers None: vLLM asks again
next step). The waiting queue never costs a Query per request per step.

Leases: a lookup that finds blocks leases them (``pegaflow.lease_ttl_ms``) so that eviction cannot take them before
the load. A repeated lookup for the same request and the same hashes reuses the lease while at least half of its TTL
is left, otherwise takes a new one and releases the old (one lease per request at most). Workers load with lease 0
(every TP rank loads the same hashes, and a Load would consume the lease at the first rank); the scheduler releases
the lease once the load is done (the request is reported in ``finished_recving`` or rescheduled), when the lookup
goes unused, or when the request finishes. Releases go through a background thread: the scheduler never waits on
them. Lookups have a short deadline (``pegaflow.query_timeout_ms``); after a failure, lookups answer 0 hits without
asking for ``pegaflow.retry_interval_ms``, so a node that is down never stalls the scheduler.

Not thread-safe: vLLM calls the scheduler side from its scheduler thread only.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass

from pegaflow.client import EngineClient
from pegaflow.errors import EngineError
from pegaflow.vllm.config import ConnectorSettings, EngineIdentity
from pegaflow.vllm.metadata import BlockTransfer, PegaConnectorMetadata
from pegaflow.vllm.node_link import make_channel
from pegaflow.vllm.pd import PdSide
from pegaflow.vllm.stats import ConnectorCounters, LimitedLog

_log = logging.getLogger(__name__)
_warn = LimitedLog(_log)

# At most this many unconfirmed hashes are remembered (about 6 MB); the oldest are forgotten first.
UNCONFIRMED_LIMIT = 1 << 16

# This many failed loads in a row (workers reported their blocks invalid) make lookups answer 0 hits for
# retry_interval_ms, as a failed lookup does.
LOAD_FAILURE_BACKOFF = 3


@dataclass
class _Lookup:
    start_block: int  # first block asked about (the local prefix hit ends there)
    num_hashes: int  # len(request.block_hashes) when asked
    hit_blocks: int
    lease_id: int
    lease_expires_s: float  # monotonic


@dataclass
class _Miss:
    """A lookup that found nothing: not asked again before ``retry_at_s`` unless the question changed."""

    start_block: int
    num_hashes: int
    queries: int  # Queries asked for this request that found nothing
    retry_at_s: float  # monotonic; inf once the retries are used up


@dataclass
class _Request:
    request: object  # vLLM's Request (live: block_hashes grows as tokens are generated)
    block_ids: list[int]
    saved_upto: int = 0  # blocks [0, saved_upto) were planned: queued for saving, loaded, or in the local cache
    local_upto: int = 0  # blocks [0, local_upto) came from vLLM's own prefix cache when it was (re)scheduled
    loaded: tuple[int, int] | None = None  # block index range the last load covered
    load_block_ids: list[int] | None = None
    load_pending: bool = False
    lease_id: int = 0
    had_saves: bool = False


class SchedulerSide:
    def __init__(self, identity: EngineIdentity, settings: ConnectorSettings, counters: ConnectorCounters):
        self.identity = identity
        self.settings = settings
        self.counters = counters
        self._block_size = identity.block_size
        self._channel = make_channel(settings.endpoint)
        self._client = EngineClient(settings.endpoint, timeout_s=settings.query_timeout_s, channel=self._channel)
        self._release_client = EngineClient(settings.endpoint, timeout_s=settings.rpc_timeout_s, channel=self._channel)
        self._lookups: dict[str, _Lookup] = {}
        self._misses: dict[str, _Miss] = {}  # requests whose last lookup found nothing
        self._queries_this_step = 0
        # Hashes whose planned save a preemption may have dropped: saved by the next request that has them, even
        # if it found them in vLLM's prefix cache. Insertion-ordered, the oldest forgotten beyond the limit.
        self._unconfirmed: dict[bytes, None] = {}
        self._requests: dict[str, _Request] = {}
        self._next_loads: list[BlockTransfer] = []
        self._next_holds: list[str] = []
        self._node_down_until_s = 0.0
        self._failed_loads: set[str] = set()  # requests whose load failed (kept until request_finished)
        self._load_failure_streak = 0  # loads in a row that failed: back off lookups after LOAD_FAILURE_BACKOFF
        self._releases: queue.SimpleQueue = queue.SimpleQueue()
        self._releaser = threading.Thread(target=self._release_loop, name="pegaflow-lease-release", daemon=True)
        self._releaser.start()
        # The prefill/decode hand-off (kv_transfer_params): its own background thread and state.
        self.pd = PdSide(
            endpoint=settings.endpoint,
            channel=self._channel,
            namespace=identity.namespace,
            block_size=identity.block_size,
            counters=counters,
            seal_wait_s=settings.pd_seal_wait_s,
            lease_s=settings.pd_lease_s,
            rpc_timeout_s=settings.rpc_timeout_s,
        )
        _log.info(
            "PegaKVConnector scheduler side: node %s, namespace %s, role %s",
            settings.endpoint,
            identity.namespace,
            identity.kv_role,
        )

    # ---- lookups ----

    def get_num_new_matched_tokens(self, request, num_computed_tokens: int) -> tuple[int | None, bool]:
        req_id = request.request_id
        if not self.identity.loads_enabled:
            return 0, False
        hashes = request.block_hashes
        bs = self._block_size
        start = num_computed_tokens // bs
        if num_computed_tokens % bs or start >= len(hashes):
            # Nothing beyond the local hit is a full block (or vLLM counted past the hashes: async scheduling).
            self._drop_lookup(req_id)
            return 0, False
        now = time.monotonic()
        if req_id in self._failed_loads:
            # Its blocks failed to load once: claiming them again could loop (load fails, vLLM recomputes, asks...).
            self._drop_lookup(req_id)
            self.counters.add("lookup_skipped_failed_load")
            return 0, False
        if now < self._node_down_until_s:  # before any cached answer: the node may have restarted without the blocks
            self._drop_lookup(req_id)
            self.counters.add("lookup_skipped_node_down")
            return 0, False
        cached = self._lookups.get(req_id)
        if cached is not None:
            if (
                cached.start_block == start
                and cached.num_hashes == len(hashes)
                and cached.lease_id
                and cached.lease_expires_s - now > self.settings.lease_ttl_ms / 2e3
            ):
                self.counters.add("lookup_cached")
                return cached.hit_blocks * bs, cached.hit_blocks > 0
            self._drop_lookup(req_id)
        miss = self._misses.get(req_id)
        if miss is not None:
            same_question = miss.start_block == start and miss.num_hashes == len(hashes)
            if miss.queries > self.settings.miss_retries or (same_question and now < miss.retry_at_s):
                self.counters.add("lookup_miss_remembered")
                return 0, False
        handoff = self.pd.lookup(request, start)
        if handoff is not None:
            n, load_async = handoff
            if n:  # what update_state_after_alloc checks the allocation against (no lease: the blocks are remote)
                self._lookups[req_id] = _Lookup(start, len(hashes), n // bs, 0, float("inf"))
            return n, load_async
        if self._queries_this_step >= self.settings.max_queries_per_step:
            # This step asked the node enough: a due retry waits for the next step, a first lookup is vLLM's to
            # repeat next step (None keeps the request waiting) rather than a scheduler step stalled on Queries.
            self.counters.add("lookup_deferred")
            return (0, False) if miss is not None else (None, False)
        self._queries_this_step += 1
        asked = list(hashes[start:])
        started = time.perf_counter()
        try:
            reply = self._client.query(
                self.identity.namespace, asked, lease_ttl_ms=self.settings.lease_ttl_ms, scope=self.settings.query_scope
            )
        except EngineError as e:
            self._node_down_until_s = time.monotonic() + self.settings.retry_interval_s
            self.counters.add("lookup_failures")
            for other in list(self._lookups):  # their leases may be gone with the node (restart): ask again later
                self._drop_lookup(other)
            _warn.warning(
                "lookup-failed",
                "lookup for request %s failed (%s); answering 0 hits for the next %.1f s",
                req_id,
                e,
                self.settings.retry_interval_s,
            )
            return 0, False
        self.counters.add("lookups")
        self.counters.observe_seconds("lookup", time.perf_counter() - started)
        self.counters.add("lookup_blocks", len(asked))
        hit = min(int(reply.hit_blocks), len(asked))
        if reply.lease_id:
            self.counters.add("leases_taken")
        if hit == 0:
            if reply.lease_id:  # the node leases nothing for 0 hits; be safe anyway
                self._release(reply.lease_id)
            self._remember_miss(req_id, start, len(hashes), now)
            return 0, False
        self._misses.pop(req_id, None)
        self.counters.add("hit_blocks", hit)
        self._lookups[req_id] = _Lookup(
            start, len(hashes), hit, int(reply.lease_id), now + reply.lease_expires_in_ms / 1e3
        )
        _log.debug(
            "request %s: %d of %d blocks after the local %d are in the pool (lease %d)",
            req_id,
            hit,
            len(asked),
            start,
            reply.lease_id,
        )
        return hit * bs, True

    def _remember_miss(self, req_id: str, start: int, num_hashes: int, now: float) -> None:
        queries = self._misses[req_id].queries + 1 if req_id in self._misses else 1
        if queries > self.settings.miss_retries:
            retry_at = float("inf")  # the retries are used up: this request is not asked about again
        else:
            # Jittered, so that requests that arrived together do not all ask again in the same step.
            retry_at = now + self.settings.miss_retry_s * 2 ** (queries - 1) * random.uniform(0.75, 1.25)
        self._misses[req_id] = _Miss(start, num_hashes, queries, retry_at)

    def _drop_lookup(self, req_id: str) -> None:
        lookup = self._lookups.pop(req_id, None)
        if lookup is not None and lookup.lease_id:
            self._release(lookup.lease_id)

    # ---- allocation ----

    def update_state_after_alloc(self, request, blocks, num_external_tokens: int) -> None:
        req_id = request.request_id
        state = self._requests.get(req_id)
        if state is None:
            state = self._requests[req_id] = _Request(request, [])
        state.request = request
        self._misses.pop(req_id, None)  # scheduled: no longer waiting (a preempted request asks afresh)
        if num_external_tokens > 0:
            self.pd.claimed(req_id)
        if num_external_tokens <= 0:
            self._drop_lookup(req_id)  # asked but not used (or nothing found)
            if state.load_pending:  # second call of an async load: the request is being scheduled, load done
                self._load_done(state)
            return

        lookup = self._lookups.pop(req_id, None)
        bs = self._block_size
        if lookup is None or num_external_tokens % bs or num_external_tokens // bs > lookup.hit_blocks:
            raise RuntimeError(
                f"request {req_id}: vLLM allocated {num_external_tokens} external tokens, but this connector's lookup"
                f" offered {0 if lookup is None else lookup.hit_blocks * bs}"
            )
        count = num_external_tokens // bs
        block_ids = list(blocks.get_block_ids()[0])
        target = block_ids[lookup.start_block : lookup.start_block + count]
        if len(target) != count:
            raise RuntimeError(
                f"request {req_id}: {len(block_ids)} blocks allocated, but the load needs blocks"
                f" [{lookup.start_block}, {lookup.start_block + count})"
            )
        hashes = list(request.block_hashes[lookup.start_block : lookup.start_block + count])
        if state.lease_id:  # an older load's lease (request preempted and back): done with it
            self._release(state.lease_id)
        state.load_pending = True
        state.lease_id = lookup.lease_id
        state.loaded = (lookup.start_block, lookup.start_block + count)
        state.load_block_ids = target
        self.counters.add("hit_tokens", num_external_tokens)
        self._next_loads.append(BlockTransfer(req_id, target, hashes))
        _log.debug("request %s: loading %d blocks into %s..", req_id, count, target[:4])

    def _load_done(self, state: _Request) -> None:
        state.load_pending = False
        state.load_block_ids = None
        if state.lease_id:
            self._release(state.lease_id)
            state.lease_id = 0

    # ---- per step ----

    def build_connector_meta(self, scheduler_output) -> PegaConnectorMetadata:
        meta = PegaConnectorMetadata(
            loads=self._next_loads,
            hold_req_ids=self._next_holds,
            preempted_req_ids=sorted(getattr(scheduler_output, "preempted_req_ids", None) or ()),
        )
        self._next_loads, self._next_holds = [], []
        self._queries_this_step = 0
        self.pd.on_step()
        for req_id in meta.preempted_req_ids:
            state = self._requests.get(req_id)
            if state is not None:
                self._replan_after_preemption(state)
        scheduled = scheduler_output.num_scheduled_tokens
        for new in scheduler_output.scheduled_new_reqs:
            state = self._requests.get(new.req_id)
            if state is None:
                continue  # never went through update_state_after_alloc: nothing known about it
            state.block_ids = list(new.block_ids[0]) if new.block_ids else []
            self._scheduled_first(state, new.num_computed_tokens)
            self._plan_saves(state, new.num_computed_tokens + scheduled.get(new.req_id, 0), meta)
        cached = scheduler_output.scheduled_cached_reqs
        resumed_ids = set(getattr(cached, "resumed_req_ids", None) or ())
        resumed_flags = getattr(cached, "resumed_from_preemption", None)  # older vLLM
        for i, req_id in enumerate(cached.req_ids):
            state = self._requests.get(req_id)
            if state is None:
                continue
            new_ids = cached.new_block_ids[i]
            if req_id in resumed_ids or (resumed_flags is not None and resumed_flags[i]):
                state.block_ids = list(new_ids[0]) if new_ids else []
                self._scheduled_first(state, cached.num_computed_tokens[i])
            elif new_ids is not None:
                state.block_ids.extend(new_ids[0])
            self._plan_saves(state, cached.num_computed_tokens[i] + scheduled.get(req_id, 0), meta)
        return meta

    def _scheduled_first(self, state: _Request, num_computed_tokens: int) -> None:
        """The request is scheduled for the first time since it arrived or was preempted: the blocks it starts
        with came from vLLM's prefix cache, then from the pool (the load starts where the local hit ends)."""
        state.local_upto = state.loaded[0] if state.loaded else num_computed_tokens // self._block_size

    def _replan_after_preemption(self, state: _Request) -> None:
        """The workers' fence drops the request's queued saves: what it planned is unconfirmed, and it plans its
        saves from block 0 again once rescheduled (blocks that did land are loaded from the pool then)."""
        hashes = state.request.block_hashes
        lo, hi = state.loaded or (0, 0)
        for i in range(min(state.saved_upto, len(hashes))):
            if not lo <= i < hi:
                self._unconfirmed[hashes[i]] = None
        while len(self._unconfirmed) > UNCONFIRMED_LIMIT:
            del self._unconfirmed[next(iter(self._unconfirmed))]
        state.block_ids = []  # freed; the resumed request gets new ones
        state.saved_upto = state.local_upto = 0
        state.loaded = None
        self.counters.add("save_replans")

    def _plan_saves(self, state: _Request, computed_after_step: int, meta: PegaConnectorMetadata) -> None:
        if not self.identity.saves_enabled:
            return
        hashes = state.request.block_hashes
        full = min(len(hashes), computed_after_step // self._block_size, len(state.block_ids))
        if full <= state.saved_upto:
            return
        ids, hs = [], []
        lo, hi = state.loaded or (0, 0)
        skipped_local = 0
        for i in range(state.saved_upto, full):
            if lo <= i < hi:
                continue  # came from the pool
            if i < state.local_upto and hashes[i] not in self._unconfirmed:
                skipped_local += 1  # in vLLM's prefix cache: the request that computed it saved it
                continue
            self._unconfirmed.pop(hashes[i], None)
            ids.append(state.block_ids[i])
            hs.append(hashes[i])
        state.saved_upto = full
        if skipped_local:
            self.counters.add("save_skipped_local_blocks", skipped_local)
        if ids:
            state.had_saves = True
            meta.saves.append(BlockTransfer(state.request.request_id, ids, hs))

    def update_connector_output(self, connector_output) -> None:
        # Invalid blocks first: _load_done (below) forgets which blocks a load covered.
        invalid = getattr(connector_output, "invalid_block_ids", None)
        failed = set()
        if invalid:
            for req_id, state in self._requests.items():
                if state.loaded and state.load_block_ids:
                    bad = [i for i, b in enumerate(state.load_block_ids) if b in invalid]
                    if bad:  # vLLM recomputes from the first bad block: those blocks must be saved again
                        state.loaded = (state.loaded[0], state.loaded[0] + bad[0])
                        failed.add(req_id)
        for req_id in failed:
            self._failed_loads.add(req_id)  # no more pool hits for it
        self.pd.saves_done(getattr(connector_output, "finished_sending", None) or ())
        for req_id in getattr(connector_output, "finished_recving", None) or ():
            state = self._requests.get(req_id)
            if state is not None and state.load_pending:
                self._load_done(state)
                if req_id not in failed:
                    self._load_failure_streak = 0
        if failed:
            self._load_failure_streak += len(failed)
            if self._load_failure_streak >= LOAD_FAILURE_BACKOFF:
                self._node_down_until_s = time.monotonic() + self.settings.retry_interval_s
                self._load_failure_streak = 0
                for other in list(self._lookups):
                    self._drop_lookup(other)
                _warn.warning(
                    "loads-failing",
                    "%d loads in a row failed; answering 0 hits for %.1f s",
                    LOAD_FAILURE_BACKOFF,
                    self.settings.retry_interval_s,
                )

    def request_finished(self, request, block_ids) -> tuple[bool, dict | None]:
        req_id = request.request_id
        self._drop_lookup(req_id)
        self._misses.pop(req_id, None)
        self._failed_loads.discard(req_id)
        state = self._requests.pop(req_id, None)
        if state is None:  # never scheduled
            return False, self.pd.finished(request, 0, held=False)
        if state.lease_id:
            self._release(state.lease_id)
        # A request still waiting for its load is held by vLLM itself until finished_recving; a request without
        # blocks (preempted, then finished) has nothing a save could still read.
        hold = state.had_saves and not state.load_pending and _has_blocks(block_ids)
        if hold:
            self._next_holds.append(req_id)
            self.counters.add("requests_held")
        _log.debug("request %s finished; blocks held for saves: %s", req_id, hold)
        # P/D: a prefill request hands its prompt's planned blocks (saved, loaded or in vLLM's cache) to decode.
        params = self.pd.finished(request, state.saved_upto, held=hold)
        return hold, params

    # ---- leases ----

    def _release(self, lease_id: int) -> None:
        self._releases.put(lease_id)

    def _release_loop(self) -> None:
        while True:
            lease_id = self._releases.get()
            if lease_id is None:
                return
            try:
                self._release_client.release(lease_id)
                self.counters.add("leases_released")
            except EngineError as e:
                _log.debug("releasing lease %d failed: %s", lease_id, e)

    def outstanding_leases(self) -> int:
        """Leases this side holds now (lookups not yet used, loads not yet confirmed)."""
        held = sum(1 for lookup in self._lookups.values() if lookup.lease_id)
        return held + sum(1 for state in self._requests.values() if state.lease_id)

    def shutdown(self) -> None:
        for req_id in list(self._lookups):
            self._drop_lookup(req_id)
        for state in self._requests.values():
            if state.lease_id:
                self._release(state.lease_id)
                state.lease_id = 0
        self._releases.put(None)
        self._releaser.join(self.settings.rpc_timeout_s + 1.0)
        self.pd.close()
        self._channel.close()


def _has_blocks(block_ids) -> bool:
    """vLLM passes a list of block ids (one KV-cache group) or, with several groups, a tuple of lists."""
    if not block_ids:
        return False
    if isinstance(block_ids[0], (list, tuple)):
        return any(len(group) for group in block_ids)
    return True
