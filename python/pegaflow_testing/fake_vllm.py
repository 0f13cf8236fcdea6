"""vLLM-shaped stand-ins — NOT vLLM — that drive the real connector the way vLLM v1 does (tests and the demo).

vLLM cannot be installed here, so this module plays its parts, following ``VLLM.md``'s call sequences exactly:

- ``FakeScheduler``: vLLM's scheduler loop for the connector's purposes: a GPU block pool with optional local
  prefix caching, chunked prefill under a token budget, decode, preemption when blocks run out (freeing the victim's
  blocks and reusing them in the same step), asynchronous external loads (WAITING_FOR_REMOTE_KVS, promotion after
  every worker reported the request in ``finished_recving``, the full-prompt rule), load errors (recompute from the
  first bad block, or fail the request), aborts, delayed block frees until ``finished_sending``. It calls
  ``get_num_new_matched_tokens`` twice per attempt (it must be side-effect free), ``update_state_after_alloc`` once
  for the load and again with 0 when the loaded request is scheduled, ``build_connector_meta`` every step,
  ``update_connector_output`` and ``request_finished`` (also for requests never scheduled). It asserts what vLLM
  asserts (ids in ``finished_recving``/``finished_sending`` must be known requests, sends only for held requests).
- ``FakeWorker``: one GPU worker (a TP rank) whose "GPU memory" is a ``pegaflow.shm.SharedKVCache``; per step:
  ``handle_preemptions`` (with this step's metadata, as current vLLM does), ``bind_connector_metadata``,
  ``start_load_kv``, a fake forward that writes every scheduled token's KV (bytes derived from the token prefix,
  the layer and the rank, so any misplaced byte is caught) and calls the per-layer hooks unless it pretends to replay
  a full CUDA graph, ``wait_for_save``, ``get_finished``, ``get_block_ids_with_load_errors``,
  ``get_kv_connector_stats``, ``clear_connector_metadata``. Before computing a request for the first time (new,
  resumed, or promoted after a load) it verifies that every token the scheduler counts as computed holds exactly the
  bytes the model would have written: that is the byte-exact check of loads (and of local prefix hits).
- ``FakeEngine``: one vLLM instance (one DP rank): scheduler connector + scheduler + TP workers, in this process or
  each worker in its own process (``workers="processes"``, spawned; the scheduler output travels pickled, as vLLM's
  multiprocessing executor sends it).

Where vLLM is importable, ``vllm_classes=True`` builds vLLM's own ``SchedulerOutput``/``NewRequestData``/
``CachedRequestData``/``KVConnectorRole`` instead of the stand-in dataclasses (untested here: vLLM is not
installable on this machine).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import enum
import hashlib
import multiprocessing
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pegaflow._shmfile import map_file, shm_path
from pegaflow.client import PendingCall
from pegaflow.groups import layers_covered
from pegaflow.shm import KV_PLANES, PACKED, SharedKVCache
from pegaflow.vllm.block_hash import block_hashes as _block_hashes
from pegaflow.vllm.block_hash import hash_block_tokens

# ---------------------------------------------------------------- configuration stand-ins

# vLLM 0.29's standardized KV-cache layouts (vllm.v1.kv_cache_layout.KVCacheLayout): the physical order of the
# logical axes [L, B, H, N, C] (layer, block, KV head, token, K and V packed).
VLLM_LAYOUTS = ("LBHNC", "LBNHC", "LHBNC", "BLHNC", "BLNHC", "BHLNC")


class FakeRole(enum.Enum):
    """Stand-in for vLLM's KVConnectorRole (same member names and values)."""

    SCHEDULER = 0
    WORKER = 1


@dataclass
class FakeModelConfig:
    model: str
    num_layers: int
    num_kv_heads: int
    head_size: int
    dtype: str = "bfloat16"
    revision: str | None = None
    use_mla: bool = False
    enable_sleep_mode: bool = False

    def get_total_num_hidden_layers(self) -> int:
        return self.num_layers

    def get_total_num_kv_heads(self) -> int:
        return self.num_kv_heads

    def get_head_size(self) -> int:
        return self.head_size

    def get_num_kv_heads(self, parallel_config) -> int:
        return max(1, self.num_kv_heads // parallel_config.tensor_parallel_size)


@dataclass
class FakeCacheConfig:
    block_size: int
    cache_dtype: str = "auto"
    prefix_caching_hash_algo: str = "sha256_cbor"
    enable_prefix_caching: bool = False
    kv_cache_layout: str | None = None  # vLLM 0.29+: a standardized layout name (None: an older vLLM)


@dataclass
class FakeParallelConfig:
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1
    data_parallel_rank: int = 0
    rank: int = 0  # vLLM sets the worker's rank here (pp_rank * tp_size + tp_rank)


@dataclass
class FakeKVTransferConfig:
    engine_id: str
    kv_connector_extra_config: dict = field(default_factory=dict)
    kv_connector: str = "PegaKVConnector"
    kv_connector_module_path: str = "pegaflow.vllm"
    kv_role: str = "kv_both"
    kv_load_failure_policy: str = "recompute"


@dataclass
class FakeVllmConfig:
    model_config: FakeModelConfig
    cache_config: FakeCacheConfig
    parallel_config: FakeParallelConfig
    kv_transfer_config: FakeKVTransferConfig

    def for_rank(self, rank: int) -> FakeVllmConfig:
        return replace(self, parallel_config=replace(self.parallel_config, rank=rank))


@dataclass
class FakeKVCacheConfig:
    num_blocks: int


@dataclass(frozen=True)
class ModelShape:
    """The geometry of the fake model and its KV cache on each worker."""

    num_layers: int = 4
    num_kv_heads: int = 2  # total; each TP rank holds num_kv_heads / tp_size
    head_size: int = 64
    block_size: int = 16
    dtype: str = "bfloat16"
    # PACKED, KV_PLANES, "mla" (then head_size is half the latent size), or one of vLLM 0.29's standardized names
    # (VLLM_LAYOUTS: one allocation for all layers, strided per-layer views, CacheConfig.kv_cache_layout set)
    layout: str = PACKED
    num_gpu_blocks: int = 64
    model: str = "fake/llama-tiny"

    @property
    def use_mla(self) -> bool:
        return self.layout == "mla"


def make_vllm_config(
    shape: ModelShape,
    engine_id: str,
    extra_config: dict,
    *,
    tp_size: int = 1,
    kv_role: str = "kv_both",
    load_failure_policy: str = "recompute",
) -> FakeVllmConfig:
    return FakeVllmConfig(
        model_config=FakeModelConfig(
            model=shape.model,
            num_layers=shape.num_layers,
            num_kv_heads=1 if shape.use_mla else shape.num_kv_heads,
            head_size=2 * shape.head_size if shape.use_mla else shape.head_size,
            dtype=shape.dtype,
            use_mla=shape.use_mla,
        ),
        cache_config=FakeCacheConfig(
            block_size=shape.block_size, kv_cache_layout=shape.layout if shape.layout in VLLM_LAYOUTS else None
        ),
        parallel_config=FakeParallelConfig(tensor_parallel_size=tp_size),
        kv_transfer_config=FakeKVTransferConfig(
            engine_id=engine_id,
            kv_connector_extra_config=dict(extra_config),
            kv_role=kv_role,
            kv_load_failure_policy=load_failure_policy,
        ),
    )


# ---------------------------------------------------------------- request and scheduler-output stand-ins


class RequestStatus(enum.Enum):
    WAITING = "WAITING"
    WAITING_FOR_REMOTE_KVS = "WAITING_FOR_REMOTE_KVS"
    RUNNING = "RUNNING"
    PREEMPTED = "PREEMPTED"
    FINISHED_LENGTH_CAPPED = "FINISHED_LENGTH_CAPPED"
    FINISHED_ABORTED = "FINISHED_ABORTED"
    FINISHED_ERROR = "FINISHED_ERROR"

    @property
    def finished(self) -> bool:
        return self.name.startswith("FINISHED")


class FakeRequest:
    """Stand-in for vllm.v1.request.Request: token ids, ``block_hashes`` (sha256_cbor, full blocks), counters."""

    def __init__(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        max_tokens: int,
        block_size: int,
        kv_transfer_params: dict | None = None,
    ):
        if not prompt_token_ids:
            raise ValueError("a request needs at least one prompt token")
        self.request_id = request_id
        self.prompt_token_ids = list(prompt_token_ids)
        self.output_token_ids: list[int] = []
        self.max_tokens = max_tokens
        self.block_size = block_size
        self.num_computed_tokens = 0
        self.num_external_computed_tokens = 0
        self.status = RequestStatus.WAITING
        self.num_preemptions = 0
        # vLLM: sampling_params.extra_args["kv_transfer_params"], as the API client sent it (untrusted)
        self.kv_transfer_params = kv_transfer_params
        self.block_hashes: list[bytes] = _block_hashes(self.prompt_token_ids, block_size)

    @property
    def all_token_ids(self) -> list[int]:
        return self.prompt_token_ids + self.output_token_ids

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids) + len(self.output_token_ids)

    def is_finished(self) -> bool:
        return self.status.finished

    def append_output_token_ids(self, token: int) -> None:
        self.output_token_ids.append(token)
        tokens = self.all_token_ids
        while (len(self.block_hashes) + 1) * self.block_size <= len(tokens):
            i = len(self.block_hashes)
            parent = self.block_hashes[-1] if self.block_hashes else None
            self.block_hashes.append(hash_block_tokens(parent, tokens[i * self.block_size : (i + 1) * self.block_size]))


class FakeKVCacheBlocks:
    """Stand-in for KVCacheBlocks: ``get_block_ids()`` is a tuple of lists, one per KV cache group (one here)."""

    def __init__(self, block_ids: list[int]):
        self._block_ids = list(block_ids)

    def get_block_ids(self) -> tuple[list[int], ...]:
        return (list(self._block_ids),)


@dataclass
class FakeNewRequestData:
    req_id: str
    prompt_token_ids: list[int]
    block_ids: tuple[list[int], ...]
    num_computed_tokens: int


@dataclass
class FakeCachedRequestData:
    req_ids: list[str]
    resumed_req_ids: set[str]
    new_token_ids: list[list[int]]
    all_token_ids: dict[str, list[int]]
    new_block_ids: list[tuple[list[int], ...] | None]
    num_computed_tokens: list[int]
    num_output_tokens: list[int]

    @property
    def num_reqs(self) -> int:
        return len(self.req_ids)


@dataclass
class FakeSchedulerOutput:
    scheduled_new_reqs: list[FakeNewRequestData]
    scheduled_cached_reqs: FakeCachedRequestData
    num_scheduled_tokens: dict[str, int]
    total_num_scheduled_tokens: int
    finished_req_ids: set[str]
    preempted_req_ids: set[str] | None = None
    kv_connector_metadata: Any = None
    # Not a vLLM field: the token ids of every scheduled request. vLLM's workers keep these in their input batch
    # (they sampled them); the stand-in workers receive them so that they can derive each token's KV bytes.
    fake_token_ids: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class FakeKVConnectorOutput:
    finished_sending: set[str] | None = None
    finished_recving: set[str] | None = None
    invalid_block_ids: set[int] = field(default_factory=set)
    kv_connector_stats: Any = None


@dataclass
class FakeModelRunnerOutput:
    rank: int
    sampled_token_ids: dict[str, int]
    kv_connector_output: FakeKVConnectorOutput
    verified_blocks: int = 0
    mismatches: list[str] = field(default_factory=list)


def _classes(vllm_classes: bool) -> dict[str, Any]:
    """The request/output classes the stand-ins build: vLLM's own where asked for (and importable)."""
    if not vllm_classes:
        return {"role": FakeRole, "new": FakeNewRequestData, "cached": FakeCachedRequestData, "output": None}
    from pegaflow.vllm import _vllm

    classes = _vllm.scheduler_classes()
    KVConnectorRole, NewRequestData = classes["KVConnectorRole"], classes["NewRequestData"]
    CachedRequestData, SchedulerOutput = classes["CachedRequestData"], classes["SchedulerOutput"]

    def new(req_id, prompt_token_ids, block_ids, num_computed_tokens):
        return NewRequestData(
            req_id=req_id,
            prompt_token_ids=prompt_token_ids,
            mm_features=[],
            sampling_params=None,
            pooling_params=None,
            block_ids=block_ids,
            num_computed_tokens=num_computed_tokens,
            lora_request=None,
        )

    def output(new_reqs, cached, num_scheduled, finished, preempted, token_ids):
        out = SchedulerOutput(
            scheduled_new_reqs=new_reqs,
            scheduled_cached_reqs=cached,
            num_scheduled_tokens=num_scheduled,
            total_num_scheduled_tokens=sum(num_scheduled.values()),
            scheduled_spec_decode_tokens={},
            scheduled_encoder_inputs={},
            num_common_prefix_blocks=[],
            finished_req_ids=finished,
            free_encoder_mm_hashes=[],
            preempted_req_ids=preempted,
        )
        out.fake_token_ids = token_ids
        return out

    return {"role": KVConnectorRole, "new": new, "cached": CachedRequestData, "output": output}


# ---------------------------------------------------------------- KV bytes of the fake model


def token_digests(token_ids: list[int], previous: list[bytes] | None = None) -> list[bytes]:
    """One 32-byte digest per token position, chained over the prefix: position p's KV depends on tokens[0..p]."""
    digests = list(previous or [])
    state = digests[-1] if digests else b"pegaflow-fake-model"
    for token in token_ids[len(digests) :]:
        state = hashlib.sha256(state + int(token).to_bytes(8, "little")).digest()
        digests.append(state)
    return digests


def sampled_token(digest: bytes, vocab: int = 32000) -> int:
    return 1 + int.from_bytes(digest[:4], "little") % (vocab - 1)


class _KVWriter:
    """Where one token's KV lives in each layer (byte views: numpy over a SharedKVCache, or torch on a GPU), and
    the bytes the fake model writes there."""

    def __init__(self, byte_views: list, layout: str, rank: int):
        self.layout, self.rank = layout, rank
        self._views = byte_views
        self._torch = not isinstance(byte_views[0], np.ndarray)
        self.token_bytes = int(np.prod(tuple(self._slot(0, 0, 0).shape)))
        self._patterns = [
            ((np.arange(self.token_bytes, dtype=np.int64) * 7 + layer * 131 + rank * 17) & 0xFF).astype(np.uint8)
            for layer in range(len(byte_views))
        ]

    def _slot(self, layer: int, block: int, pos: int):
        view = self._views[layer]
        if self.layout == KV_PLANES:  # (2, nb, t, h, d*w)
            return view[:, block, pos]
        return view[block, :, pos]  # packed (nb, h, t, 2*d*w) and MLA (nb, 1, t, latent*w)

    def expected(self, layer: int, digest: bytes) -> np.ndarray:
        reps = -(-self.token_bytes // len(digest))
        return np.frombuffer(digest * reps, dtype=np.uint8)[: self.token_bytes] ^ self._patterns[layer]

    def write(self, block: int, pos: int, digest: bytes) -> None:
        for layer in range(len(self._views)):
            slot = self._slot(layer, block, pos)
            data = self.expected(layer, digest).reshape(tuple(slot.shape))
            if self._torch:
                import torch

                slot.copy_(torch.from_numpy(data.copy()), non_blocking=False)
            else:
                slot[...] = data

    def check(self, block: int, pos: int, digest: bytes) -> int | None:
        """The first layer whose bytes for this token differ from the model's, or None."""
        for layer in range(len(self._views)):
            slot = self._slot(layer, block, pos)
            actual = slot.reshape(-1).cpu().numpy() if self._torch else slot.reshape(-1)
            if not np.array_equal(actual, self.expected(layer, digest)):
                return layer
        return None

    def close(self) -> None:
        self._views = []


class _CudaKVCache:
    """The stand-in's KV cache on a GPU, shaped like SharedKVCache's layers: one torch allocation, every layer a
    view into it at its own offset (as vLLM allocates), with a gap between layers."""

    def __init__(self, num_layers, num_blocks, block_size, num_kv_heads, head_size, *, layout, dtype, gap=4096):
        import torch

        tdtype = getattr(torch, dtype)
        itemsize = torch.empty(0, dtype=tdtype).element_size()
        h, n, d = block_size, num_kv_heads, head_size
        layer_bytes = num_blocks * h * n * 2 * d * itemsize
        self.num_layers = num_layers
        self.layer_names = [f"model.layers.{i}.self_attn.attn" for i in range(num_layers)]
        self.allocation = torch.zeros(num_layers * (layer_bytes + gap), dtype=torch.uint8, device="cuda")
        self.layers = []
        for i in range(num_layers):
            raw = self.allocation[i * (layer_bytes + gap) : i * (layer_bytes + gap) + layer_bytes].view(tdtype)
            if layout == PACKED:
                self.layers.append(raw.view(num_blocks, h, n, 2 * d).permute(0, 2, 1, 3))
            else:
                self.layers.append(raw.view(2, num_blocks, h, n, d))

    def byte_views(self) -> list:
        import torch

        return [layer.view(torch.uint8) for layer in self.layers]

    def close(self) -> None:
        self.layers = []
        self.allocation = None


class GroupKVCache:
    """vLLM 0.29's KV cache of one KV-cache group: ONE allocation (here a shared-memory file the node maps) holding
    the logical axes [L, B, H, N, C] (C = K and V packed) in the physical order ``layout`` names (``LBNHC``, ...);
    each layer is an ``as_strided`` (B, H, N, C) view of it, not contiguous when blocks or heads are outermost."""

    def __init__(self, num_layers, num_blocks, block_size, num_kv_heads, head_size, *, layout, dtype):
        if layout not in VLLM_LAYOUTS:
            raise ValueError(f"{layout!r} is not one of vLLM's standardized layouts {sorted(VLLM_LAYOUTS)}")
        self.dtype = np.dtype(np.uint16 if dtype in ("bfloat16", "float16") else np.float32)
        sizes = {"L": num_layers, "B": num_blocks, "H": num_kv_heads, "N": block_size, "C": 2 * head_size}
        strides, step = {}, self.dtype.itemsize
        for axis in reversed(layout):  # physical order, innermost last
            strides[axis] = step
            step *= sizes[axis]
        self.size_bytes = step
        self.layout = layout
        self.num_layers = num_layers
        self.layer_names = [f"model.layers.{i}.self_attn.attn" for i in range(num_layers)]
        self.path = shm_path()
        self._mmap = map_file(self.path, self.size_bytes, create=True)
        base = np.frombuffer(self._mmap, dtype=self.dtype)
        self.layers = [
            np.lib.stride_tricks.as_strided(
                base[i * strides["L"] // self.dtype.itemsize :],
                shape=(num_blocks, num_kv_heads, block_size, 2 * head_size),
                strides=(strides["B"], strides["H"], strides["N"], strides["C"]),
            )
            for i in range(num_layers)
        ]

    def layer(self, i: int) -> np.ndarray:
        return self.layers[i]

    def as_torch(self, i: int):
        import torch

        return torch.from_numpy(self.layers[i])

    def byte_views(self) -> list:
        return [layer.view(np.uint8) for layer in self.layers]

    def close(self) -> None:
        self.layers = []
        if self._mmap is not None:
            with contextlib.suppress(BufferError):  # a view still lives (e.g. in a traceback): it keeps the mapping
                self._mmap.close()
            self._mmap = None

    def unlink(self) -> None:
        self.path.unlink(missing_ok=True)


# ---------------------------------------------------------------- the worker (one TP rank)


@dataclass
class WorkerSpec:
    """Everything a worker (possibly in another process) needs: picklable."""

    vllm_config: FakeVllmConfig
    shape: ModelShape
    rank: int
    # what register_kv_caches gets: "numpy" views or "torch" CPU tensors over a shared-memory file, or "cuda" tensors
    tensor_kind: str = "numpy"
    full_cudagraph: bool = False  # pretend to replay a full CUDA graph: per-layer hooks are skipped
    vllm_classes: bool = False


class FakeWorker:
    """One GPU worker's model runner, as far as the connector sees it. Owns its KV cache: a SharedKVCache (host
    "GPU memory") or, with ``tensor_kind="cuda"``, torch tensors on the GPU."""

    def __init__(self, spec: WorkerSpec):
        from pegaflow.vllm.connector import PegaKVConnector

        self.spec = spec
        shape = spec.shape
        self.rank = spec.rank
        tp = spec.vllm_config.parallel_config.tensor_parallel_size
        if shape.use_mla:
            heads, head_size, layout = 1, shape.head_size, PACKED
        else:
            if shape.num_kv_heads % tp:
                raise ValueError(f"{shape.num_kv_heads} KV heads do not split over TP {tp}")
            heads, head_size, layout = shape.num_kv_heads // tp, shape.head_size, shape.layout
        self.layout = KV_PLANES if shape.layout == KV_PLANES else PACKED
        geometry = (shape.num_layers, shape.num_gpu_blocks, shape.block_size, heads, head_size)
        if spec.tensor_kind == "cuda":  # the KV cache on the GPU, shared with the node by CUDA IPC
            self.cache = _CudaKVCache(*geometry, layout=layout, dtype=shape.dtype)
            byte_views = self.cache.byte_views()
        elif shape.layout in VLLM_LAYOUTS:  # vLLM 0.29: one allocation, strided per-layer views
            self.cache = GroupKVCache(*geometry, layout=shape.layout, dtype=shape.dtype)
            byte_views = self.cache.byte_views()
        else:  # host memory: a shared-memory file the node maps
            self.cache = SharedKVCache(*geometry, layout=layout, dtype=shape.dtype)
            byte_views = [self.cache.layer(i).view(np.uint8) for i in range(shape.num_layers)]
        # MLA: every TP rank computes the same latent cache (rank 0's bytes), which is why it is stored once.
        self.writer = _KVWriter(byte_views, self.layout, 0 if shape.use_mla else self.rank)
        self.layer_names = list(self.cache.layer_names)
        self.connector = None
        try:
            role = _classes(spec.vllm_classes)["role"].WORKER
            self.connector = PegaKVConnector(
                spec.vllm_config.for_rank(self.rank), role, FakeKVCacheConfig(shape.num_gpu_blocks)
            )
            self.connector.register_kv_caches(self._kv_caches())
        except BaseException:
            if self.connector is not None:
                self.connector.shutdown()
            self.writer.close()
            self.cache.close()
            if hasattr(self.cache, "unlink"):
                self.cache.unlink()
            raise
        self._tokens: dict[str, list[int]] = {}
        self._digests: dict[str, list[bytes]] = {}
        self._blocks: dict[str, list[int]] = {}
        self._finished_given: set[str] = set()
        self._decoys: list = []
        self.steps = 0

    def _kv_caches(self) -> dict:
        caches = {}
        for i, name in enumerate(self.layer_names):
            if self.spec.tensor_kind == "cuda":
                tensor = self.cache.layers[i]
            elif self.spec.tensor_kind == "torch":
                tensor = self.cache.as_torch(i)
            else:
                tensor = self.cache.layer(i)
            caches[name] = tensor[:, 0] if self.spec.shape.use_mla else tensor  # MLA: (blocks, block_size, latent)
        return caches

    # ---- one step ----

    def execute(self, so) -> FakeModelRunnerOutput:
        connector = self.connector
        self._update_states(so)
        meta = so.kv_connector_metadata
        if so.preempted_req_ids:
            connector.handle_preemptions(meta)  # current vLLM passes the step's metadata (older: the id set)
        connector.bind_connector_metadata(meta)
        connector.start_load_kv(None)
        verified, mismatches, sampled = self._forward(so)
        connector.wait_for_save()
        self._finished_given |= set(so.finished_req_ids)
        sending, recving = connector.get_finished(so.finished_req_ids)
        invalid = connector.get_block_ids_with_load_errors()
        stats = connector.get_kv_connector_stats()
        connector.clear_connector_metadata()
        for req_id in sending or ():
            if req_id not in self._finished_given:
                raise AssertionError(f"rank {self.rank}: finished_sending has {req_id}, never given to get_finished")
        self.steps += 1
        return FakeModelRunnerOutput(
            self.rank,
            sampled,
            FakeKVConnectorOutput(sending, recving, set(invalid), stats),
            verified,
            mismatches,
        )

    def _update_states(self, so) -> None:
        for req_id in so.finished_req_ids:
            self._tokens.pop(req_id, None)
            self._digests.pop(req_id, None)
            self._blocks.pop(req_id, None)
        for req_id in so.preempted_req_ids or ():
            self._blocks.pop(req_id, None)
        for new in so.scheduled_new_reqs:
            self._blocks[new.req_id] = list(new.block_ids[0])
        cached = so.scheduled_cached_reqs
        for i, req_id in enumerate(cached.req_ids):
            ids = cached.new_block_ids[i]
            if req_id in cached.resumed_req_ids:
                self._blocks[req_id] = list(ids[0]) if ids else []
            elif ids is not None:
                self._blocks.setdefault(req_id, []).extend(ids[0])
        for req_id, tokens in so.fake_token_ids.items():
            self._tokens[req_id] = list(tokens)
            self._digests[req_id] = token_digests(tokens, self._digests.get(req_id))

    def _forward(self, so) -> tuple[int, list[str], dict[str, int]]:
        bs = self.spec.shape.block_size
        first_time = {n.req_id: n.num_computed_tokens for n in so.scheduled_new_reqs}
        cached = so.scheduled_cached_reqs
        computed = dict(first_time)
        for i, req_id in enumerate(cached.req_ids):
            computed[req_id] = cached.num_computed_tokens[i]
            if req_id in cached.resumed_req_ids:
                first_time[req_id] = cached.num_computed_tokens[i]
        verified, mismatches, sampled = 0, [], {}
        # A request computed for the first time: every token counted as computed must already hold the model's bytes.
        for req_id, done in first_time.items():
            blocks, digests = self._blocks[req_id], self._digests[req_id]
            bad = None
            for pos in range(done):
                layer = self.writer.check(blocks[pos // bs], pos % bs, digests[pos])
                if layer is not None:
                    bad = (pos, layer)
                    break
            if bad is None:
                verified += done // bs
            else:
                mismatches.append(
                    f"rank {self.rank}: request {req_id} token {bad[0]} (block {bad[0] // bs} = GPU block"
                    f" {blocks[bad[0] // bs]}) layer {bad[1]} does not hold the model's bytes"
                )
        for req_id, count in so.num_scheduled_tokens.items():
            blocks, digests, start = self._blocks[req_id], self._digests[req_id], computed[req_id]
            for pos in range(start, start + count):
                self.writer.write(blocks[pos // bs], pos % bs, digests[pos])
            if start + count == len(digests):
                sampled[req_id] = sampled_token(digests[-1])
        if not self.spec.full_cudagraph:
            for name in self.layer_names:  # per-layer hooks (skipped during full CUDA-graph replay)
                self.connector.wait_for_layer_load(name)
                self.connector.save_kv_layer(name, None, None)
        return verified, mismatches, sampled

    # ---- test hooks ----

    def connector_totals(self) -> dict:
        return self.connector.counters.totals()

    def connected(self, timeout_s: float = 0.0) -> bool:
        link = self.connector.worker_side.link
        return link.wait_connected(timeout_s) if timeout_s else link.connected

    def saves_idle(self, timeout_s: float = 10.0) -> bool:
        return self.connector.worker_side.saves_idle(timeout_s)

    def delay_saves(self, seconds: float) -> None:
        """Makes every Save call wait first (a slow copy engine), so that a preemption finds a save in flight: the
        call is still submitted at once (``save_async``) and sent to the real node after ``seconds``."""
        side = self.connector.worker_side
        client = side._save_client
        original = client.save

        def slow_save_async(*args, **kwargs):
            future = concurrent.futures.Future()

            def later():
                time.sleep(seconds)
                try:
                    future.set_result(original(*args, **kwargs))
                except BaseException as e:  # noqa: BLE001 - the caller sees it from the PendingCall
                    future.set_exception(e)

            threading.Thread(target=later, name="pegaflow-test-slow-save", daemon=True).start()
            return PendingCall(future, "Save")

        client.save_async = slow_save_async

    def disable_preemption_fence(self) -> None:
        """Negative control: pretend the connector ignores preemptions (the tests must then see corruption)."""
        side = self.connector.worker_side
        side.handle_preemptions = lambda preempted: None

    def force_loads_pending(self) -> list[str]:
        """Marks every in-flight load's flag pending again: stands in for a copy that has not finished yet."""
        side = self.connector.worker_side
        with side._cond:
            loads = list(side._loads.values())
        for load in loads:
            if load.slot is not None:
                load.slot.reset()
        return [load.req_id for load in loads]

    def hold_load_flags(self) -> None:
        """From now on loads report into decoy flags the connector does not poll: to the connector they stay in
        flight (a copy that never finishes), until the node goes away or the load timeout passes."""
        from pegaflow.flag import LoadFlagFile

        side = self.connector.worker_side
        decoy = LoadFlagFile(slots=64)
        self._decoys.append(decoy)
        client = side.link.client
        original = client.load
        count = iter(range(1 << 30))

        def load(context_id, blocks, flag, lease_id=0):
            return original(context_id, blocks, decoy.slot(next(count) % decoy.slots), lease_id)

        client.load = load

    def wait_loads_issued(self, timeout_s: float = 10.0) -> bool:
        """Waits until the loader thread has sent every queued Load."""
        side = self.connector.worker_side
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with side._cond:
                if all(load.issued for load in side._loads.values()):
                    return True
            time.sleep(0.005)
        return False

    def in_flight_loads(self) -> list[str]:
        side = self.connector.worker_side
        with side._cond:
            return list(side._loads)

    def registration(self) -> dict:
        side = self.connector.worker_side
        return {
            "instance_id": side.instance_id,
            "namespace": self.connector.identity.namespace,
            "regions": len(side.regions),
            "layers": layers_covered(side.registrations),
            "entries": len(side.registrations),
            "replicated": all(r.replicated for r in side.registrations),
            "device": side.device,
        }

    def close(self) -> None:
        try:
            self.connector.shutdown()
        finally:
            for decoy in self._decoys:
                decoy.close()
                decoy.unlink()
            self.writer.close()
            self.cache.close()
            if hasattr(self.cache, "unlink"):
                self.cache.unlink()


# ---------------------------------------------------------------- workers in their own processes


def _worker_process_main(conn, spec: WorkerSpec) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING, format=f"[worker {spec.rank}] %(levelname)s %(name)s: %(message)s")
    try:
        worker = FakeWorker(spec)
    except BaseException as e:  # noqa: BLE001 - any failure goes back to the test process
        conn.send(("error", f"{e!r}\n{traceback.format_exc()}"))
        return
    conn.send(("ok", None))
    while True:
        try:
            op, args = conn.recv()
        except EOFError:
            worker.close()
            return
        try:
            if op == "close":
                worker.close()
                conn.send(("ok", None))
                return
            result = getattr(worker, op)(*args)
            conn.send(("ok", result))
        except BaseException as e:  # noqa: BLE001 - any failure goes back to the test process
            conn.send(("error", f"{e!r}\n{traceback.format_exc()}"))


class WorkerProcess:
    """A FakeWorker in its own (spawned) process, driven over a pipe; every call has a timeout."""

    def __init__(self, spec: WorkerSpec, timeout_s: float = 60.0):
        ctx = multiprocessing.get_context("spawn")  # no fork: gRPC and threads do not survive it
        self._conn, child = ctx.Pipe()
        self.rank = spec.rank
        self.timeout_s = timeout_s
        self.process = ctx.Process(target=_worker_process_main, args=(child, spec), daemon=True)
        self.process.start()
        child.close()
        self._await("start")

    def _await(self, what: str):
        if not self._conn.poll(self.timeout_s):
            self.process.kill()
            raise TimeoutError(f"worker process {self.rank}: no answer to {what} within {self.timeout_s} s")
        try:
            status, value = self._conn.recv()
        except EOFError:
            raise RuntimeError(
                f"worker process {self.rank} died during {what} (exit {self.process.exitcode})"
            ) from None
        if status != "ok":
            raise RuntimeError(f"worker process {self.rank} failed in {what}: {value}")
        return value

    def send(self, op: str, *args) -> None:
        self._conn.send((op, args))

    def receive(self, op: str):
        return self._await(op)

    def call(self, op: str, *args):
        self.send(op, *args)
        return self.receive(op)

    def execute(self, so) -> FakeModelRunnerOutput:
        return self.call("execute", so)

    def close(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(RuntimeError, TimeoutError, OSError):
                self.call("close")
            self.process.join(10)
            if self.process.is_alive():
                self.process.kill()
        self._conn.close()


class _InProcessWorker:
    """The same interface as WorkerProcess for a FakeWorker in this process."""

    def __init__(self, spec: WorkerSpec):
        self.worker = FakeWorker(spec)
        self.rank = spec.rank
        self._pending: list[tuple[str, tuple]] = []

    def send(self, op: str, *args) -> None:
        self._pending.append((op, args))

    def receive(self, op: str):
        name, args = self._pending.pop(0)
        return getattr(self.worker, name)(*args)

    def call(self, op: str, *args):
        return getattr(self.worker, op)(*args)

    def execute(self, so) -> FakeModelRunnerOutput:
        return self.worker.execute(so)

    def close(self) -> None:
        self.worker.close()


# ---------------------------------------------------------------- the scheduler


@dataclass
class RequestResult:
    request_id: str
    status: str
    output_token_ids: list[int]
    num_prompt_tokens: int
    external_tokens: int  # tokens vLLM got from the connector (the last lookup's answer that was used)
    local_tokens: int  # local prefix-cache hit
    preemptions: int
    held_for_saves: bool
    kv_transfer_params: dict | None = None  # what request_finished returned (vLLM hands it to the API client)


class FakeScheduler:
    """vLLM's v1 scheduler, reduced to what the connector sees (see the module docstring)."""

    def __init__(
        self,
        connector,
        *,
        num_gpu_blocks: int,
        block_size: int,
        num_workers: int,
        max_num_batched_tokens: int = 128,
        enable_prefix_caching: bool = False,
        load_failure_policy: str = "recompute",
        lookups_per_attempt: int = 2,
        vllm_classes: bool = False,
    ):
        self.connector = connector
        self.block_size = block_size
        self.num_workers = num_workers
        self.max_num_batched_tokens = max_num_batched_tokens
        self.enable_prefix_caching = enable_prefix_caching
        self.load_failure_policy = load_failure_policy
        self.lookups_per_attempt = lookups_per_attempt
        self._classes = _classes(vllm_classes)
        self.num_gpu_blocks = num_gpu_blocks
        self._free: deque[int] = deque(range(num_gpu_blocks))
        self._refs = [0] * num_gpu_blocks
        self._cached: dict[bytes, int] = {}  # local prefix cache: hash -> block
        self._block_hash: dict[int, bytes] = {}
        self.requests: dict[str, FakeRequest] = {}
        self._blocks: dict[str, list[int]] = {}
        self.waiting: deque[FakeRequest] = deque()
        self.running: list[FakeRequest] = []
        self._finished_req_ids: set[str] = set()
        self._finished_recving: set[str] = set()
        self._failed_recving: set[str] = set()
        self._remote_target: dict[str, int] = {}  # computed tokens once the async load is done
        self._connector_held: set[str] = set()
        self._known_to_workers: set[str] = set()
        self._recv_counts: dict[str, int] = {}
        self._send_counts: dict[str, int] = {}
        self.results: dict[str, RequestResult] = {}
        self.step_count = 0
        self.total_preemptions = 0
        self.stats_log: list[dict] = []

    # ---- requests ----

    def add_request(self, request: FakeRequest) -> None:
        if request.request_id in self.requests:
            raise ValueError(f"request {request.request_id} exists")
        self.requests[request.request_id] = request
        self.waiting.append(request)

    def abort_request(self, req_id: str) -> None:
        request = self.requests.get(req_id)
        if request is None or request.is_finished():
            return
        # vLLM holds the blocks of a request aborted during its async load until finished_recving arrives.
        delay = request.status == RequestStatus.WAITING_FOR_REMOTE_KVS and req_id not in self._finished_recving
        if request in self.running:
            self.running.remove(request)
        if request in self.waiting:
            self.waiting.remove(request)
        request.status = RequestStatus.FINISHED_ABORTED
        self._free_request(request, delay)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def has_work(self) -> bool:
        """Anything left, including finished requests whose blocks the connector still holds."""
        return self.has_unfinished() or any(r.is_finished() for r in self.requests.values())

    # ---- blocks ----

    def _take_block(self) -> int | None:
        if not self._free:
            return None
        block = self._free.popleft()
        old = self._block_hash.pop(block, None)
        if old is not None and self._cached.get(old) == block:
            del self._cached[old]
        self._refs[block] = 1
        return block

    def _allocate(self, request: FakeRequest, num_tokens: int) -> bool:
        blocks = self._blocks.setdefault(request.request_id, [])
        needed = -(-num_tokens // self.block_size) - len(blocks)
        if needed > len(self._free):
            return False
        for _ in range(max(0, needed)):
            blocks.append(self._take_block())
        return True

    def _free_blocks_of(self, req_id: str) -> None:
        for block in self._blocks.pop(req_id, []):
            self._refs[block] -= 1
            if self._refs[block] == 0:
                self._free.append(block)

    def _local_hit(self, request: FakeRequest) -> list[int]:
        if not self.enable_prefix_caching:
            return []
        limit = (request.num_tokens - 1) // self.block_size
        hit = []
        for block_hash in request.block_hashes[:limit]:
            block = self._cached.get(block_hash)
            if block is None:
                break
            hit.append(block)
        return hit

    def _cache_blocks(self, request: FakeRequest) -> None:
        if not self.enable_prefix_caching:
            return
        blocks = self._blocks.get(request.request_id, [])
        full = min(len(request.block_hashes), request.num_computed_tokens // self.block_size, len(blocks))
        for i in range(full):
            block_hash = request.block_hashes[i]
            if block_hash not in self._cached:
                self._cached[block_hash] = blocks[i]
                self._block_hash[blocks[i]] = block_hash

    def reset_prefix_cache(self) -> None:
        self._cached.clear()
        self._block_hash.clear()

    def _preempt(self, victim: FakeRequest) -> None:
        self.running.remove(victim)
        self._free_blocks_of(victim.request_id)
        victim.num_computed_tokens = 0
        victim.status = RequestStatus.PREEMPTED
        victim.num_preemptions += 1
        self.total_preemptions += 1
        self.waiting.appendleft(victim)

    # ---- schedule ----

    def schedule(self):
        budget = self.max_num_batched_tokens
        num_scheduled: dict[str, int] = {}
        new_reqs, cached_ids, new_block_ids, resumed = [], [], {}, set()
        preempted: set[str] = set()

        for request in list(self.running):
            if budget <= 0 or request not in self.running:
                continue
            count = min(request.num_tokens - request.num_computed_tokens, budget)
            if count <= 0:
                continue
            before = len(self._blocks.get(request.request_id, []))
            while not self._allocate(request, request.num_computed_tokens + count):
                victim = self.running[-1]
                self._preempt(victim)
                preempted.add(victim.request_id)
                if victim is request:
                    break
            if request.status is RequestStatus.PREEMPTED:
                continue
            num_scheduled[request.request_id] = count
            cached_ids.append(request.request_id)
            new_block_ids[request.request_id] = self._blocks[request.request_id][before:]
            budget -= count

        skipped: list[FakeRequest] = []
        while self.waiting and budget > 0 and not preempted:
            request = self.waiting.popleft()
            req_id = request.request_id
            if request.status is RequestStatus.WAITING_FOR_REMOTE_KVS:
                if req_id not in self._finished_recving:
                    skipped.append(request)
                    continue
                self._promote(request)
            fresh = request.num_computed_tokens == 0
            local_blocks: list[int] = []
            external, load_async = 0, False
            if fresh:
                if self._blocks.get(req_id):
                    raise AssertionError(f"request {req_id} starts with blocks {self._blocks[req_id]}")
                local_blocks = self._local_hit(request)
                num_local = len(local_blocks) * self.block_size
                answers = {
                    self.connector.get_num_new_matched_tokens(request, num_local)
                    for _ in range(self.lookups_per_attempt)
                }
                if len(answers) != 1:
                    raise AssertionError(f"get_num_new_matched_tokens is not side-effect free: {answers}")
                external, load_async = answers.pop()
                if external is None:
                    skipped.append(request)
                    continue
                if external < 0 or num_local + external > request.num_tokens:
                    raise AssertionError(f"request {req_id}: {external} external tokens after {num_local} local")
                if external == 0 and load_async:
                    raise AssertionError("a 0-token answer must not be asynchronous")
                if external and not load_async and num_local + external >= request.num_tokens:
                    raise AssertionError("a synchronous load must leave at least one token to compute")
                computed = num_local + external
                for block in local_blocks:
                    if self._refs[block] == 0:
                        self._free.remove(block)
                    self._refs[block] += 1
                self._blocks[req_id] = list(local_blocks)
            else:  # promoted after its load: its blocks are allocated
                num_local = 0
                computed = request.num_computed_tokens
            count = 0 if load_async else min(request.num_tokens - computed, budget)
            if not self._allocate(request, computed + count):
                if fresh:
                    self._free_blocks_of(req_id)
                self.waiting.appendleft(request)
                break
            self.connector.update_state_after_alloc(
                request, FakeKVCacheBlocks(self._blocks[req_id]), external if fresh else 0
            )
            if fresh:
                request.num_external_computed_tokens = external
                request.local_tokens = num_local  # for the results
            if load_async:
                request.status = RequestStatus.WAITING_FOR_REMOTE_KVS
                request.num_computed_tokens = num_local
                self._remote_target[req_id] = computed
                skipped.append(request)
                continue
            request.num_computed_tokens = computed
            request.status = RequestStatus.RUNNING
            self.running.append(request)
            num_scheduled[req_id] = count
            budget -= count
            if req_id in self._known_to_workers:  # resumed after preemption: sent as a cached request
                resumed.add(req_id)
                cached_ids.append(req_id)
                new_block_ids[req_id] = list(self._blocks[req_id])
            else:
                self._known_to_workers.add(req_id)
                new_reqs.append(
                    self._classes["new"](
                        req_id, list(request.prompt_token_ids), (list(self._blocks[req_id]),), computed
                    )
                )
        for request in reversed(skipped):
            self.waiting.appendleft(request)

        cached = self._classes["cached"](
            req_ids=cached_ids,
            resumed_req_ids=resumed,
            new_token_ids=[[] for _ in cached_ids],
            all_token_ids={},
            new_block_ids=[(new_block_ids[r],) if new_block_ids.get(r) or r in resumed else None for r in cached_ids],
            num_computed_tokens=[self.requests[r].num_computed_tokens for r in cached_ids],
            num_output_tokens=[len(self.requests[r].output_token_ids) for r in cached_ids],
        )
        token_ids = {r: self.requests[r].all_token_ids for r in num_scheduled}
        finished, self._finished_req_ids = self._finished_req_ids, set()
        if self._classes["output"] is not None:
            so = self._classes["output"](new_reqs, cached, num_scheduled, finished, preempted, token_ids)
        else:
            so = FakeSchedulerOutput(
                scheduled_new_reqs=new_reqs,
                scheduled_cached_reqs=cached,
                num_scheduled_tokens=num_scheduled,
                total_num_scheduled_tokens=sum(num_scheduled.values()),
                finished_req_ids=finished,
                preempted_req_ids=preempted,
                fake_token_ids=token_ids,
            )
        so.kv_connector_metadata = self.connector.build_connector_meta(so)
        for req_id, count in num_scheduled.items():  # _update_after_schedule
            request = self.requests[req_id]
            request.num_computed_tokens += count
        self.step_count += 1
        return so

    def _promote(self, request: FakeRequest) -> None:
        """vLLM's _update_waiting_for_remote_kv: the load is done (maybe partly failed)."""
        req_id = request.request_id
        self._finished_recving.discard(req_id)
        target = self._remote_target.pop(req_id)
        if req_id in self._failed_recving:
            self._failed_recving.discard(req_id)  # num_computed_tokens was cut at the first bad block
            target = min(target, request.num_computed_tokens_after_failure)
        if target >= request.num_tokens:
            target = request.num_tokens - 1  # full-prompt hit: vLLM recomputes the last token
        if target == 0:
            self._free_blocks_of(req_id)  # nothing usable arrived: start over like a new request
        request.num_computed_tokens = target
        request.status = RequestStatus.PREEMPTED if request.num_preemptions else RequestStatus.WAITING
        self._cache_blocks(request)

    # ---- outputs ----

    def update_from_output(self, so, outputs: list[FakeModelRunnerOutput]) -> None:
        if len(outputs) != self.num_workers:
            raise AssertionError(f"{len(outputs)} worker outputs, expected {self.num_workers}")
        sending, recving, invalid, stats = set(), set(), set(), None
        for out in outputs:
            kv = out.kv_connector_output
            for req_id in kv.finished_sending or ():
                self._send_counts[req_id] = self._send_counts.get(req_id, 0) + 1
                if self._send_counts[req_id] == self.num_workers:
                    sending.add(req_id)
                    del self._send_counts[req_id]
            for req_id in kv.finished_recving or ():
                self._recv_counts[req_id] = self._recv_counts.get(req_id, 0) + 1
                if self._recv_counts[req_id] == self.num_workers:
                    recving.add(req_id)
                    del self._recv_counts[req_id]
            invalid |= kv.invalid_block_ids
            if kv.kv_connector_stats is not None:
                stats = kv.kv_connector_stats if stats is None else stats.aggregate(kv.kv_connector_stats)
        own = self.connector.get_kv_connector_stats()
        if own is not None:
            stats = own if stats is None else stats.aggregate(own)
        if stats is not None:
            self.stats_log.append(dict(stats.data))

        if invalid:
            self._handle_invalid_blocks(invalid)

        sampled = outputs[0].sampled_token_ids
        for req_id, token in sampled.items():
            request = self.requests.get(req_id)
            if request is None or request.status is not RequestStatus.RUNNING:
                continue
            request.append_output_token_ids(token)
            self._cache_blocks(request)
            if len(request.output_token_ids) >= request.max_tokens:
                self.running.remove(request)
                request.status = RequestStatus.FINISHED_LENGTH_CAPPED
                self._free_request(request)

        connector_output = FakeKVConnectorOutput(sending or None, recving or None, invalid, stats)
        self.connector.update_connector_output(connector_output)
        for req_id in recving:
            if req_id not in self.requests:
                raise AssertionError(f"finished_recving has unknown request {req_id}")
            request = self.requests[req_id]
            if request.status is RequestStatus.WAITING_FOR_REMOTE_KVS:
                self._finished_recving.add(req_id)
            else:
                if not request.is_finished():
                    raise AssertionError(f"finished_recving for {req_id} in state {request.status}")
                self._free_finished(request)
        for req_id in sending:
            if req_id not in self.requests or req_id not in self._connector_held:
                raise AssertionError(f"finished_sending for {req_id}, whose blocks the connector did not hold")
            self._connector_held.discard(req_id)
            self._free_finished(self.requests[req_id])

    def _handle_invalid_blocks(self, invalid: set[int]) -> None:
        for request in list(self.requests.values()):
            blocks = self._blocks.get(request.request_id, [])
            bad = [i for i, b in enumerate(blocks) if b in invalid]
            if not bad or request.is_finished():
                continue
            if self.load_failure_policy == "fail":
                delay = request.status is RequestStatus.WAITING_FOR_REMOTE_KVS  # held until finished_recving
                if request in self.running:
                    self.running.remove(request)
                if request in self.waiting:
                    self.waiting.remove(request)
                request.status = RequestStatus.FINISHED_ERROR
                self._free_request(request, delay)
                continue
            cut = bad[0] * self.block_size
            if request.status is RequestStatus.WAITING_FOR_REMOTE_KVS:
                self._failed_recving.add(request.request_id)
                request.num_computed_tokens_after_failure = cut
            else:
                request.num_computed_tokens = min(request.num_computed_tokens, cut)

    def _free_request(self, request: FakeRequest, delay: bool = False) -> None:
        req_id = request.request_id
        self._finished_req_ids.add(req_id)
        held, params = self.connector.request_finished(request, list(self._blocks.get(req_id, [])))
        if held:
            self._connector_held.add(req_id)
        self.results[req_id] = RequestResult(
            req_id,
            request.status.name,
            list(request.output_token_ids),
            len(request.prompt_token_ids),
            request.num_external_computed_tokens,
            getattr(request, "local_tokens", 0),
            request.num_preemptions,
            held,
            params,
        )
        if not (held or delay):
            self._free_finished(request)

    def _free_finished(self, request: FakeRequest) -> None:
        self._free_blocks_of(request.request_id)
        self._remote_target.pop(request.request_id, None)
        del self.requests[request.request_id]


# ---------------------------------------------------------------- one engine


@dataclass
class EngineOptions:
    shape: ModelShape = field(default_factory=ModelShape)
    extra_config: dict = field(default_factory=dict)
    engine_id: str = ""
    tp_size: int = 1
    workers: str = "inprocess"  # or "processes"
    tensor_kind: str = "numpy"  # or "torch" (CPU, over the same shared-memory file) or "cuda"
    max_num_batched_tokens: int = 128
    enable_prefix_caching: bool = False
    load_failure_policy: str = "recompute"
    kv_role: str = "kv_both"
    full_cudagraph: bool = False
    vllm_classes: bool = False


class FakeEngine:
    """One vLLM instance: the scheduler connector, the FakeScheduler and ``tp_size`` FakeWorkers."""

    def __init__(self, options: EngineOptions):
        from pegaflow.vllm.connector import PegaKVConnector

        self.options = options
        shape = options.shape
        engine_id = options.engine_id or f"fake-engine-{uuid.uuid4().hex[:8]}"
        self.vllm_config = make_vllm_config(
            shape,
            engine_id,
            options.extra_config,
            tp_size=options.tp_size,
            kv_role=options.kv_role,
            load_failure_policy=options.load_failure_policy,
        )
        self.workers: list = []
        self.connector = None
        try:
            for rank in range(options.tp_size):
                spec = WorkerSpec(
                    self.vllm_config, shape, rank, options.tensor_kind, options.full_cudagraph, options.vllm_classes
                )
                if options.workers == "processes":
                    self.workers.append(WorkerProcess(spec))
                else:
                    self.workers.append(_InProcessWorker(spec))
            role = _classes(options.vllm_classes)["role"].SCHEDULER
            self.connector = PegaKVConnector(self.vllm_config, role, FakeKVCacheConfig(shape.num_gpu_blocks))
        except BaseException:
            self.close()
            raise
        self.scheduler = FakeScheduler(
            self.connector,
            num_gpu_blocks=shape.num_gpu_blocks,
            block_size=shape.block_size,
            num_workers=options.tp_size,
            max_num_batched_tokens=options.max_num_batched_tokens,
            enable_prefix_caching=options.enable_prefix_caching,
            load_failure_policy=options.load_failure_policy,
            vllm_classes=options.vllm_classes,
        )
        self.verified_blocks = 0
        self.mismatches: list[str] = []

    @property
    def namespace(self) -> str:
        return self.connector.identity.namespace

    def add_request(
        self, request_id: str, prompt_token_ids: list[int], max_tokens: int = 4, kv_transfer_params: dict | None = None
    ) -> FakeRequest:
        request = FakeRequest(
            request_id, prompt_token_ids, max_tokens, self.options.shape.block_size, kv_transfer_params
        )
        self.scheduler.add_request(request)
        return request

    # ---- stepping ----

    def schedule(self):
        return self.scheduler.schedule()

    def execute(self, so) -> list[FakeModelRunnerOutput]:
        for worker in self.workers:  # all ranks run the step concurrently
            worker.send("execute", so)
        outputs = [worker.receive("execute") for worker in self.workers]
        for out in outputs:
            self.verified_blocks += out.verified_blocks
            self.mismatches.extend(out.mismatches)
        return outputs

    def update(self, so, outputs) -> None:
        self.scheduler.update_from_output(so, outputs)

    def step(self) -> None:
        so = self.schedule()
        self.update(so, self.execute(so))

    def run(self, max_steps: int = 500, idle_sleep_s: float = 0.002) -> int:
        """Steps until every request finished and every held block was released; returns the steps taken."""
        steps = 0
        while self.scheduler.has_work():
            if steps >= max_steps:
                raise AssertionError(
                    f"not done after {max_steps} steps: waiting {[r.request_id for r in self.scheduler.waiting]},"
                    f" running {[r.request_id for r in self.scheduler.running]},"
                    f" held {sorted(self.scheduler._connector_held)}"
                )
            self.step()
            steps += 1
            if not self.scheduler.running:
                time.sleep(idle_sleep_s)  # waiting on loads or saves: let the node work
        return steps

    def call_workers(self, op: str, *args) -> list:
        return [worker.call(op, *args) for worker in self.workers]

    def totals(self) -> dict:
        """Connector counters since start, summed over the scheduler side and every worker."""
        total: dict[str, float] = dict(self.connector.counters.totals())
        for worker_totals in self.call_workers("connector_totals"):
            for key, value in worker_totals.items():
                total[key] = max(total.get(key, 0), value) if key.endswith("_max") else total.get(key, 0) + value
        return total

    def close(self) -> None:
        errors = []
        for worker in self.workers:
            try:
                worker.close()
            except Exception as e:  # noqa: BLE001 - close everything, then complain
                errors.append(e)
        self.workers = []
        if self.connector is not None:
            self.connector.shutdown()
            self.connector = None
        if errors:
            raise errors[0]

    def __enter__(self) -> FakeEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def prompt(seed: int, length: int, vocab: int = 32000) -> list[int]:
    """A reproducible prompt of ``length`` token ids."""
    rng = np.random.default_rng(seed)
    return [int(t) for t in rng.integers(1, vocab, size=length)]


__all__ = [
    "EngineOptions",
    "FakeEngine",
    "FakeRequest",
    "FakeScheduler",
    "FakeWorker",
    "ModelShape",
    "RequestResult",
    "WorkerProcess",
    "WorkerSpec",
    "prompt",
]
