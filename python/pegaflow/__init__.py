"""PegaFlow Python client.

``pegaflow.client`` (gRPC clients), ``pegaflow.shm`` (shared-memory KV caches and their registration),
``pegaflow.flag`` (load-completion flags), ``pegaflow.layout`` (block layout from strides), ``pegaflow.cuda``
(CUDA IPC registration of torch tensors) and the vLLM v1 KV connector ``pegaflow.vllm.PegaKVConnector``.
Importing this package imports neither vLLM nor torch (nor numpy, grpc or the stubs: submodules load what they
need).
"""

__version__ = "0.1.0"
