"""The ONE module of pegaflow that imports vLLM — every import is inside a function, none at module import.

The vLLM v1 connector interface moves every few weeks, so everything that touches vLLM's own code lives here and
falls back to plain Python when vLLM is not installed (tests, the demo, machines without vLLM):

- ``connector_base()`` / ``metadata_base()`` / ``stats_base()``: vLLM's base classes, or ``object``/a local
  stand-in. vLLM checks ``isinstance(connector, KVConnectorBase)`` in its model runner, so the real base matters.
- ``parallel_ranks(vllm_config)``: this worker's TP and PP rank, from vLLM's process groups when they exist.
- ``layer_index(layer_name)``: the global layer index in a layer name (``model.layers.12.self_attn.attn`` -> 12).
- ``scheduler_classes()``: vLLM's scheduler-output classes, for the stand-ins in ``pegaflow_testing.fake_vllm``.

Everything else reads ``vllm_config`` by attribute (see ``pegaflow.vllm.config``), which needs no import.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any


@functools.cache
def vllm_version() -> str | None:
    """vLLM's version if vLLM can be imported here, else None."""
    try:
        import vllm
    except ImportError:
        return None
    return getattr(vllm, "__version__", "unknown")


def vllm_available() -> bool:
    return vllm_version() is not None


@functools.cache
def connector_base() -> type:
    """``KVConnectorBase_V1`` when vLLM is importable, else ``object``."""
    if not vllm_available():
        return object
    from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorBase_V1

    return KVConnectorBase_V1


@functools.cache
def metadata_base() -> type:
    """``KVConnectorMetadata`` (an empty ABC) when vLLM is importable, else ``object``."""
    if not vllm_available():
        return object
    from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorMetadata

    return KVConnectorMetadata


@dataclass
class _PlainStats:
    """Stand-in for vLLM's ``KVConnectorStats`` dataclass (a ``data`` dict; subclasses aggregate and reduce)."""

    data: dict[str, Any] = field(default_factory=dict)


@functools.cache
def stats_base() -> type:
    """``KVConnectorStats`` when vLLM is importable (and has it), else a plain dataclass with ``data``."""
    if not vllm_available():
        return _PlainStats
    try:
        from vllm.distributed.kv_transfer.kv_connector.v1.metrics import (
            KVConnectorStats,
        )
    except ImportError:  # older vLLM without connector stats
        return _PlainStats
    return KVConnectorStats


def scheduler_classes() -> dict[str, type]:
    """vLLM's KVConnectorRole and scheduler-output dataclasses (for the stand-ins' vllm_classes mode)."""
    from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorRole
    from vllm.v1.core.sched.output import (
        CachedRequestData,
        NewRequestData,
        SchedulerOutput,
    )

    return {
        "KVConnectorRole": KVConnectorRole,
        "NewRequestData": NewRequestData,
        "CachedRequestData": CachedRequestData,
        "SchedulerOutput": SchedulerOutput,
    }


@dataclass(frozen=True)
class ParallelRanks:
    tp_rank: int
    tp_size: int
    pp_rank: int
    pp_size: int


def parallel_ranks(vllm_config) -> ParallelRanks:
    """This worker's ranks: vLLM's initialised process groups when available, else ``parallel_config.rank``.

    vLLM numbers the workers of one engine (one DP rank) ``rank = pp_rank * tp_size + tp_rank``; the fallback uses
    that, which is also how the vLLM-shaped stand-ins describe a worker.
    """
    pc = vllm_config.parallel_config
    tp_size = int(getattr(pc, "tensor_parallel_size", 1) or 1)
    pp_size = int(getattr(pc, "pipeline_parallel_size", 1) or 1)
    if vllm_available():
        try:
            from vllm.distributed.parallel_state import (
                get_pp_group,
                get_tensor_model_parallel_rank,
                model_parallel_is_initialized,
            )
        except ImportError:
            pass
        else:
            if model_parallel_is_initialized():
                return ParallelRanks(get_tensor_model_parallel_rank(), tp_size, get_pp_group().rank_in_group, pp_size)
    rank = int(getattr(pc, "rank", 0) or 0)
    return ParallelRanks(rank % tp_size, tp_size, (rank // tp_size) % pp_size, pp_size)


def layer_index(layer_name: str) -> int:
    """The global layer index in ``layer_name``: vLLM's ``extract_layer_index`` when available, else the one integer
    among the dot-separated parts. Raises ValueError when there is not exactly one."""
    if vllm_available():
        try:
            from vllm.model_executor.models.utils import extract_layer_index
        except ImportError:
            pass
        else:
            try:
                return int(extract_layer_index(layer_name))
            except (AssertionError, ValueError) as e:
                raise ValueError(f"layer name {layer_name!r}: {e or 'no single layer index'}") from e
    numbers = [int(part) for part in layer_name.split(".") if part.isdigit()]
    if len(numbers) != 1:
        raise ValueError(
            f"layer name {layer_name!r} must contain exactly one integer part (its global layer index), found {numbers}"
        )
    return numbers[0]
