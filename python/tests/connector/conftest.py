"""Fixtures for the vLLM connector tests: fake vLLM engines (pegaflow_testing.fake_vllm) against real node processes.

The node fixtures (``node``, ``start_node``, ``start_module_node``) come from ``tests/conftest.py``. ``engines``
makes FakeEngines on a node with a model name of their own (so each test has its own namespace) and closes them;
it is parametrized so that each engine test also runs with vLLM's own classes where vLLM is installed.
"""

from __future__ import annotations

import pytest
from connector_support import EngineFactory

from pegaflow.vllm import _vllm


@pytest.fixture(params=["stand-ins", "vllm-classes"])
def engines(request):
    """Every engine test runs twice: with the stand-in request/output classes, and with vLLM's own where installed."""
    if request.param == "vllm-classes" and not _vllm.vllm_available():
        pytest.skip(
            "vllm is not installed here (it cannot be installed on these machines): vLLM's own classes untested"
        )
    factory = EngineFactory(vllm_classes=request.param == "vllm-classes")
    yield factory
    factory.close_all()
