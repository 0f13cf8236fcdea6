"""Prefill/decode disaggregation: the ``kv_transfer_params`` hand-off between two engines on (usually) two nodes.

The proxy sends a prompt to a prefill engine with ``kv_transfer_params = {"do_remote_decode": true}`` and
``max_tokens=1``. That engine's scheduler side answers ``request_finished`` with ``(True, handoff)``: vLLM keeps the
request's blocks until the workers report their saves finished (the node has sealed them), and returns ``handoff`` to
the proxy::

    {"do_remote_prefill": true, "do_remote_decode": false,
     "pegaflow": {"version": 1, "namespace": "...", "block_size": 16, "block_hashes": ["<hex>", ...],
                  "holder": "n1", "expires_unix_ms": 1764590000000}}

``holder`` is the prefill engine's node; once the saves are sealed the producer leases the blocks there until
``expires_unix_ms`` (so that eviction cannot take them before the decode engine fetched them). The proxy copies the
dict into the decode request. The decode engine's scheduler side (``ConsumerSide``) waits, off the scheduler thread and
bounded, until its own node sees every named block sealed somewhere in the cluster (a cluster-scope Query), then claims
the matching prefix of the prompt as an asynchronous load: the worker's Load on the decode node fetches the blocks from
the holder through the fabric. A block that cannot be fetched (the producer died, the lease ran out) is a failed block:
vLLM recomputes from it. The wait is what makes a slow prefill save harmless: the decode side never races it.

Untrusted input: ``kv_transfer_params`` come from API clients. ``parse_request_params`` checks every field and raises
``InvalidTransferParams`` naming it; the scheduler side turns that into a per-request refusal (the request is computed
without the hand-off, a warning names the request and the field, and the request's ``kv_transfer_params`` in the
answer carry ``{"pegaflow_error": ...}``), never an exception into vLLM.

Threads: the scheduler thread calls every public method of ``ConsumerSide``/``ProducerSide``; their one background
thread runs the Queries (seal waits, producer leases) and hands results back through a lock; a finished wait is
adopted only at a step boundary (``on_step``), so ``get_num_new_matched_tokens`` answers the same within a step.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass

from pegaflow.client import EngineClient, FabricClient
from pegaflow.errors import EngineError
from pegaflow.vllm.stats import ConnectorCounters, LimitedLog

_log = logging.getLogger(__name__)
_warn = LimitedLog(_log)

VERSION = 1
KEY = "pegaflow"
# Bounds on untrusted fields.
MAX_BLOCKS = 65_536
MAX_HASH_BYTES = 64
MAX_NAMESPACE_CHARS = 1024
MAX_HOLDER_CHARS = 128
MAX_LEASE_AHEAD_MS = 3_600_000  # an expiry further ahead than this is refused
NODE_MAX_LEASE_TTL_MS = 600_000  # the node refuses a longer lease_ttl_ms (docs/engine-api.md)
_HOLDER = re.compile(r"^[A-Za-z0-9._:-]*$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_FIELDS = frozenset({"version", "namespace", "block_size", "block_hashes", "holder", "expires_unix_ms"})
# How often a seal wait asks its node again.
POLL_S = 0.05
# At most this many seal waits run at once; more requests are claimed without waiting (their loads report what
# is not there yet as failed blocks).
MAX_WAITS = 1024


class InvalidTransferParams(ValueError):
    """``kv_transfer_params`` that this connector refuses; the message names the field."""


@dataclass(frozen=True)
class Handoff:
    """A validated hand-off: what a decode engine needs to pull a prefill engine's blocks."""

    namespace: str
    block_size: int
    hashes: tuple[bytes, ...]
    holder: str
    expires_unix_ms: int

    def to_params(self) -> dict:
        return {
            "do_remote_prefill": True,
            "do_remote_decode": False,
            KEY: {
                "version": VERSION,
                "namespace": self.namespace,
                "block_size": self.block_size,
                "block_hashes": [h.hex() for h in self.hashes],
                "holder": self.holder,
                "expires_unix_ms": self.expires_unix_ms,
            },
        }


@dataclass(frozen=True)
class RequestParams:
    """What a request's ``kv_transfer_params`` ask of this engine."""

    remote_decode: bool  # prefill leg: hand the prompt's blocks to a decode engine
    handoff: Handoff | None  # decode leg: pull these blocks


def _int(value, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTransferParams(f"{where}: expected an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise InvalidTransferParams(f"{where}: {value} is outside {lo}..{hi}")
    return value


def _flag(params: dict, key: str) -> bool:
    value = params.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidTransferParams(f"kv_transfer_params.{key}: expected true or false, got {type(value).__name__}")
    return value


def parse_handoff(raw, now_ms: int | None = None) -> Handoff:
    """Checks ``kv_transfer_params["pegaflow"]``; raises InvalidTransferParams naming the first bad field."""
    where = f"kv_transfer_params.{KEY}"
    if not isinstance(raw, dict):
        raise InvalidTransferParams(f"{where}: expected an object, got {type(raw).__name__}")
    unknown = sorted(str(k)[:40] for k in raw if k not in _FIELDS)
    if unknown:
        raise InvalidTransferParams(f"{where}: unknown field(s) {unknown[:5]}; known: {sorted(_FIELDS)}")
    missing = sorted(_FIELDS - set(raw))
    if missing:
        raise InvalidTransferParams(f"{where}: missing field(s) {missing}")
    _int(raw["version"], f"{where}.version", VERSION, VERSION)
    namespace = raw["namespace"]
    if not isinstance(namespace, str) or not 0 < len(namespace) <= MAX_NAMESPACE_CHARS:
        raise InvalidTransferParams(f"{where}.namespace: expected a string of 1..{MAX_NAMESPACE_CHARS} characters")
    block_size = _int(raw["block_size"], f"{where}.block_size", 1, 1 << 20)
    hashes_raw = raw["block_hashes"]
    if not isinstance(hashes_raw, list) or not 0 < len(hashes_raw) <= MAX_BLOCKS:
        raise InvalidTransferParams(f"{where}.block_hashes: expected a list of 1..{MAX_BLOCKS} hex strings")
    hashes = []
    for i, h in enumerate(hashes_raw):
        if not isinstance(h, str) or not h or len(h) % 2 or len(h) > 2 * MAX_HASH_BYTES or not _HEX.match(h):
            raise InvalidTransferParams(
                f"{where}.block_hashes[{i}]: expected an even-length hex string of 1..{MAX_HASH_BYTES} bytes"
            )
        hashes.append(bytes.fromhex(h))
    holder = raw["holder"]
    if not isinstance(holder, str) or len(holder) > MAX_HOLDER_CHARS or not _HOLDER.match(holder):
        raise InvalidTransferParams(
            f"{where}.holder: expected a node id of at most {MAX_HOLDER_CHARS} characters [A-Za-z0-9._:-]"
        )
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    expires = _int(raw["expires_unix_ms"], f"{where}.expires_unix_ms", 1, now_ms + MAX_LEASE_AHEAD_MS)
    return Handoff(namespace, block_size, tuple(hashes), holder, expires)


def parse_request_params(params, now_ms: int | None = None) -> RequestParams | None:
    """None: the request asks nothing of the hand-off. Raises InvalidTransferParams for a malformed dict."""
    if params is None:
        return None
    if not isinstance(params, dict):
        raise InvalidTransferParams(f"kv_transfer_params: expected an object, got {type(params).__name__}")
    remote_decode = _flag(params, "do_remote_decode")
    remote_prefill = _flag(params, "do_remote_prefill")
    if remote_decode and remote_prefill:
        raise InvalidTransferParams("kv_transfer_params: do_remote_decode and do_remote_prefill are both true")
    if remote_prefill:
        if KEY not in params:
            raise InvalidTransferParams(f"kv_transfer_params: do_remote_prefill is true but {KEY!r} is missing")
        return RequestParams(False, parse_handoff(params[KEY], now_ms))
    if remote_decode:
        return RequestParams(True, None)
    return None


def error_params(message: str) -> dict:
    """What a refused request's answer carries as its kv_transfer_params."""
    return {"pegaflow_error": message}


# ---------------------------------------------------------------- the background thread


class _Worker:
    """One daemon thread running the hand-off's Queries: seal waits (decode) and producer leases (prefill)."""

    def __init__(self, endpoint: str, channel, timeout_s: float, counters: ConnectorCounters):
        self._counters = counters
        self._next_id_try_s = 0.0
        self._client = EngineClient(endpoint, timeout_s=timeout_s, channel=channel)
        self._fabric = FabricClient(endpoint, timeout_s=timeout_s, channel=channel)
        self._cond = threading.Condition()
        self._waits: dict[str, _Wait] = {}
        self._leases: list[tuple[str, list[bytes], int]] = []
        self._closing = False
        self.node_id: str | None = None
        self._thread = threading.Thread(target=self._run, name="pegaflow-pd", daemon=True)
        self._thread.start()

    def watch(self, wait: _Wait) -> None:
        with self._cond:
            self._waits[wait.req_id] = wait
            self._cond.notify_all()

    def cancel(self, req_id: str) -> None:
        with self._cond:
            self._waits.pop(req_id, None)

    def lease(self, namespace: str, hashes: list[bytes], ttl_ms: int) -> None:
        with self._cond:
            self._leases.append((namespace, hashes, ttl_ms))
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(5.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waits and not self._leases and not self._closing and not self._id_due():
                    self._cond.wait(1.0 if self.node_id is None else None)
                if self._closing:
                    return
                leases, self._leases = self._leases, []
                waits = [w for w in self._waits.values() if not w.done]
            if self._id_due():
                self._learn_node_id()
            for namespace, hashes, ttl_ms in leases:
                self._take_lease(namespace, hashes, ttl_ms)
            for wait in waits:
                self._poll(wait)
            with self._cond:
                if not self._closing and any(not w.done for w in self._waits.values()):
                    self._cond.wait(POLL_S)

    def _id_due(self) -> bool:
        return self.node_id is None and time.monotonic() >= self._next_id_try_s

    def _learn_node_id(self) -> None:
        self._next_id_try_s = time.monotonic() + 1.0
        try:
            self.node_id = self._fabric.health().node_id
        except EngineError as e:
            _log.debug("node id not known yet: %s", e)

    def _take_lease(self, namespace: str, hashes: list[bytes], ttl_ms: int) -> None:
        if ttl_ms <= 0:
            return
        try:
            reply = self._client.query(namespace, hashes, lease_ttl_ms=min(ttl_ms, NODE_MAX_LEASE_TTL_MS))
        except EngineError as e:
            _warn.warning("pd-lease", "leasing %d handed-off blocks failed: %s", len(hashes), e)
            return
        if reply.lease_id:
            self._counters.add("pd_leases_taken")
        if reply.hit_blocks < len(hashes):
            _log.debug("only %d of %d handed-off blocks are sealed here", reply.hit_blocks, len(hashes))

    def _poll(self, wait: _Wait) -> None:
        try:
            reply = self._client.query(wait.namespace, wait.hashes, scope="cluster")
            seen = min(int(reply.hit_blocks), len(wait.hashes))
        except EngineError as e:
            seen = 0
            wait.last_error = str(e)
        now = time.monotonic()
        with self._cond:
            wait.seen = max(wait.seen, seen)
            if seen >= len(wait.hashes) or now >= wait.deadline_s:
                wait.done, wait.ended_s = True, now


@dataclass
class _Wait:
    req_id: str
    namespace: str
    hashes: list[bytes]
    started_s: float
    deadline_s: float
    seen: int = 0
    done: bool = False
    ended_s: float = 0.0
    last_error: str = ""


# ---------------------------------------------------------------- the two roles


@dataclass
class _Claim:
    """A decode request's hand-off: waiting for the seal, then claimable."""

    handoff: Handoff
    matched: int  # leading blocks of the prompt that the hand-off names (same hashes)
    wait: _Wait | None
    ready: bool = False  # adopted at a step boundary: get_num_new_matched_tokens claims now
    used: bool = False  # claimed once: later lookups (after a preemption) are ordinary ones


class PdSide:
    """The hand-off state of one scheduler side: producer (prefill) and consumer (decode) roles in one."""

    def __init__(
        self,
        *,
        endpoint: str,
        channel,
        namespace: str,
        block_size: int,
        counters: ConnectorCounters,
        seal_wait_s: float,
        lease_s: float,
        rpc_timeout_s: float,
    ):
        self.namespace = namespace
        self.block_size = block_size
        self.counters = counters
        self.seal_wait_s = seal_wait_s
        self.lease_s = lease_s
        self._worker = _Worker(endpoint, channel, rpc_timeout_s, counters)
        self._claims: dict[str, _Claim] = {}
        self._errors: dict[str, str] = {}  # request -> why its kv_transfer_params were refused
        self._producing: dict[str, Handoff] = {}  # finished prefill requests whose saves are not done yet
        self._parsed: dict[str, RequestParams | None] = {}

    # ---- both ----

    def params_of(self, request) -> RequestParams | None:
        """The request's validated params (parsed once); a malformed dict is remembered as the request's error."""
        req_id = request.request_id
        if req_id in self._parsed:
            return self._parsed[req_id]
        parsed = None
        try:
            parsed = parse_request_params(getattr(request, "kv_transfer_params", None))
            if parsed is not None and parsed.handoff is not None:
                self._check_fits(parsed.handoff)
        except InvalidTransferParams as e:
            self._refuse(req_id, str(e))
            parsed = None
        except Exception as e:  # noqa: BLE001 - a bug here must refuse one request, never stop the engine
            _log.exception("request %s: checking kv_transfer_params failed", req_id)
            self._refuse(req_id, f"kv_transfer_params could not be checked: {e!r}")
            parsed = None
        self._parsed[req_id] = parsed
        return parsed

    def _check_fits(self, handoff: Handoff) -> None:
        if handoff.namespace != self.namespace:
            raise InvalidTransferParams(
                f"kv_transfer_params.{KEY}.namespace: {handoff.namespace[:200]!r} is not this engine's"
                f" {self.namespace!r} (another model, dtype, layout or TP size)"
            )
        if handoff.block_size != self.block_size:
            raise InvalidTransferParams(
                f"kv_transfer_params.{KEY}.block_size: {handoff.block_size} is not this engine's {self.block_size}"
            )

    def _refuse(self, req_id: str, message: str) -> None:
        self._errors[req_id] = message
        self.counters.add("pd_refused_params")
        _warn.warning(
            "pd-refused", "request %s: kv_transfer_params refused (%s); computing it locally", req_id, message
        )

    def error_of(self, req_id: str) -> str | None:
        return self._errors.get(req_id)

    # ---- consumer (decode) ----

    def lookup(self, request, start_block: int) -> tuple[int | None, bool] | None:
        """The answer for a decode request's hand-off, or None: not a (pending) hand-off, ask the ordinary way."""
        params = self.params_of(request)
        if params is None or params.handoff is None:
            return None
        req_id = request.request_id
        claim = self._claims.get(req_id)
        if claim is None:
            claim = self._new_claim(request, params.handoff)
            if claim is None:
                return None
        if claim.used:
            return None
        if not claim.ready:
            return None, False  # the producer's save is not sealed yet: vLLM asks again next step
        count = claim.matched - start_block
        if count <= 0:
            return None
        return count * self.block_size, True

    def _new_claim(self, request, handoff: Handoff) -> _Claim | None:
        req_id = request.request_id
        prompt_hashes = list(request.block_hashes)
        matched = 0
        for mine, theirs in zip(prompt_hashes, handoff.hashes):
            if mine != theirs:
                break
            matched += 1
        if matched == 0:
            self._refuse(
                req_id,
                f"kv_transfer_params.{KEY}.block_hashes[0] is not the hash of this prompt's first block (another"
                " prompt, or engines with different --prefix-caching-hash-algo)",
            )
            self._parsed[req_id] = None
            return None
        if matched < len(handoff.hashes):
            self.counters.add("pd_hash_mismatches")
        now = time.monotonic()
        remaining_s = handoff.expires_unix_ms / 1e3 - time.time()
        deadline = now + max(0.0, min(self.seal_wait_s, remaining_s))
        wait = None
        if deadline > now and len(self._claims) < MAX_WAITS:
            wait = _Wait(req_id, self.namespace, list(handoff.hashes[:matched]), now, deadline)
            self._worker.watch(wait)
        claim = _Claim(handoff, matched, wait, ready=wait is None)
        self._claims[req_id] = claim
        self.counters.add("pd_handoffs_received")
        return claim

    def on_step(self) -> None:
        """Step boundary: seal waits that ended become claimable."""
        for req_id, claim in self._claims.items():
            if claim.ready or claim.wait is None or not claim.wait.done:
                continue
            claim.ready = True
            wait = claim.wait
            self._worker.cancel(req_id)
            self.counters.observe_seconds("pd_seal_wait", wait.ended_s - wait.started_s)
            if wait.seen < len(wait.hashes):
                self.counters.add("pd_seal_wait_timeouts")
                _warn.warning(
                    "pd-seal-timeout",
                    "request %s: only %d of %d handed-off blocks were sealed in the cluster after %.1f s (%s);"
                    " claiming them anyway: what cannot be fetched is reported failed and recomputed",
                    req_id,
                    wait.seen,
                    len(wait.hashes),
                    wait.ended_s - wait.started_s,
                    wait.last_error or "producer slow or gone",
                )

    def claimed(self, req_id: str) -> None:
        """vLLM allocated the claim: later lookups for this request are ordinary ones."""
        claim = self._claims.get(req_id)
        if claim is not None and claim.ready and not claim.used:
            claim.used = True
            self.counters.add("pd_claimed_blocks", claim.matched)

    # ---- producer (prefill) ----

    def finished(self, request, planned_blocks: int, held: bool) -> dict | None:
        """The kv_transfer_params a finished request answers with (also forgets its state)."""
        req_id = request.request_id
        params = self.params_of(request)
        self._parsed.pop(req_id, None)
        claim = self._claims.pop(req_id, None)
        if claim is not None and claim.wait is not None:
            self._worker.cancel(req_id)
        error = self._errors.pop(req_id, None)
        if error is not None:
            return error_params(error)
        if params is None or not params.remote_decode:
            return None
        status = str(getattr(getattr(request, "status", None), "name", "")).upper()
        if "ABORT" in status or "ERROR" in status:
            return None
        prompt_blocks = len(getattr(request, "prompt_token_ids", ()) or ()) // self.block_size
        count = min(prompt_blocks, planned_blocks, len(request.block_hashes))
        if count <= 0:
            return None
        expires = int(time.time() * 1000 + min(self.lease_s * 1000, NODE_MAX_LEASE_TTL_MS))
        handoff = Handoff(
            self.namespace,
            self.block_size,
            tuple(request.block_hashes[:count]),
            self._worker.node_id or "",
            expires,
        )
        self.counters.add("pd_handoffs_sent")
        if held:
            self._producing[req_id] = handoff  # leased once the workers report the saves done
        else:
            self._lease(handoff)
        return handoff.to_params()

    def saves_done(self, req_ids) -> None:
        """finished_sending: the node sealed these requests' blocks; lease the handed-off ones until they expire."""
        for req_id in req_ids:
            handoff = self._producing.pop(req_id, None)
            if handoff is not None:
                self._lease(handoff)

    def _lease(self, handoff: Handoff) -> None:
        ttl_ms = handoff.expires_unix_ms - int(time.time() * 1000)
        self._worker.lease(self.namespace, list(handoff.hashes), ttl_ms)

    def forget(self, req_id: str) -> None:
        self._parsed.pop(req_id, None)
        self._errors.pop(req_id, None)
        if self._claims.pop(req_id, None) is not None:
            self._worker.cancel(req_id)

    def close(self) -> None:
        self._worker.close()
