"""``PegaKVConnector``: the vLLM v1 KV connector class (what ``kv_connector_module_path`` + ``kv_connector`` load).

vLLM builds it twice, never sharing memory: role SCHEDULER in the engine-core process (lookups, leases, per-step
metadata; ``pegaflow.vllm.scheduler``) and role WORKER in each GPU worker (registration, loads, saves;
``pegaflow.vllm.worker``). This class only routes vLLM's calls to the side its role has and answers the
capability questions. When vLLM is installed it subclasses vLLM's ``KVConnectorBase_V1``; without vLLM it is a plain
class with the same methods (tests and the demo drive it through vLLM-shaped stand-ins).

Not ``SupportsHMA``: vLLM then disables the hybrid KV cache manager (full-attention models only).
"""

from __future__ import annotations

import logging
from typing import Any

from pegaflow.vllm import _vllm
from pegaflow.vllm.config import ConnectorSettings, EngineIdentity
from pegaflow.vllm.metadata import PegaConnectorMetadata
from pegaflow.vllm.stats import ConnectorCounters, PegaKVConnectorStats

_log = logging.getLogger(__name__)

_Base = _vllm.connector_base()


def _role_name(role) -> str:
    name = getattr(role, "name", None)
    if name is None and isinstance(role, int):
        name = {0: "SCHEDULER", 1: "WORKER"}.get(role)
    if name not in ("SCHEDULER", "WORKER"):
        raise ValueError(f"unknown KV connector role {role!r}")
    return name


class PegaKVConnector(_Base):
    """PegaFlow's KV connector: blocks saved to and loaded from the local PegaFlow node."""

    def __init__(self, vllm_config, role, kv_cache_config=None):
        if _Base is not object:
            super().__init__(vllm_config, role, kv_cache_config)
        else:
            self._connector_metadata = None
            self._vllm_config = vllm_config
            self._kv_transfer_config = vllm_config.kv_transfer_config
            self._kv_cache_config = kv_cache_config
            self._role = role
        if self._kv_transfer_config is None:
            raise ValueError("kv_transfer_config must be set for PegaKVConnector")
        extra = getattr(self._kv_transfer_config, "kv_connector_extra_config", None) or {}
        self.settings = ConnectorSettings.from_extra_config(extra)
        self.identity = EngineIdentity.from_vllm_config(vllm_config, self.settings)
        self.counters = ConnectorCounters()
        self.role_name = _role_name(role)
        self.scheduler_side = None
        self.worker_side = None
        if self.role_name == "SCHEDULER":
            from pegaflow.vllm.scheduler import SchedulerSide

            self.scheduler_side = SchedulerSide(self.identity, self.settings, self.counters)
        else:
            from pegaflow.vllm.worker import WorkerSide

            self.worker_side = WorkerSide(self.identity, self.settings, self.counters, vllm_config, kv_cache_config)

    if _Base is object:

        @property
        def role(self):
            return self._role

    # ---- capabilities ----

    @property
    def requires_kv_delivery(self) -> bool:
        return False  # an offload/cache connector: vLLM never waits for us to deliver KV it did not ask for

    @property
    def prefer_cross_layer_blocks(self) -> bool:
        return False

    @classmethod
    def requires_piecewise_for_cudagraph(cls, extra_config=None) -> bool:
        return False  # loads start in start_load_kv and saves in wait_for_save: no per-layer hook is needed

    @classmethod
    def get_required_kvcache_layout(cls, vllm_config=None) -> str | None:
        return None  # any layout pegaflow.vllm.kvlayout understands (the namespace records it)

    @classmethod
    def build_kv_connector_stats(cls, data: dict[str, Any] | None = None) -> PegaKVConnectorStats:
        return PegaKVConnectorStats(data=dict(data or {}))

    def get_finished_count(self) -> int | None:
        return None

    # ---- worker side ----

    def _worker(self):
        if self.worker_side is None:
            raise RuntimeError("this PegaKVConnector has the SCHEDULER role; worker methods are not available")
        return self.worker_side

    def _scheduler(self):
        if self.scheduler_side is None:
            raise RuntimeError("this PegaKVConnector has the WORKER role; scheduler methods are not available")
        return self.scheduler_side

    def bind_connector_metadata(self, connector_metadata) -> None:
        if not isinstance(connector_metadata, PegaConnectorMetadata):
            raise TypeError(f"expected PegaConnectorMetadata, got {type(connector_metadata).__name__}")
        self._connector_metadata = connector_metadata
        self._worker().bind_connector_metadata(connector_metadata)

    def clear_connector_metadata(self) -> None:
        self._connector_metadata = None
        if self.worker_side is not None:
            self.worker_side.clear_connector_metadata()

    def _get_connector_metadata(self):
        assert self._connector_metadata is not None
        return self._connector_metadata

    def has_connector_metadata(self) -> bool:
        return self._connector_metadata is not None

    def register_kv_caches(self, kv_caches) -> None:
        self._worker().register_kv_caches(kv_caches)

    def handle_preemptions(self, preempted) -> None:
        """``preempted``: this step's metadata (current vLLM) or the set of preempted request ids (older vLLM)."""
        self._worker().handle_preemptions(preempted)

    def start_load_kv(self, forward_context, **kwargs) -> None:
        self._worker().start_load_kv()

    def wait_for_layer_load(self, layer_name: str) -> None:
        return None  # loads are whole-request and finished before vLLM schedules the request

    def save_kv_layer(self, layer_name: str, kv_layer, attn_metadata, **kwargs) -> None:
        return None  # saves are issued from wait_for_save, after the forward's kernels

    def wait_for_save(self) -> None:
        self._worker().wait_for_save()

    def get_finished(self, finished_req_ids) -> tuple[set[str] | None, set[str] | None]:
        return self._worker().get_finished(finished_req_ids)

    def get_block_ids_with_load_errors(self) -> set[int]:
        return self._worker().get_block_ids_with_load_errors()

    # ---- scheduler side ----

    def get_num_new_matched_tokens(self, request, num_computed_tokens: int) -> tuple[int | None, bool]:
        return self._scheduler().get_num_new_matched_tokens(request, num_computed_tokens)

    def update_state_after_alloc(self, request, blocks, num_external_tokens: int) -> None:
        self._scheduler().update_state_after_alloc(request, blocks, num_external_tokens)

    def build_connector_meta(self, scheduler_output) -> PegaConnectorMetadata:
        return self._scheduler().build_connector_meta(scheduler_output)

    def update_connector_output(self, connector_output) -> None:
        self._scheduler().update_connector_output(connector_output)

    def request_finished(self, request, block_ids) -> tuple[bool, dict[str, Any] | None]:
        return self._scheduler().request_finished(request, block_ids)

    def take_events(self):
        return ()

    # ---- both ----

    def get_kv_connector_stats(self) -> PegaKVConnectorStats | None:
        data = self.counters.snapshot_and_reset()
        return PegaKVConnectorStats(data=data) if any(data.values()) else None

    def shutdown(self) -> None:
        if self.scheduler_side is not None:
            self.scheduler_side.shutdown()
        if self.worker_side is not None:
            self.worker_side.shutdown()
