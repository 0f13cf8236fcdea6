"""The worker side of the connector (one per GPU rank): registration, loads, saves, preemption fences.

Per step, in vLLM's order (VLLM.md): ``handle_preemptions`` fences in-flight saves of preempted requests;
``start_load_kv`` queues one request-level Load per request for the loader thread (the node copies in the background
and flips a 32-byte shared-memory flag); the forward runs (per-layer hooks do nothing, so full CUDA graphs lose
nothing); ``wait_for_save`` queues the step's full blocks for the saver thread, with a CUDA event recorded on the
forward's stream (CUDA tensors): the saver waits on that event, then submits them as asynchronous Save calls, at most
``pegaflow.max_saves_in_flight`` at once, so the node reads what the step's kernels wrote, copies several chunks in
parallel, and vLLM's forward thread never synchronises the device; ``get_finished`` polls the load flags
(``finished_recving``) and reports held requests whose saves all ended (``finished_sending``);
``get_block_ids_with_load_errors`` hands vLLM the blocks that did not load, in the same step the request appears in
``finished_recving``.

Where a save is awaited (vLLM's contract, VLLM.md): the node reads vLLM's blocks while a Save runs, so only a block
vLLM may write again needs the Save to have ended. A running request's full blocks are never rewritten, and vLLM
reuses a block only after freeing it, which happens (1) when a request finishes or is aborted: ``request_finished``
returns True for a request with saves, so vLLM keeps the blocks until ``get_finished`` reports the request in
``finished_sending``, which happens only once none of its Saves is queued, in flight, or unanswered; (2) on
preemption: vLLM frees the victim's blocks and may hand them to another request in the same step, so
``handle_preemptions`` (before that step's forward) drops the victim's unsent chunks and waits for its Saves in
flight; (3) at shutdown, where vLLM frees the whole cache: ``shutdown`` waits (bounded) for every Save, then cancels
what is left. ``wait_for_save`` does not wait: no block is freed at the end of a forward, and nothing of ours needs
per-layer hooks (``save_kv_layer`` is a no-op, so there is no per-layer save to overlap; the saver overlaps the node's
copy with the next steps' forwards instead).

Threads: vLLM's forward thread calls every public method and never waits on the node (except a preemption fence
for a save being copied, and shutdown); the loader thread sends Load calls; the saver thread submits Save calls
(waiting only for the CUDA event and for a free in-flight place); gRPC's threads run each Save's completion; the
link's keeper thread reconnects and may mark loads lost and Saves ended. Shared state is guarded by one condition
variable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from pegaflow._proto import engine_pb2
from pegaflow.client import EngineClient, PendingCall
from pegaflow.errors import EngineError
from pegaflow.flag import LoadFlagFile, LoadFlagSlot, LoadState
from pegaflow.groups import coalesce_layer_groups
from pegaflow.vllm import _vllm
from pegaflow.vllm.config import ConnectorSettings, EngineIdentity
from pegaflow.vllm.kvlayout import UnsupportedKVCache, classify, tensor_info
from pegaflow.vllm.memory import resolver_for
from pegaflow.vllm.metadata import BlockTransfer, PegaConnectorMetadata
from pegaflow.vllm.node_link import NodeLink
from pegaflow.vllm.stats import ConnectorCounters, LimitedLog

_log = logging.getLogger(__name__)
_warn = LimitedLog(_log)

# Finished request ids vLLM told us about that are not (yet) held: kept this many steps, then forgotten.
_FINISHED_MEMORY_STEPS = 64

# Queued (unstarted) save jobs beyond this many are dropped, oldest first (the node cannot keep up). With the
# in-flight bound this caps a worker's save memory: never more than this many steps' block lists wait.
MAX_QUEUED_SAVE_JOBS = 64

# The last this many requests whose Save failed (with why), for logs and tests (``failed_save_requests``).
_FAILED_SAVES_REMEMBERED = 1024

# Errors by which the node clearly refused a call before touching any block (a Load's flag slot can be reused, a
# Save's blocks are not being read). Every other failure (DEADLINE_EXCEEDED, CANCELLED, UNAVAILABLE, UNKNOWN,
# INTERNAL, ...) may have reached the node, which may still be copying.
_CLEAR_REJECTIONS = frozenset({"INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION"})


def _clear_rejection(error: Exception) -> bool:
    code = getattr(error, "code", None)
    return isinstance(error, EngineError) and getattr(code, "name", None) in _CLEAR_REJECTIONS


class FlagPool:
    """Load-completion flags: slots of shared-memory flag files, reused after their load ended.

    A slot whose load may still be written by a node (timed out, or the node never answered) is quarantined: never
    handed out again, so a late write cannot complete a later load.
    """

    def __init__(self, slots_per_file: int):
        self._slots_per_file = slots_per_file
        self._lock = threading.Lock()
        self._files: list[LoadFlagFile] = []
        self._free: list[LoadFlagSlot] = []

    def acquire(self) -> LoadFlagSlot:
        with self._lock:
            if not self._free:
                file = LoadFlagFile(slots=self._slots_per_file)
                self._files.append(file)
                self._free = [file.slot(i) for i in reversed(range(file.slots))]
            slot = self._free.pop()
        slot.reset()
        return slot

    def release(self, slot: LoadFlagSlot) -> None:
        with self._lock:
            self._free.append(slot)

    def quarantine(self, slot: LoadFlagSlot) -> None:
        """The slot is simply never released: a late write by the node lands in a slot nobody reads."""
        _log.debug("flag slot %s quarantined", slot)

    def close(self) -> None:
        with self._lock:
            for file in self._files:
                file.close()
                file.unlink()
            self._files, self._free = [], []


@dataclass
class _Load:
    req_id: str
    block_ids: list[int]
    hashes: list[bytes]
    started_s: float
    generation: int
    slot: LoadFlagSlot | None = None
    missing: set[int] = field(default_factory=set)  # failed_block_ids of the Load reply
    failed_reason: str | None = None  # set: every block failed
    node_gone: bool = False
    taken: bool = False  # the loader thread took it from the queue (it may be sending it now)
    issued: bool = False  # the loader thread has sent the Load (or given up)
    uncertain: bool = False  # the Load failed in a way that may have reached the node: wait for its flag
    timeout_logged: bool = False


class CudaEvents:
    """The CUDA boundary of a save: an event recorded on the current (forward) stream once the step's kernels are
    queued, waited on by the saver thread before the node reads the blocks. Tests stand in for this class only."""

    def record(self):
        import torch

        event = torch.cuda.Event()
        event.record()  # on torch.cuda.current_stream(): after every kernel the forward queued
        return event

    def wait(self, event) -> None:
        event.synchronize()  # blocks the saver thread only


@dataclass
class _SaveJob:
    """One step's saves; entries may be dropped (preempted) until the saver starts the job."""

    entries: list[BlockTransfer]
    ready: object = None  # CUDA tensors: the event after which the blocks hold this step's bytes
    started: bool = False
    dropped: set[str] = field(default_factory=set)  # preempted after the job started: their unsent chunks are skipped


@dataclass
class _UnresolvedSave:
    """A Save call with no clear answer: the node may still be reading these requests' blocks."""

    req_ids: set[str]
    generation: int


@dataclass(eq=False)
class _SaveCall:
    """One Save call submitted to the node and not yet ended (its blocks are counted in ``_save_reading``)."""

    req_ids: set[str]
    blocks: int
    generation: int
    began_s: float
    pending: PendingCall | None = None
    resolved: bool = False  # its requests' reading counts were already dropped (the node is known gone)


class WorkerSide:
    def __init__(
        self,
        identity: EngineIdentity,
        settings: ConnectorSettings,
        counters: ConnectorCounters,
        vllm_config,
        kv_cache_config=None,
    ):
        self.identity = identity
        self.settings = settings
        self.counters = counters
        ranks = _vllm.parallel_ranks(vllm_config)
        self.tp_rank, self.pp_rank = ranks.tp_rank, ranks.pp_rank
        self.instance_id = identity.instance_id
        self._reg_tp_rank, self._reg_tp_size = self.tp_rank, ranks.tp_size
        if identity.use_mla:
            # MLA's latent cache is the same on every TP rank: its layers are registered as replicated, so the node
            # keeps one copy per block (whichever rank's save comes first fills it); rank 0 alone saves, to spare the
            # others' RPCs, and every rank loads it.
            self._saves_here = identity.saves_enabled and self.tp_rank == 0
        else:
            self._saves_here = identity.saves_enabled
        self._num_blocks_hint = getattr(kv_cache_config, "num_blocks", None)
        self.name = f"worker tp{self.tp_rank}/pp{self.pp_rank}"
        self.link: NodeLink | None = None
        self.registrations: list[engine_pb2.LayerRegistration] = []
        self.regions: dict[tuple, list[str]] = {}  # allocation -> layer names in it
        self.device = ""
        self._cuda = False
        self.cuda_events = CudaEvents()
        self._flags = FlagPool(settings.load_flag_slots)
        self._cond = threading.Condition()
        self._loads: dict[str, _Load] = {}
        self._load_errors: set[int] = set()
        self._saves_in_flight: dict[str, int] = {}  # req id -> save job entries not finished
        # req id -> Save chunks the node may be reading now (sent or unresolved)
        self._save_reading: dict[str, int] = {}
        self._unresolved_saves: list[_UnresolvedSave] = []
        self._save_calls: set[_SaveCall] = set()  # submitted, not ended
        self.failed_save_requests: OrderedDict[str, str] = OrderedDict()  # req id -> why (the last ones)
        self._gone_generation = 0  # the node of every generation <= this is known gone
        self._save_queue: deque[_SaveJob] = deque()
        self._saver: threading.Thread | None = None
        self._load_queue: deque[_Load] = deque()
        self._loader: threading.Thread | None = None
        self._closing = False
        self._holds: set[str] = set()
        self._finished: dict[str, int] = {}  # req id -> step it was reported finished
        self._step = 0
        self._meta: PegaConnectorMetadata | None = None
        self._fenced_this_step: set[str] = set()

    # ---- registration ----

    def register_kv_caches(self, kv_caches: dict) -> None:
        if self.link is not None:
            raise RuntimeError("register_kv_caches was called twice")
        if not kv_caches:
            raise UnsupportedKVCache("register_kv_caches got no layers")
        ident = self.identity
        registrations, indices, devices = [], {}, set()
        for name, tensor in kv_caches.items():
            info = tensor_info(tensor)
            found = classify(
                info,
                block_size=ident.block_size,
                num_blocks=self._num_blocks_hint,
                use_mla=ident.use_mla,
                name=name,
                vllm_layout=ident.vllm_layout,
            )
            if found.tag != ident.kv_layout and ident.vllm_layout:
                raise UnsupportedKVCache(
                    f"layer {name!r} has KV layout {found.tag!r}, but vLLM's CacheConfig.kv_cache_layout"
                    f" {ident.vllm_layout} stores {ident.kv_layout!r}: the tensors vLLM handed over do not match the"
                    " layout it announced"
                )
            if found.tag != ident.kv_layout:
                raise UnsupportedKVCache(
                    f"layer {name!r} has KV layout {found.tag!r}, but the namespace is for {ident.kv_layout!r}: set"
                    f" kv_connector_extra_config 'pegaflow.kv_layout': '{found.tag}' (on every instance that should"
                    " share blocks with this one)"
                )
            index = _vllm.layer_index(name)
            if not 0 <= index < ident.total_layers:
                raise UnsupportedKVCache(
                    f"layer {name!r}: index {index} is outside the model's {ident.total_layers} layers (draft-model or"
                    " extra KV layers are not supported)"
                )
            if index in indices:
                raise UnsupportedKVCache(f"layers {indices[index]!r} and {name!r} both have index {index}")
            indices[index] = name
            segments = found.block.segments
            extent = (found.num_blocks - 1) * found.block.block_stride_bytes + max(
                s.offset_bytes + s.length_bytes for s in segments
            )
            placement = resolver_for(info.device_type).place(info, extent)
            devices.add(placement.device)
            self.regions.setdefault(placement.region_key, []).append(name)
            self._cuda = self._cuda or info.device_type == "cuda"
            registrations.append(
                engine_pb2.LayerRegistration(
                    name=name,
                    layer_index=index,
                    region=placement.region,
                    num_blocks=found.num_blocks,
                    block_stride_bytes=found.block.block_stride_bytes,
                    segments=[
                        engine_pb2.ByteSegment(offset_bytes=s.offset_bytes, length_bytes=s.length_bytes)
                        for s in segments
                    ],
                    replicated=ident.use_mla,
                )
            )
        if len(devices) != 1:
            raise UnsupportedKVCache(f"the KV caches of one worker span several devices: {sorted(devices)}")
        self.device = devices.pop()
        # vLLM 0.29's blocks-first group allocations: the group's interleaved layers become one entry each.
        self.registrations = coalesce_layer_groups(registrations)
        if self.identity.pp_size == 1 and len(registrations) != ident.total_layers:
            _log.warning(
                "%s: %d KV layers registered, the model has %d; blocks seal only when every layer is saved",
                self.name,
                len(registrations),
                ident.total_layers,
            )
        _log.info(
            "%s: registering %d layers (%s) as %d entries in %d allocation(s) on %s as instance %s, namespace %s",
            self.name,
            len(registrations),
            ident.kv_layout,
            len(self.registrations),
            len(self.regions),
            self.device,
            self.instance_id,
            ident.namespace,
        )
        self.link = NodeLink(
            self.settings.endpoint,
            self._register,
            rpc_timeout_s=self.settings.rpc_timeout_s,
            retry_interval_s=self.settings.retry_interval_s,
            session_timeout_s=self.settings.session_timeout_s,
            on_lost=self._on_context_lost,
            on_reconnect=lambda: self.counters.add("reconnects"),
            name=self.name,
        )
        self.link.start()
        self._save_client = EngineClient(
            self.settings.endpoint, timeout_s=self.settings.save_timeout_s, channel=self.link.channel
        )
        self._start_threads()

    def _start_threads(self) -> None:
        self._saver = threading.Thread(target=self._save_loop, name=f"pegaflow-saver-tp{self.tp_rank}", daemon=True)
        self._saver.start()
        self._loader = threading.Thread(target=self._load_loop, name=f"pegaflow-loader-tp{self.tp_rank}", daemon=True)
        self._loader.start()

    def _register(self, client):
        return client.register_context(
            self.instance_id,
            self.identity.namespace,
            self._reg_tp_rank,
            self._reg_tp_size,
            self.pp_rank,
            self.identity.total_layers,
            self.device,
            self.registrations,
        )

    # ---- per step ----

    def bind_connector_metadata(self, meta: PegaConnectorMetadata) -> None:
        self._meta = meta
        self._step += 1
        with self._cond:
            self._holds.update(meta.hold_req_ids)
        if meta.preempted_req_ids:  # in case this vLLM does not call handle_preemptions
            self.handle_preemptions(meta.preempted_req_ids)

    def clear_connector_metadata(self) -> None:
        self._meta = None
        self._fenced_this_step = set()

    def handle_preemptions(self, preempted) -> None:
        """Fences saves of preempted requests: unsent ones are dropped, sent ones waited for (bounded)."""
        if isinstance(preempted, PegaConnectorMetadata):
            ids = set(preempted.preempted_req_ids)
        elif preempted is None:
            ids = set()
        elif hasattr(preempted, "preempted_req_ids"):
            ids = set(preempted.preempted_req_ids or ())
        else:
            ids = set(preempted)
        ids -= self._fenced_this_step
        if not ids:
            return
        self._fenced_this_step |= ids
        self.counters.add("preemption_fences")
        # At most one chunk per request is being sent when this runs (later chunks of these requests are skipped), and
        # a Save past its deadline stays counted in _save_reading until the node answers or is known gone.
        deadline = time.monotonic() + self.settings.save_timeout_s + 1.0
        with self._cond:
            for job in self._save_queue:
                if job.started:
                    job.dropped |= ids  # the saver skips their chunks not yet sent
                    continue
                kept = []
                for entry in job.entries:
                    if entry.req_id in ids:
                        self._entry_done(entry.req_id)
                        self.counters.add("save_dropped_blocks", len(entry.block_ids))
                    else:
                        kept.append(entry)
                job.entries = kept
            if any(self._save_reading.get(r) for r in ids):
                self.counters.add("preemption_fence_waits")
            while any(self._save_reading.get(r) for r in ids):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # Fail closed as far as a connector can: vLLM offers no way to delay reusing preempted blocks,
                    # so this is logged as an error and counted (preemption_fence_timeouts in the connector stats);
                    # the node may store what vLLM writes into these blocks next under the old hashes.
                    self.counters.add("preemption_fence_timeouts")
                    _log.error(
                        "%s: saves of preempted requests %s still unconfirmed after %.0f s (node stuck?); vLLM may"
                        " reuse blocks the node is reading",
                        self.name,
                        sorted(r for r in ids if self._save_reading.get(r)),
                        self.settings.save_timeout_s + 1.0,
                    )
                    break
                self._cond.wait(remaining)
            self._cond.notify_all()
        _log.debug("%s: fenced saves of preempted requests %s", self.name, sorted(ids))

    def _entry_done(self, req_id: str) -> None:
        """One save job entry of the request is finished or dropped (the caller holds the lock)."""
        left = self._saves_in_flight.get(req_id, 0) - 1
        if left > 0:
            self._saves_in_flight[req_id] = left
        else:
            self._saves_in_flight.pop(req_id, None)

    def _reading_done(self, req_ids) -> None:
        for req_id in req_ids:
            left = self._save_reading.get(req_id, 0) - 1
            if left > 0:
                self._save_reading[req_id] = left
            else:
                self._save_reading.pop(req_id, None)

    def start_load_kv(self) -> None:
        meta = self._meta
        if meta is None:
            return
        for transfer in meta.loads:
            self._start_load(transfer)

    def _start_load(self, transfer: BlockTransfer) -> None:
        """Queues the request's Load for the loader thread: the forward never waits on the node."""
        _, generation = self.link.current() if self.link else (None, 0)
        load = _Load(transfer.req_id, list(transfer.block_ids), list(transfer.hashes), time.monotonic(), generation)
        with self._cond:
            if transfer.req_id in self._loads:
                raise RuntimeError(f"request {transfer.req_id}: a second load while one is in flight")
            self._loads[transfer.req_id] = load
            if self._loader is None:  # never registered
                load.failed_reason, load.issued = "register_kv_caches was not called", True
            else:
                self._load_queue.append(load)
                self._cond.notify_all()

    def _load_loop(self) -> None:
        while True:
            with self._cond:
                while not self._load_queue and not self._closing:
                    self._cond.wait()
                if not self._load_queue:
                    return
                load = self._load_queue.popleft()
                load.taken = True
            try:
                self._issue_load(load)
            except Exception as e:  # noqa: BLE001 - the thread must live on, or every later load waits forever
                _log.exception("%s: request %s: sending the load failed unexpectedly", self.name, load.req_id)
                with self._cond:
                    if not load.issued:  # failed before anything was sent (_issue_load handles the call itself)
                        load.failed_reason, load.issued = f"unexpected error: {e!r}", True

    def _issue_load(self, load: _Load) -> None:
        context_id, generation = self.link.current()
        slot, missing, reason, uncertain = None, set(), None, False
        if context_id is None:
            reason = "not registered with a node (node down?)"
        else:
            slot = self._flags.acquire()
            try:
                reply = self.link.client.load(context_id, list(zip(load.block_ids, load.hashes)), slot, lease_id=0)
            except Exception as e:  # noqa: BLE001 - whatever it was, decide whether the node may have it
                reason = str(e)
                if _clear_rejection(e):
                    self._flags.release(slot)
                    slot = None
                else:
                    # May have reached the node, which may write the blocks and the flag later: keep waiting for the
                    # flag (or for the node to be known gone) before vLLM may touch these blocks again.
                    uncertain = True
            else:
                missing = set(reply.failed_block_ids)
        with self._cond:
            load.slot, load.missing, load.generation = slot, missing, generation
            load.failed_reason, load.uncertain = reason, uncertain
            # A loss of this generation's node may have been reported while this call was on its way.
            load.node_gone = generation <= self._gone_generation
            load.issued = True
        _log.debug(
            "%s: request %s load of %d blocks %s",
            self.name,
            load.req_id,
            len(load.block_ids),
            "started" if reason is None else f"failed: {reason}",
        )

    def wait_for_save(self) -> None:
        meta = self._meta
        if meta is None or not meta.saves or not self._saves_here:
            return
        # The node must read what this step's kernels wrote: the saver waits for this event, the forward does not.
        ready = self.cuda_events.record() if self._cuda else None
        job = _SaveJob([BlockTransfer(t.req_id, list(t.block_ids), list(t.hashes)) for t in meta.saves], ready)
        with self._cond:
            for entry in job.entries:
                self._saves_in_flight[entry.req_id] = self._saves_in_flight.get(entry.req_id, 0) + 1
            self._save_queue.append(job)
            self._trim_save_queue()
            self._cond.notify_all()

    def _trim_save_queue(self) -> None:
        """Drops the oldest unstarted jobs beyond MAX_QUEUED_SAVE_JOBS (the caller holds the lock)."""
        unstarted = [job for job in self._save_queue if not job.started]
        for job in unstarted[: max(0, len(unstarted) - MAX_QUEUED_SAVE_JOBS)]:
            self._save_queue.remove(job)
            for entry in job.entries:
                self._entry_done(entry.req_id)
                self.counters.add("save_dropped_blocks", len(entry.block_ids))
            self.counters.add("save_queue_drops")
        if unstarted and len(unstarted) > MAX_QUEUED_SAVE_JOBS:
            _warn.warning("save-queue-full", "%s: save queue full; dropped the oldest unstarted saves", self.name)

    def get_finished(self, finished_req_ids) -> tuple[set[str] | None, set[str] | None]:
        recving = self._poll_loads()
        sending = set()
        with self._cond:
            for req_id in finished_req_ids or ():
                self._finished[req_id] = self._step
            for req_id in list(self._holds):
                if (
                    req_id in self._finished
                    and not self._saves_in_flight.get(req_id)
                    and not self._save_reading.get(req_id)
                ):
                    sending.add(req_id)
                    self._holds.discard(req_id)
                    del self._finished[req_id]
            for req_id, step in list(self._finished.items()):
                if req_id not in self._holds and self._step - step > _FINISHED_MEMORY_STEPS:
                    del self._finished[req_id]
        return sending or None, recving or None

    def _poll_loads(self) -> set[str]:
        done = set()
        now = time.monotonic()
        with self._cond:
            loads = list(self._loads.values())
        for load in loads:
            errors: set[int] | None = None
            node_ns = 0
            timed_out = now - load.started_s > self.settings.load_timeout_s
            with self._cond:
                issued, node_gone = load.issued, load.node_gone
                if not issued and not load.taken and timed_out:  # never sent: take it off the queue, fail it
                    try:
                        self._load_queue.remove(load)
                    except ValueError:
                        pass
                    else:
                        load.issued = issued = True
                        load.failed_reason = f"not sent within {self.settings.load_timeout_s:.0f} s"
            if not issued:
                continue  # still queued for (or being sent by) the loader thread
            if load.slot is None:  # never reached the node
                errors = set(load.block_ids)
            else:
                snap = load.slot.snapshot()
                if snap.state is not LoadState.PENDING:
                    expected = len(load.block_ids) - len(load.missing)
                    ok = snap.loaded_blocks == expected  # an uncertain Load's missing blocks are unknown: all or none
                    errors = set(load.missing) if ok else set(load.block_ids)
                    node_ns = snap.duration_ns
                    self._flags.release(load.slot)
                elif node_gone:
                    errors = set(load.block_ids)
                    load.failed_reason = "the node went away during the load"
                    self._flags.quarantine(load.slot)
                elif timed_out and not load.timeout_logged:
                    # The node may still write these blocks: reporting them failed now would let vLLM recompute into
                    # (or free) them under the node's copy. Keep waiting for the flag or for the node to be known gone.
                    load.timeout_logged = True
                    self.counters.add("load_timeouts")
                    _log.error(
                        "%s: request %s: load pending for over %.0f s; waiting for the node's flag or for the node to"
                        " be known gone before vLLM may reuse its blocks",
                        self.name,
                        load.req_id,
                        self.settings.load_timeout_s,
                    )
            if errors is None:
                continue
            with self._cond:
                del self._loads[load.req_id]
                self._load_errors |= errors
            done.add(load.req_id)
            self.counters.add("loads")
            self.counters.add("loaded_blocks", len(load.block_ids) - len(errors))
            self.counters.observe_seconds("load", now - load.started_s)
            if node_ns:
                self.counters.add("load_node_seconds_sum", node_ns / 1e9)
            if errors:
                self.counters.add("load_failures")
                self.counters.add("load_failed_blocks", len(errors))
                _warn.warning(
                    "load-failed",
                    "%s: request %s: %d of %d blocks did not load (%s); vLLM recomputes or fails them",
                    self.name,
                    load.req_id,
                    len(errors),
                    len(load.block_ids),
                    load.failed_reason or "not in the pool",
                )
            else:
                _log.debug("%s: request %s loaded %d blocks", self.name, load.req_id, len(load.block_ids))
        return done

    def get_block_ids_with_load_errors(self) -> set[int]:
        with self._cond:
            errors, self._load_errors = self._load_errors, set()
        return errors

    def _on_context_lost(self, generation: int, node_gone: bool) -> None:
        """Link keeper: the context of ``generation`` is gone; if its node is too, its loads can no longer finish."""
        if not node_gone:
            return
        with self._cond:
            self._gone_generation = max(self._gone_generation, generation)
            for load in self._loads.values():
                # Only loads already sent on a lost generation: a queued one may yet go to the restarted node.
                if load.issued and load.generation <= generation:
                    load.node_gone = True
            still = []
            for save in self._unresolved_saves:
                if save.generation <= generation:  # nothing can still read its blocks
                    self._reading_done(save.req_ids)
                else:
                    still.append(save)
            self._unresolved_saves = still
            # Saves still in flight to the gone node cannot read anything any more: their blocks are vLLM's again
            # now (not after gRPC notices the lost connection, or the Save's deadline); they end as failures.
            gone_calls = [c for c in self._save_calls if c.generation <= generation and not c.resolved]
            for call in gone_calls:
                call.resolved = True
                self._reading_done(call.req_ids)
            self._cond.notify_all()
        for call in gone_calls:
            if call.pending is not None:
                call.pending.cancel()  # its completion then counts it failed

    # ---- the saver thread ----

    def _save_loop(self) -> None:
        while True:
            with self._cond:
                while not self._save_queue and not self._closing:
                    self._cond.wait()
                if not self._save_queue:
                    return
                job = self._save_queue[0]
                job.started = True
            try:
                if job.ready is not None:
                    self.cuda_events.wait(job.ready)
                self._submit_job(job)
            except Exception:  # noqa: BLE001 - never let the thread die: the fences and finished_sending depend on it
                _log.exception("%s: save failed unexpectedly", self.name)
            with self._cond:
                self._save_queue.popleft()
                for entry in job.entries:
                    # Every chunk of the entry was submitted (counted in _save_reading) or skipped: the request's
                    # blocks stay held through _save_reading alone until its Saves end.
                    self._entry_done(entry.req_id)
                self._cond.notify_all()

    def _submit_job(self, job: _SaveJob) -> None:
        """Submits the job's blocks as Save calls of at most max_blocks_per_save blocks; returns once every chunk is
        submitted (or skipped), not when the node is done: each call ends in ``_save_call_done``."""
        owners: dict[tuple[int, bytes], set[str]] = {}  # (block id, hash) -> requests it was queued for
        for entry in job.entries:  # entries no longer change once the job started
            for block_id, block_hash in zip(entry.block_ids, entry.hashes):
                owners.setdefault((block_id, block_hash), set()).add(entry.req_id)
        if not owners:
            return
        context_id, generation = self.link.current()
        if context_id is None:
            self.counters.add("save_dropped_blocks", len(owners))
            return
        pairs = list(owners)
        step = self.settings.max_blocks_per_save
        bound = self.settings.max_saves_in_flight
        for start in range(0, len(pairs), step):
            planned = pairs[start : start + step]
            with self._cond:
                # Back-pressure: at most `bound` Saves in flight; the saver waits here, vLLM's forward never does
                # (its wait_for_save only queues, and the queue is capped by MAX_QUEUED_SAVE_JOBS).
                if len(self._save_calls) >= bound and not self._closing:
                    waited_from = time.perf_counter()
                    while len(self._save_calls) >= bound and not self._closing:
                        self._cond.wait()
                    self.counters.add("save_backpressure_waits")
                    self.counters.observe_seconds("save_backpressure", time.perf_counter() - waited_from)
                if self._closing:  # shutdown gave up waiting: the rest is not sent
                    self.counters.add("save_dropped_blocks", len(pairs) - start)
                    return
                # A request preempted since the job started: its blocks are vLLM's again.
                chunk = [p for p in planned if owners[p] - job.dropped]
                reqs = set().union(*(owners[p] for p in chunk)) if chunk else set()
                call = None
                if chunk:
                    call = _SaveCall(reqs, len(chunk), generation, time.perf_counter())
                    for req_id in reqs:
                        self._save_reading[req_id] = self._save_reading.get(req_id, 0) + 1
                    self._save_calls.add(call)
                    self.counters.add("save_in_flight_max", len(self._save_calls))
            if len(chunk) < len(planned):
                self.counters.add("save_dropped_blocks", len(planned) - len(chunk))
            if call is None:
                continue
            try:
                pending = self._save_client.save_async(context_id, chunk)
            except Exception as e:  # noqa: BLE001 - not submitted: nothing reached the node
                self._save_ended(call, None, e, sent=False)
                continue
            with self._cond:
                call.pending = pending
            pending.add_done_callback(lambda done, c=call: self._save_call_done(c, done))
        _log.debug(
            "%s: submitted %d blocks of %d requests", self.name, len(pairs), len({e.req_id for e in job.entries})
        )

    def _save_call_done(self, call: _SaveCall, pending: PendingCall) -> None:
        """gRPC's thread: a Save call ended (reply, failure, or cancelled)."""
        reply, error = None, None
        try:
            reply = pending.result(0)
        except Exception as e:  # noqa: BLE001 - EngineError, or a cancelled future
            error = e
        self._save_ended(call, reply, error, sent=True)

    def _save_ended(self, call: _SaveCall, reply, error: Exception | None, *, sent: bool) -> None:
        with self._cond:
            self._save_calls.discard(call)
            if not call.resolved:
                call.resolved = True
                if error is None or not sent or _clear_rejection(error) or call.generation <= self._gone_generation:
                    self._reading_done(call.req_ids)
                else:
                    # No clear answer (deadline, cancelled, connection lost, ...): the node may still be copying
                    # from these blocks and seal them later. Keep them counted as read until the node is known gone
                    # (the link reports it); until then vLLM does not get them back (fence, finished_sending).
                    self._unresolved_saves.append(_UnresolvedSave(call.req_ids, call.generation))
                    self.counters.add("save_unresolved")
            if error is not None:
                for req_id in call.req_ids:
                    self.failed_save_requests[req_id] = str(error)
                    self.failed_save_requests.move_to_end(req_id)
                while len(self.failed_save_requests) > _FAILED_SAVES_REMEMBERED:
                    self.failed_save_requests.popitem(last=False)
            self._cond.notify_all()
        if error is not None:
            self.counters.add("save_failures")
            self.counters.add("save_failed_blocks", call.blocks)
            self.counters.add("save_failed_requests", len(call.req_ids))
            _warn.warning(
                "save-failed",
                "%s: saving %d blocks of requests %s failed: %s",
                self.name,
                call.blocks,
                sorted(call.req_ids)[:8],
                error,
            )
            return
        self.counters.add("saves")
        self.counters.observe_seconds("save", time.perf_counter() - call.began_s)
        self.counters.add("save_requested_blocks", call.blocks)
        self.counters.add("saved_blocks", reply.blocks_stored)
        self.counters.add("save_skipped_blocks", reply.blocks_skipped)

    # ---- lifetime ----

    def saves_idle(self, timeout_s: float) -> bool:
        """Waits until no save is queued or in flight (tests, shutdown); unanswered Saves do not count."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._save_queue or self._save_calls:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def saves_in_flight(self) -> int:
        """Save calls submitted and not ended."""
        with self._cond:
            return len(self._save_calls)

    def shutdown(self) -> None:
        """Waits (up to the Save deadline) for queued and in-flight saves, then drops what is still queued and
        cancels what is in flight, so that no call or thread outlives the connector."""
        idle = self.saves_idle(self.settings.save_timeout_s)
        with self._cond:
            self._closing = True
            dropped = 0
            for job in list(self._save_queue):
                if not job.started:
                    self._save_queue.remove(job)
                    for entry in job.entries:
                        self._entry_done(entry.req_id)
                        dropped += len(entry.block_ids)
            calls = [c.pending for c in self._save_calls if c.pending is not None]
            self._cond.notify_all()
        if not idle:
            _log.warning(
                "%s: shutting down with %d Save calls in flight and %d blocks unsent after %.0f s; cancelling them",
                self.name,
                len(calls),
                dropped,
                self.settings.save_timeout_s,
            )
            self.counters.add("save_dropped_blocks", dropped)
        for pending in calls:
            pending.cancel()
        for thread in (self._saver, self._loader):
            if thread is not None:
                thread.join(5.0)
        if self.link is not None:
            self.link.close()
        self._flags.close()
