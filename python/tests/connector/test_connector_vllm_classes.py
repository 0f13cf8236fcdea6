"""The connector class against vLLM's own base classes and factory, where vLLM is installed.

vLLM is not installable on the machines these tests were written on, so everything here skips there. (Every engine
test in this directory also runs with vLLM's own scheduler-output classes where vLLM is installed: see the
``engines`` fixture.)
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pegaflow.vllm import _vllm

pytestmark = pytest.mark.skipif(
    not _vllm.vllm_available(), reason="vllm is not installed here (it cannot be installed on these machines)"
)


def test_connector_and_its_data_subclass_vllms_bases():
    from vllm.distributed.kv_transfer.kv_connector.v1.base import (
        KVConnectorBase_V1,
        KVConnectorMetadata,
        supports_hma,
    )

    from pegaflow.vllm import (
        PegaConnectorMetadata,
        PegaKVConnector,
        PegaKVConnectorStats,
    )

    assert issubclass(PegaKVConnector, KVConnectorBase_V1)
    assert issubclass(PegaConnectorMetadata, KVConnectorMetadata)
    assert not supports_hma(PegaKVConnector)  # vLLM turns the hybrid KV cache manager off for us
    base = _vllm.stats_base()
    assert issubclass(PegaKVConnectorStats, base)


def test_vllm_factory_loads_the_connector_by_module_path():
    from vllm.distributed.kv_transfer.kv_connector.factory import KVConnectorFactory

    from pegaflow.vllm import PegaKVConnector

    config = SimpleNamespace(kv_connector="PegaKVConnector", kv_connector_module_path="pegaflow.vllm")
    connector_cls, compat = KVConnectorFactory._get_connector_class_with_compat(config)
    assert connector_cls is PegaKVConnector and compat is False  # the three-argument constructor
