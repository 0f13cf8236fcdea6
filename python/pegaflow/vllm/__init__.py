"""The vLLM v1 KV connector: vLLM workers become PegaFlow clients.

    vllm serve MODEL --prefix-caching-hash-algo sha256_cbor --kv-transfer-config \\
      '{"kv_connector":"PegaKVConnector","kv_connector_module_path":"pegaflow.vllm","kv_role":"kv_both",
        "kv_connector_extra_config":{"pegaflow.endpoint":"127.0.0.1:50055"}}'

``PegaKVConnector`` (``pegaflow.vllm.connector``) is loaded on first access, so ``import pegaflow.vllm`` stays cheap
and imports neither vLLM nor torch. Every vLLM import lives in ``pegaflow.vllm._vllm``. Modules: ``config``
(settings, identity, namespace), ``scheduler`` / ``worker`` (the two roles), ``node_link`` (worker registration and
reconnects), ``kvlayout`` / ``memory`` (KV tensors to node regions), ``metadata``, ``stats``, ``block_hash``
(vLLM's sha256_cbor hashes). The vLLM-shaped stand-ins its tests and the demo drive it with are test-only:
``pegaflow_testing.fake_vllm`` in the checkout, not installed.
"""

from __future__ import annotations

__all__ = ["PegaConnectorMetadata", "PegaKVConnector", "PegaKVConnectorStats"]


def __getattr__(name: str):
    if name == "PegaKVConnector":
        from pegaflow.vllm.connector import PegaKVConnector

        return PegaKVConnector
    if name == "PegaConnectorMetadata":
        from pegaflow.vllm.metadata import PegaConnectorMetadata

        return PegaConnectorMetadata
    if name == "PegaKVConnectorStats":
        from pegaflow.vllm.stats import PegaKVConnectorStats

        return PegaKVConnectorStats
    raise AttributeError(f"module 'pegaflow.vllm' has no attribute {name!r}")
