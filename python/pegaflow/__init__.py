"""PegaFlow Python client.

The engine client, shared-memory/CUDA IPC registration helpers and the vLLM v1 KV connector
(``pegaflow.vllm``) arrive with issues [2 of 7] and [4 of 7]. vLLM is never imported at package import time.
"""

__version__ = "0.1.0"
