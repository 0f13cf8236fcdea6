"""Fault timings a real node cannot produce on demand: the worker and scheduler sides driven through scripted
stand-ins for the node link and the gRPC clients (FakeLink, ScriptedSaveClient, ScriptedLoadClient,
ScriptedQueryClient: they record calls and answer as each test scripts, nothing more)."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from types import SimpleNamespace

import grpc
import pytest
from connector_support import wait_until

from pegaflow.client import PendingCall
from pegaflow.errors import EngineError
from pegaflow.flag import _COUNTERS, _INT64, LoadState
from pegaflow.vllm import scheduler as scheduler_module
from pegaflow.vllm import worker as worker_module
from pegaflow.vllm.config import ConnectorSettings, EngineIdentity
from pegaflow.vllm.metadata import BlockTransfer, PegaConnectorMetadata
from pegaflow.vllm.scheduler import SchedulerSide
from pegaflow.vllm.stats import ConnectorCounters
from pegaflow.vllm.worker import WorkerSide
from pegaflow_testing.fake_vllm import FakeRequest, ModelShape, make_vllm_config, prompt


def _error(code: grpc.StatusCode) -> EngineError:
    return EngineError(code, "scripted", "Engine/Test")


def _write_flag(slot, state: LoadState, loaded: int) -> None:
    """What the node does when a Load ends: counters first, state last."""
    buf = slot._file._buffer()
    buf[slot.offset_bytes + 8 : slot.offset_bytes + 32] = _COUNTERS.pack(loaded, 0, 1000)
    buf[slot.offset_bytes : slot.offset_bytes + 8] = _INT64.pack(int(state))


class ScriptedLoadClient:
    def __init__(self):
        self.calls = []  # (context id, blocks, slot)
        self.answers = []  # per call: None = accepted, an exception = raised; missing = accepted
        self.gate: threading.Event | None = None  # set: calls wait for it

    def load(self, context_id, blocks, flag, lease_id=0):
        self.calls.append((context_id, list(blocks), flag))
        if self.gate is not None:
            self.gate.wait(10)
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, BaseException):
            raise answer
        return SimpleNamespace(failed_block_ids=[])


class FakeLink:
    def __init__(self):
        self.context, self.generation = "ctx#1", 1
        self.client = ScriptedLoadClient()
        self.raise_on_current: BaseException | None = None  # raised once, in the loader thread only

    def current(self):
        if self.raise_on_current is not None and threading.current_thread().name.startswith("pegaflow-loader"):
            error, self.raise_on_current = self.raise_on_current, None
            raise error
        return self.context, self.generation

    def close(self):
        pass


class ScriptedSaveClient:
    """Answers ``save_async`` as scripted: each call is recorded when submitted and answered on a thread of its own
    (as gRPC does) once its gate, if any, opens."""

    def __init__(self):
        self.calls = []
        self.answers = []  # per call: an exception to raise, or None
        self.gates: list[threading.Event] = []  # per call: wait for it before answering

    def save_async(self, context_id, pairs):
        self.calls.append(list(pairs))
        gate = self.gates.pop(0) if self.gates else None
        answer = self.answers.pop(0) if self.answers else None
        future = concurrent.futures.Future()

        def answer_call():
            if gate is not None:
                gate.wait(10)
            if not future.set_running_or_notify_cancel():
                return  # cancelled by the connector meanwhile
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(SimpleNamespace(blocks_stored=len(pairs), blocks_skipped=0))

        threading.Thread(target=answer_call, daemon=True).start()
        return PendingCall(future, "Save")


@pytest.fixture
def worker():
    made = []

    def make(**extra):
        extra = {f"pegaflow.{k}": v for k, v in extra.items()}
        config = make_vllm_config(ModelShape(), "engine-w", extra)
        settings = ConnectorSettings.from_extra_config(extra)
        side = WorkerSide(EngineIdentity.from_vllm_config(config, settings), settings, ConnectorCounters(), config)
        side.link = FakeLink()
        side._save_client = ScriptedSaveClient()
        side._start_threads()
        made.append(side)
        return side

    yield make
    for side in made:
        with side._cond:
            side._closing = True
            side._cond.notify_all()
        side._flags.close()


def _save(side: WorkerSide, *transfers: BlockTransfer) -> None:
    side.bind_connector_metadata(PegaConnectorMetadata(saves=list(transfers)))
    side.wait_for_save()
    side.clear_connector_metadata()


def _load(side: WorkerSide, req_id: str, blocks: list[int]) -> None:
    side.bind_connector_metadata(
        PegaConnectorMetadata(loads=[BlockTransfer(req_id, blocks, [b"h%d" % b for b in blocks])])
    )
    side.start_load_kv()
    side.clear_connector_metadata()


def _finish(side: WorkerSide, req_id: str) -> set[str]:
    side.bind_connector_metadata(PegaConnectorMetadata(hold_req_ids=[req_id]))
    sending, _ = side.get_finished({req_id})
    side.clear_connector_metadata()
    return sending or set()


def _blocks(ids):
    return list(ids), [b"h%d" % i for i in ids]


# ---- finding 1: a Save past its deadline is not "node done reading" ----


def test_save_past_its_deadline_keeps_the_blocks_held_until_the_node_is_known_gone(worker):
    side = worker()
    side._save_client.answers = [_error(grpc.StatusCode.DEADLINE_EXCEEDED)]
    _save(side, BlockTransfer("r1", *_blocks([1, 2])))
    assert side.saves_idle(5)
    assert _finish(side, "r1") == set()  # the node may still be copying: vLLM must not get the blocks back
    assert side.get_finished(set())[0] is None
    side._on_context_lost(1, node_gone=False)  # session lost, but the same node process may still copy
    assert side.get_finished(set())[0] is None
    side._on_context_lost(1, node_gone=True)
    assert side.get_finished(set())[0] == {"r1"}
    assert side.counters.totals()["save_unresolved"] == 1


def test_clearly_rejected_save_releases_the_blocks_at_once(worker):
    side = worker()
    side._save_client.answers = [_error(grpc.StatusCode.INVALID_ARGUMENT)]
    _save(side, BlockTransfer("r1", *_blocks([1])))
    assert side.saves_idle(5)
    assert _finish(side, "r1") == {"r1"}


def test_fence_of_an_unresolved_save_times_out_loudly(worker, caplog):
    side = worker(save_timeout_ms=50)
    side._save_client.answers = [_error(grpc.StatusCode.DEADLINE_EXCEEDED)]
    _save(side, BlockTransfer("r1", *_blocks([1])))
    assert side.saves_idle(5)
    side.handle_preemptions({"r1"})
    assert side.counters.totals()["preemption_fence_timeouts"] == 1
    assert any(r.levelname == "ERROR" and "r1" in r.getMessage() for r in caplog.records)


def test_fence_waits_for_the_chunk_being_sent_and_skips_the_preempted_requests_later_chunks(worker):
    side = worker(max_blocks_per_save=2, max_saves_in_flight=1)  # one Save at a time: [3, 4] waits unsent
    gate = threading.Event()
    side._save_client.gates = [gate]  # the first chunk is being copied until the gate opens
    _save(side, BlockTransfer("r1", *_blocks([1, 2, 3, 4])), BlockTransfer("r2", *_blocks([5, 6])))
    wait_until(lambda: len(side._save_client.calls) == 1, 5, "first chunk sent")
    threading.Timer(0.3, gate.set).start()
    began = time.monotonic()
    side.handle_preemptions({"r1"})
    assert time.monotonic() - began >= 0.25  # waited for the chunk the node was reading
    assert side.saves_idle(5)
    sent = [pair[0] for call in side._save_client.calls for pair in call]
    assert sent == [1, 2, 5, 6]  # r1's unsent chunk [3, 4] was dropped, r2's was saved
    assert side.counters.totals()["save_dropped_blocks"] == 2


def test_fence_waits_for_every_save_of_the_preempted_request_in_flight(worker):
    side = worker(max_blocks_per_save=2, max_saves_in_flight=4)
    gates = [threading.Event(), threading.Event(), threading.Event()]
    side._save_client.gates = list(gates)
    _save(side, BlockTransfer("r1", *_blocks([1, 2, 3, 4])), BlockTransfer("r2", *_blocks([5, 6])))
    wait_until(lambda: len(side._save_client.calls) == 3, 5, "all three chunks in flight at once")
    assert side.saves_in_flight() == 3
    gates[0].set()  # r1's first chunk ends, its second is still being copied
    gates[2].set()  # r2's ends
    threading.Timer(0.3, gates[1].set).start()
    began = time.monotonic()
    side.handle_preemptions({"r1"})
    assert time.monotonic() - began >= 0.25  # waited for r1's second chunk, not only for the first
    assert side.saves_idle(5)
    assert side.counters.totals()["save_in_flight_max"] == 3


def test_shutdown_cancels_a_save_that_outlives_the_save_deadline_and_leaves_no_thread(worker):
    side = worker(save_timeout_ms=200)
    side._save_client.gates = [threading.Event()]  # never opens: a call that does not end by its deadline
    _save(side, BlockTransfer("r1", *_blocks([1, 2])))
    wait_until(lambda: side.saves_in_flight() == 1, 5, "the Save in flight")
    began = time.monotonic()
    side.shutdown()
    assert time.monotonic() - began < 3
    assert side.saves_in_flight() == 0 and not side._saver.is_alive()
    totals = side.counters.totals()
    assert totals["save_failures"] == 1 and totals["save_failed_blocks"] == 2
    assert list(side.failed_save_requests) == ["r1"]


# ---- finding 7: the save queue is bounded ----


def test_save_queue_drops_the_oldest_unstarted_jobs_beyond_its_cap(worker, monkeypatch):
    monkeypatch.setattr(worker_module, "MAX_QUEUED_SAVE_JOBS", 3)
    side = worker(max_saves_in_flight=1)  # the first Save holds the only place: later jobs wait in the queue
    gate = threading.Event()
    side._save_client.gates = [gate]
    _save(side, BlockTransfer("r0", *_blocks([0])))
    wait_until(lambda: len(side._save_client.calls) == 1, 5, "first save in flight")
    _save(side, BlockTransfer("r1", *_blocks([1])))
    # The saver took r1's job and waits for a free place (back-pressure): a started job is never dropped.
    wait_until(lambda: side._save_queue and side._save_queue[0].started, 5, "r1's job started, waiting for a place")
    for i in range(2, 7):
        _save(side, BlockTransfer(f"r{i}", *_blocks([i])))
    gate.set()
    assert side.saves_idle(5)
    sent = [pair[0] for call in side._save_client.calls for pair in call]
    assert sent == [0, 1, 4, 5, 6]
    totals = side.counters.totals()
    assert totals["save_queue_drops"] == 2 and totals["save_dropped_blocks"] == 2
    assert totals["save_backpressure_waits"] == 1
    assert _finish(side, "r2") == {"r2"}  # dropped saves no longer hold the request


# ---- findings 2-4: loads ----


def _recving(side: WorkerSide) -> set[str]:
    return side.get_finished(set())[1] or set()


def test_queued_load_sent_to_the_restarted_node_is_not_failed_by_the_old_nodes_loss(worker):
    side = worker()
    side.link.client.gate = threading.Event()
    _load(side, "r0", [1])  # occupies the loader thread
    wait_until(lambda: len(side.link.client.calls) == 1, 5, "first load sent")
    _load(side, "r1", [2, 3])  # still queued
    side._on_context_lost(1, node_gone=True)
    side.link.context, side.link.generation = "ctx#2", 2  # re-registered on the restarted node
    side.link.client.gate.set()
    wait_until(lambda: len(side.link.client.calls) == 2, 5, "second load sent")
    _, _, slot = side.link.client.calls[1]
    assert side.link.client.calls[1][0] == "ctx#2"
    wait_until(lambda: "r0" in _recving(side), 5, "r0 failed (its node is gone)")
    assert side.get_block_ids_with_load_errors() == {1}
    assert _recving(side) == set()  # r1 waits for the new node's flag
    _write_flag(slot, LoadState.DONE, 2)
    wait_until(lambda: "r1" in _recving(side), 5, "r1 loaded")
    assert side.get_block_ids_with_load_errors() == set()


@pytest.mark.parametrize("code", ["UNAVAILABLE", "CANCELLED", "UNKNOWN", "INTERNAL", "DEADLINE_EXCEEDED"])
def test_load_that_may_have_reached_the_node_waits_for_its_flag_and_keeps_its_slot(worker, code):
    side = worker()
    side.link.client.answers = [_error(getattr(grpc.StatusCode, code))]
    _load(side, "r1", [4, 5])
    wait_until(lambda: side._loads["r1"].issued, 5, "load sent")
    slot = side.link.client.calls[0][2]
    assert _recving(side) == set()  # the node may still write blocks 4 and 5
    _write_flag(slot, LoadState.DONE, 2)  # it did
    wait_until(lambda: "r1" in _recving(side), 5, "flag seen")
    assert side.get_block_ids_with_load_errors() == set()


def test_uncertain_load_is_failed_once_the_node_is_gone_and_its_slot_is_never_reused(worker):
    side = worker()
    side.link.client.answers = [_error(grpc.StatusCode.UNAVAILABLE)]
    _load(side, "r1", [4])
    wait_until(lambda: side._loads["r1"].issued, 5, "load sent")
    slot = side.link.client.calls[0][2]
    side._on_context_lost(1, node_gone=True)
    wait_until(lambda: "r1" in _recving(side), 5, "failed")
    assert side.get_block_ids_with_load_errors() == {4}
    assert slot not in side._flags._free  # quarantined


def test_clearly_rejected_load_fails_at_once_and_reuses_its_slot(worker):
    side = worker()
    side.link.client.answers = [_error(grpc.StatusCode.NOT_FOUND)]
    _load(side, "r1", [4])
    wait_until(lambda: "r1" in _recving(side), 5, "failed")
    assert side.get_block_ids_with_load_errors() == {4}
    assert side.link.client.calls[0][2] in side._flags._free


def test_load_past_its_timeout_is_not_failed_while_the_node_may_still_write(worker):
    side = worker(load_timeout_ms=50)
    _load(side, "r1", [7])
    wait_until(lambda: side._loads["r1"].issued, 5, "load sent")
    time.sleep(0.1)
    assert _recving(side) == set() and side.get_block_ids_with_load_errors() == set()
    assert side.counters.totals()["load_timeouts"] == 1
    side._on_context_lost(1, node_gone=True)
    assert _recving(side) == {"r1"}
    assert side.get_block_ids_with_load_errors() == {7}


def test_loader_thread_survives_unexpected_errors(worker):
    side = worker()
    side.link.raise_on_current = RuntimeError("bug")
    _load(side, "r1", [1])
    wait_until(lambda: "r1" in _recving(side), 5, "r1 failed")
    assert side.get_block_ids_with_load_errors() == {1}
    _load(side, "r2", [2])  # the thread still runs
    wait_until(lambda: len(side.link.client.calls) == 1, 5, "r2 sent")
    _write_flag(side.link.client.calls[0][2], LoadState.DONE, 1)
    wait_until(lambda: "r2" in _recving(side), 5, "r2 loaded")


def test_unsent_load_times_out_and_is_never_sent(worker):
    side = worker(load_timeout_ms=100)
    side.link.client.gate = threading.Event()
    _load(side, "r0", [1])  # the loader thread is stuck sending this one
    wait_until(lambda: len(side.link.client.calls) == 1, 5, "r0 sent")
    _load(side, "r1", [2])
    time.sleep(0.15)
    assert _recving(side) == {"r1"}
    assert side.get_block_ids_with_load_errors() == {2}
    side.link.client.gate.set()
    time.sleep(0.1)
    assert len(side.link.client.calls) == 1  # r1 never went out


# ---- findings 5, 6, 8: the scheduler side ----


class ScriptedQueryClient:
    def __init__(self):
        self.calls = 0
        self.answers = []  # per call: (hit_blocks, lease_id) or an exception

    def query(self, namespace, hashes, lease_ttl_ms=0, scope="local"):
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        hit, lease = answer
        return SimpleNamespace(hit_blocks=hit, lease_id=lease, lease_expires_in_ms=30_000)


@pytest.fixture
def scheduler():
    made = []

    def make():
        extra = {"pegaflow.retry_interval_ms": 200}
        config = make_vllm_config(ModelShape(), "engine-s", extra)
        settings = ConnectorSettings.from_extra_config(extra)
        side = SchedulerSide(EngineIdentity.from_vllm_config(config, settings), settings, ConnectorCounters())
        side._client = ScriptedQueryClient()
        side._release = lambda lease_id: None
        made.append(side)
        return side

    yield make
    for side in made:
        side._releases.put(None)


def _request(req_id: str) -> FakeRequest:
    return FakeRequest(req_id, prompt(7, 64), 4, 16)


def test_failed_query_drops_cached_lookups_and_node_down_wins_over_the_cache(scheduler):
    side = scheduler()
    a, b = _request("a"), _request("b")
    side._client.answers = [(3, 11), _error(grpc.StatusCode.UNAVAILABLE), (2, 12)]
    assert side.get_num_new_matched_tokens(a, 0) == (48, True)
    assert side.get_num_new_matched_tokens(a, 0) == (48, True)  # cached
    assert side.get_num_new_matched_tokens(b, 0) == (0, False)  # the node failed
    assert side._lookups == {}
    assert side.get_num_new_matched_tokens(a, 0) == (0, False)  # node down: no cached answer either
    time.sleep(0.25)
    assert side.get_num_new_matched_tokens(a, 0) == (32, True)  # asked again
    assert side._client.calls == 3


def _alloc_and_load(side: SchedulerSide, request, hits: int, block_ids: list[int]) -> None:
    side._client.answers.append((hits, 5))
    assert side.get_num_new_matched_tokens(request, 0) == (hits * 16, True)
    side.update_state_after_alloc(request, SimpleNamespace(get_block_ids=lambda: (block_ids,)), hits * 16)


def test_load_errors_reported_with_finished_recving_stop_hits_and_resave_the_bad_blocks(scheduler):
    side = scheduler()
    req = _request("r")
    _alloc_and_load(side, req, 3, [10, 11, 12, 13])
    assert side._requests["r"].loaded == (0, 3)
    side.update_connector_output(SimpleNamespace(finished_recving={"r"}, invalid_block_ids={11}))
    state = side._requests["r"]
    assert state.loaded == (0, 1) and not state.load_pending  # block 1 on is recomputed, so saved again
    calls = side._client.calls
    assert side.get_num_new_matched_tokens(req, 0) == (0, False)  # no second claim (recompute livelock)
    assert side._client.calls == calls
    assert side.counters.totals()["lookup_skipped_failed_load"] == 1


def test_repeated_load_failures_back_off_lookups(scheduler, monkeypatch):
    monkeypatch.setattr(scheduler_module, "LOAD_FAILURE_BACKOFF", 2)
    side = scheduler()
    for i, req_id in enumerate(["x", "y"]):
        _alloc_and_load(side, _request(req_id), 2, [20 + 4 * i, 21 + 4 * i, 22 + 4 * i])
        side.update_connector_output(SimpleNamespace(finished_recving={req_id}, invalid_block_ids={20 + 4 * i}))
    calls = side._client.calls
    assert side.get_num_new_matched_tokens(_request("z"), 0) == (0, False)
    assert side._client.calls == calls
    assert side.counters.totals()["lookup_skipped_node_down"] == 1


# ---- wait_for_save: a CUDA event for the saver instead of a device-wide sync on the forward thread ----


class CudaEventsStandIn:
    """Stands in for WorkerSide.cuda_events, the CUDA boundary only (no GPU here): it records on which thread events
    are recorded and waited on, and its "GPU" finishes the step's kernels only when the test says so."""

    def __init__(self):
        self.recorded: list[SimpleNamespace] = []
        self.waited_on: list[str] = []
        self.kernels_done = threading.Event()

    def record(self):
        event = SimpleNamespace(recorded_on=threading.current_thread().name, completed=False)
        self.recorded.append(event)
        return event

    def wait(self, event) -> None:
        self.waited_on.append(threading.current_thread().name)
        assert self.kernels_done.wait(10), "the test never let the stand-in's kernels finish"
        event.completed = True


def test_wait_for_save_records_a_cuda_event_that_the_saver_waits_on_instead_of_syncing_the_forward(worker, monkeypatch):
    torch = pytest.importorskip("torch", reason="torch is in requirements-test.txt")
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: pytest.fail("wait_for_save synchronised the GPU"))
    side = worker()
    side._cuda = True  # as register_kv_caches sets it for CUDA tensors (registration is not under test here)
    side.cuda_events = events = CudaEventsStandIn()
    started = time.monotonic()
    _save(side, BlockTransfer("r1", *_blocks([1, 2])))
    assert time.monotonic() - started < 1.0  # returned while the step's kernels are still running
    assert [e.recorded_on for e in events.recorded] == [threading.current_thread().name]
    wait_until(lambda: events.waited_on, 5, "the saver waits on the event")
    assert events.waited_on[0].startswith("pegaflow-saver")
    time.sleep(0.05)
    assert side._save_client.calls == []  # nothing is read before the kernels are done
    events.kernels_done.set()
    wait_until(lambda: side._save_client.calls, 5, "the save is sent once the event completed")
    assert all(event.completed for event in events.recorded)
    assert side.saves_idle(5)


def test_host_tensors_need_no_cuda_event(worker):
    side = worker()
    side.cuda_events = events = CudaEventsStandIn()
    _save(side, BlockTransfer("r1", *_blocks([1])))
    wait_until(lambda: side._save_client.calls, 5, "the save is sent")
    assert events.recorded == [] and events.waited_on == []
