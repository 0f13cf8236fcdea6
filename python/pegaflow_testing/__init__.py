"""Test-only code for the ``pegaflow`` package — NOT shipped: ``pip install ./python`` installs ``pegaflow`` alone.

Imported from the checkout (``python/`` on ``sys.path``: pytest's ``pythonpath``, the demo's ``PYTHONPATH``):

- ``pegaflow_testing.fake_vllm``: vLLM-shaped stand-ins (scheduler loop, workers, engine) that drive the real
  ``pegaflow.vllm.PegaKVConnector`` the way vLLM v1 does, with fault hooks into the connector's private state.
- ``pegaflow_testing.vllm_demo``: ``python3 -m pegaflow_testing.vllm_demo --endpoint HOST:PORT``, the KV workload
  ``./pegaflow demo`` runs through the connector.
- ``pegaflow_testing.localnode``: ``LocalNode``, a ``./pegaflow node`` child process on free loopback ports, and
  ``Metrics``, one parsed ``/metrics`` scrape (prometheus-client's parser).
"""
