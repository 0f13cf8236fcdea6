"""The connector's settings (``kv_connector_extra_config``) and identity (instance, namespace, ranks).

Read from ``vllm_config`` by attribute only (no vLLM import), so the vLLM-shaped stand-ins work too. Attributes read:
``kv_transfer_config.{engine_id, kv_role, kv_connector_extra_config}``, ``model_config.{model, revision, dtype,
use_mla, enable_sleep_mode, get_total_num_hidden_layers(), get_total_num_kv_heads(), get_head_size()}``,
``cache_config.{block_size, cache_dtype, prefix_caching_hash_algo, kv_cache_layout (vLLM 0.29+)}``,
``parallel_config.{tensor_parallel_size, pipeline_parallel_size, data_parallel_size, data_parallel_rank}``.

Namespace: blocks are shared by every vLLM instance whose namespace is equal, so it names everything that decides a
block's bytes: model (and revision), KV dtype, the physical KV layout, block size, layer count, KV heads x head size,
and the TP size (each TP rank stores its own shard; MLA's latent cache is identical on every rank, so MLA
namespaces leave TP out and rank 0 alone saves). The scheduler and the workers derive it from the same config; the
workers check that their tensors really have the layout the namespace names (``pegaflow.kv_layout``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

_log = logging.getLogger(__name__)

PREFIX = "pegaflow."
DEFAULT_ENDPOINT = "127.0.0.1:50055"

# The layout current FlashAttention/FlashInfer backends use: logical (blocks, kv_heads, block_size, 2*head_size),
# physical NHD. See pegaflow.vllm.kvlayout for the tags.
DEFAULT_LAYOUT = "packed-nhd"
MLA_LAYOUT = "mla"


@dataclass(frozen=True)
class _Option:
    default: object
    kind: type
    minimum: float | None
    help: str


# Every kv_connector_extra_config key the connector reads (README.md lists them too; tests keep both in sync).
OPTIONS: dict[str, _Option] = {
    "pegaflow.endpoint": _Option(DEFAULT_ENDPOINT, str, None, "the local node's Engine gRPC address, HOST:PORT"),
    "pegaflow.namespace": _Option(
        "", str, None, "use this namespace instead of the derived one (only for instances known to be identical)"
    ),
    "pegaflow.kv_layout": _Option(
        "auto",
        str,
        None,
        "the physical KV layout the workers' tensors have: auto (from vLLM 0.29's CacheConfig.kv_cache_layout; else"
        " mla for MLA models, packed-nhd otherwise), packed-nhd,"
        " packed-hnd, kv_planes-nhd, kv_planes-hnd, blocks_kv-nhd, blocks_kv-hnd, mla",
    ),
    "pegaflow.lease_ttl_ms": _Option(
        30_000, int, 0, "how long a lookup's hits stay pinned in the pool for the load that follows (0 = no lease)"
    ),
    "pegaflow.query_scope": _Option(
        "local",
        str,
        None,
        "where lookups look: local (this node's pool) or cluster (also blocks other nodes hold, which the load"
        " fetches from them first)",
    ),
    "pegaflow.pd_seal_wait_ms": _Option(
        10_000,
        int,
        0,
        "decode side of a P/D hand-off: wait at most this long (and never past the hand-off's expiry) until the"
        " cluster has every handed-off block sealed before claiming them",
    ),
    "pegaflow.pd_lease_ms": _Option(
        30_000,
        int,
        1,
        "prefill side of a P/D hand-off: the handed-off blocks stay leased on this node this long after the request"
        " finished (the hand-off's expires_unix_ms; the node leases at most 600000 ms)",
    ),
    "pegaflow.query_timeout_ms": _Option(200, int, 1, "deadline of one lookup (Query); on expiry the answer is 0 hits"),
    "pegaflow.rpc_timeout_ms": _Option(5_000, int, 1, "deadline of RegisterContext, Load and Release calls"),
    "pegaflow.save_timeout_ms": _Option(
        120_000,
        int,
        1,
        "deadline of one Save call (at most max_blocks_per_save blocks); a Save past it is treated as"
        " still copying: its blocks stay held until the node answers or is known gone",
    ),
    "pegaflow.load_timeout_ms": _Option(
        30_000,
        int,
        1,
        "a load still pending after this long is reported as failed once the node wrote its flag or is"
        " known gone (never while the node may still write the blocks)",
    ),
    "pegaflow.miss_retry_ms": _Option(
        100,
        int,
        1,
        "a waiting request whose lookup found nothing asks again after this long, then after twice as long, and so on",
    ),
    "pegaflow.miss_retries": _Option(
        6,
        int,
        0,
        "how many times a waiting request asks again after its first lookup found nothing (a longer local prefix hit"
        " asks at once, within the same budget)",
    ),
    "pegaflow.max_queries_per_step": _Option(
        32,
        int,
        1,
        "at most this many lookups (Query calls) per scheduler step; a request beyond them is asked about next step",
    ),
    "pegaflow.retry_interval_ms": _Option(
        1_000,
        int,
        1,
        "after the node did not answer: lookups answer 0 hits without asking, and workers retry"
        " registering, at this interval",
    ),
    "pegaflow.session_timeout_ms": _Option(
        10_000, int, 1, "a worker that has heard nothing on its Session stream for this long reconnects"
    ),
    "pegaflow.max_blocks_per_save": _Option(
        1024, int, 1, "a step's blocks are saved in Save calls of at most this many"
    ),
    "pegaflow.max_saves_in_flight": _Option(
        4,
        int,
        1,
        "Save calls a worker keeps in flight at once (the node copies them in parallel); at the bound the saver"
        " thread waits for one to end, never vLLM's forward; 1 = one Save after another",
    ),
    "pegaflow.load_flag_slots": _Option(
        256, int, 1, "load-completion flags per shared-memory flag file (more files are added when needed)"
    ),
}


@dataclass(frozen=True)
class ConnectorSettings:
    endpoint: str
    namespace_override: str
    kv_layout: str
    lease_ttl_ms: int
    query_scope: str
    pd_seal_wait_s: float
    pd_lease_s: float
    query_timeout_s: float
    rpc_timeout_s: float
    save_timeout_s: float
    load_timeout_s: float
    miss_retry_s: float
    miss_retries: int
    max_queries_per_step: int
    retry_interval_s: float
    session_timeout_s: float
    max_blocks_per_save: int
    max_saves_in_flight: int
    load_flag_slots: int

    @classmethod
    def from_extra_config(cls, extra: dict | None) -> ConnectorSettings:
        """Parses the ``pegaflow.*`` keys (others belong to other connectors and are ignored); unknown ``pegaflow.*``
        keys and bad values raise ValueError naming the key."""
        extra = dict(extra or {})
        unknown = sorted(k for k in extra if k.startswith(PREFIX) and k not in OPTIONS)
        if unknown:
            raise ValueError(
                f"kv_connector_extra_config: unknown key(s) {unknown}; PegaKVConnector knows {sorted(OPTIONS)}"
            )
        values = {}
        for key, option in OPTIONS.items():
            raw = extra.get(key, option.default)
            try:
                value = option.kind(raw)
            except (TypeError, ValueError):
                raise ValueError(
                    f"kv_connector_extra_config[{key!r}]: {raw!r} is not a valid {option.kind.__name__}"
                ) from None
            if option.kind is int and isinstance(raw, float) and raw != int(raw):
                raise ValueError(f"kv_connector_extra_config[{key!r}]: {raw!r} is not an integer")
            if option.minimum is not None and value < option.minimum:
                raise ValueError(f"kv_connector_extra_config[{key!r}]: {value} is below the minimum {option.minimum}")
            values[key] = value
        endpoint = values["pegaflow.endpoint"].strip()
        host, _, port = endpoint.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"kv_connector_extra_config['pegaflow.endpoint']: {endpoint!r} is not HOST:PORT")
        scope = values["pegaflow.query_scope"].strip()
        if scope not in ("local", "cluster"):
            raise ValueError(f"kv_connector_extra_config['pegaflow.query_scope']: {scope!r} is not local or cluster")
        return cls(
            endpoint=endpoint,
            namespace_override=values["pegaflow.namespace"].strip(),
            kv_layout=values["pegaflow.kv_layout"].strip(),
            lease_ttl_ms=values["pegaflow.lease_ttl_ms"],
            query_scope=scope,
            pd_seal_wait_s=values["pegaflow.pd_seal_wait_ms"] / 1e3,
            pd_lease_s=values["pegaflow.pd_lease_ms"] / 1e3,
            query_timeout_s=values["pegaflow.query_timeout_ms"] / 1e3,
            rpc_timeout_s=values["pegaflow.rpc_timeout_ms"] / 1e3,
            save_timeout_s=values["pegaflow.save_timeout_ms"] / 1e3,
            load_timeout_s=values["pegaflow.load_timeout_ms"] / 1e3,
            miss_retry_s=values["pegaflow.miss_retry_ms"] / 1e3,
            miss_retries=values["pegaflow.miss_retries"],
            max_queries_per_step=values["pegaflow.max_queries_per_step"],
            retry_interval_s=values["pegaflow.retry_interval_ms"] / 1e3,
            session_timeout_s=values["pegaflow.session_timeout_ms"] / 1e3,
            max_blocks_per_save=values["pegaflow.max_blocks_per_save"],
            max_saves_in_flight=values["pegaflow.max_saves_in_flight"],
            load_flag_slots=values["pegaflow.load_flag_slots"],
        )


@dataclass(frozen=True)
class EngineIdentity:
    """What one vLLM engine (one DP rank) is, as both connector roles see it."""

    engine_id: str
    instance_id: str  # the node's instance id for this engine's workers (MLA workers add their rank)
    namespace: str
    kv_role: str  # kv_both, kv_producer (saves only), kv_consumer (loads only)
    model: str
    kv_dtype: str
    kv_layout: str  # the layout tag the workers' tensors must have
    vllm_layout: str | None  # vLLM 0.29+: CacheConfig.kv_cache_layout's standardized name (LBNHC, ...)
    block_size: int  # tokens per scheduler block (the hash granularity)
    total_layers: int
    total_kv_heads: int
    head_size: int
    tp_size: int
    pp_size: int
    dp_rank: int
    use_mla: bool
    hash_algo: str

    @property
    def loads_enabled(self) -> bool:
        return self.kv_role in ("kv_both", "kv_consumer")

    @property
    def saves_enabled(self) -> bool:
        return self.kv_role in ("kv_both", "kv_producer")

    @classmethod
    def from_vllm_config(cls, vllm_config, settings: ConnectorSettings) -> EngineIdentity:
        ktc = vllm_config.kv_transfer_config
        mc, cc, pc = vllm_config.model_config, vllm_config.cache_config, vllm_config.parallel_config
        engine_id = getattr(ktc, "engine_id", None)
        if not engine_id:
            raise ValueError("kv_transfer_config.engine_id is not set (vLLM sets a uuid unless given one)")
        kv_role = getattr(ktc, "kv_role", None) or "kv_both"
        if kv_role not in ("kv_both", "kv_producer", "kv_consumer"):
            raise ValueError(f"kv_transfer_config.kv_role: {kv_role!r} is not kv_both, kv_producer or kv_consumer")
        if getattr(mc, "enable_sleep_mode", False):
            raise ValueError(
                "PegaKVConnector cannot work with vLLM's sleep mode (--enable-sleep-mode): its cumem allocator's memory"
                " cannot be exported to the node through CUDA IPC"
            )
        use_mla = bool(getattr(mc, "use_mla", False))
        model = str(mc.model)
        revision = getattr(mc, "revision", None)
        if revision:
            model = f"{model}@{revision}"
        cache_dtype = str(getattr(cc, "cache_dtype", "auto") or "auto")
        kv_dtype = str(mc.dtype).removeprefix("torch.") if cache_dtype == "auto" else cache_dtype
        block_size = int(cc.block_size)
        total_layers = int(mc.get_total_num_hidden_layers())
        total_kv_heads = int(mc.get_total_num_kv_heads())
        head_size = int(mc.get_head_size())
        tp_size = int(getattr(pc, "tensor_parallel_size", 1) or 1)
        pp_size = int(getattr(pc, "pipeline_parallel_size", 1) or 1)
        dp_size = int(getattr(pc, "data_parallel_size", 1) or 1)
        dp_rank = int(getattr(pc, "data_parallel_rank", 0) or 0)
        hash_algo = str(getattr(cc, "prefix_caching_hash_algo", "sha256") or "sha256")

        from pegaflow.vllm.kvlayout import LAYOUT_TAGS, VLLM_LAYOUTS, vllm_layout_name

        layout = settings.kv_layout
        vllm_layout = vllm_layout_name(getattr(cc, "kv_cache_layout", None))
        if vllm_layout is not None:
            if vllm_layout not in VLLM_LAYOUTS:
                raise ValueError(
                    f"CacheConfig.kv_cache_layout {vllm_layout!r} is not a KV-cache layout PegaKVConnector knows"
                    f" ({', '.join(VLLM_LAYOUTS)}); it refuses to guess where a block's bytes are"
                )
            derived = MLA_LAYOUT if use_mla else VLLM_LAYOUTS[vllm_layout]
            if layout not in ("auto", derived):
                raise ValueError(
                    f"kv_connector_extra_config['pegaflow.kv_layout'] is {layout!r}, but vLLM's KV-cache layout"
                    f" {vllm_layout} stores {derived!r}: drop the key (auto reads vLLM's layout)"
                )
            layout = derived
        if layout == "auto":
            layout = MLA_LAYOUT if use_mla else DEFAULT_LAYOUT

        if layout not in LAYOUT_TAGS:
            raise ValueError(f"kv_connector_extra_config['pegaflow.kv_layout']: {layout!r} is not one of {LAYOUT_TAGS}")
        if use_mla != (layout == MLA_LAYOUT):
            raise ValueError(
                f"kv_connector_extra_config['pegaflow.kv_layout']: {layout!r} does not fit a model with"
                f" use_mla={use_mla}"
            )

        if settings.namespace_override:
            namespace = settings.namespace_override
        else:
            heads = f"latent{head_size}" if use_mla else f"kv{total_kv_heads}x{head_size}"
            tp = "tp*" if use_mla else f"tp{tp_size}"
            namespace = f"{model}|{kv_dtype}|{layout}|b{block_size}|l{total_layers}|{heads}|{tp}"

        instance_id = str(engine_id)
        if dp_size > 1 and not instance_id.endswith(f"_dp{dp_rank}"):
            instance_id = f"{instance_id}_dp{dp_rank}"
        if hash_algo not in ("sha256_cbor", "xxhash_cbor"):
            _log.info(
                "prefix_caching_hash_algo is %s: block hashes are reproducible only among Python processes of the same"
                " vLLM version; use --prefix-caching-hash-algo sha256_cbor to share blocks across processes and nodes",
                hash_algo,
            )
        return cls(
            engine_id=str(engine_id),
            instance_id=instance_id,
            namespace=namespace,
            kv_role=kv_role,
            model=model,
            kv_dtype=kv_dtype,
            kv_layout=layout,
            vllm_layout=vllm_layout,
            block_size=block_size,
            total_layers=total_layers,
            total_kv_heads=total_kv_heads,
            head_size=head_size,
            tp_size=tp_size,
            pp_size=pp_size,
            dp_rank=dp_rank,
            use_mla=use_mla,
            hash_algo=hash_algo,
        )
