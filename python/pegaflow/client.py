"""gRPC clients of a PegaFlow node: EngineClient (the worker's data-path control calls) and FabricClient.

One method per RPC; every unary call uses the client's timeout; a failed call raises EngineError with the gRPC
status code. Responses are the generated protobuf messages. Thread-safe (gRPC channels and stubs are).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import grpc

from pegaflow._proto import engine_pb2, engine_pb2_grpc, fabric_pb2, fabric_pb2_grpc
from pegaflow.errors import EngineError, SessionEndedError
from pegaflow.session import Session

__all__ = ["EngineClient", "EngineError", "FabricClient", "Session", "SessionEndedError"]

# A block: (block_id, hash) or a ready BlockRef.
Block = tuple[int, bytes] | engine_pb2.BlockRef


class _GrpcClient:
    def __init__(self, endpoint: str, timeout_s: float, channel: grpc.Channel | None):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._owns_channel = channel is None
        self._channel = channel if channel is not None else grpc.insecure_channel(endpoint)

    def _unary(self, stub, method: str, request):
        try:
            return getattr(stub, method)(request, timeout=self.timeout_s)
        except grpc.RpcError as e:
            raise EngineError.from_rpc_error(e, method) from e

    def close(self) -> None:
        """Closes the channel (if this client created it); open sessions end with it."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EngineClient(_GrpcClient):
    """Client of the Engine service (pegaflow.engine.v1) on ``endpoint`` ("host:port")."""

    def __init__(self, endpoint: str, timeout_s: float = 5.0, *, channel: grpc.Channel | None = None):
        super().__init__(endpoint, timeout_s, channel)
        self._stub = engine_pb2_grpc.EngineStub(self._channel)

    def register_context(
        self,
        instance_id: str,
        namespace: str,
        tp_rank: int,
        tp_size: int,
        pp_rank: int,
        total_layers: int,
        device: str,
        layers: Iterable,
    ) -> engine_pb2.RegisterContextResponse:
        """Registers this worker's layers; ``layers`` holds LayerRegistration messages or objects with to_proto()."""
        request = engine_pb2.RegisterContextRequest(
            instance_id=instance_id,
            namespace=namespace,
            tp_rank=tp_rank,
            tp_size=tp_size,
            pp_rank=pp_rank,
            total_layers=total_layers,
            device=device,
            layers=[_as_proto(layer, engine_pb2.LayerRegistration) for layer in layers],
        )
        return self._unary(self._stub, "RegisterContext", request)

    def unregister_context(self, context_id: str) -> engine_pb2.UnregisterContextResponse:
        return self._unary(self._stub, "UnregisterContext", engine_pb2.UnregisterContextRequest(context_id=context_id))

    def open_session(self, context_id: str, on_end: Callable[[Session], None] | None = None) -> Session:
        """Opens the liveness stream and returns once the node sent ``attached`` (within the timeout).

        The stream itself has no deadline: it must outlive every call. Close the session (or the client) to end it.
        """
        call = self._stub.Session(engine_pb2.SessionRequest(context_id=context_id))
        session = Session(call, context_id, on_end)
        session._start(self.timeout_s)
        return session

    def save(
        self, context_id: str, blocks: Iterable[Block], layer_indices: Iterable[int] | None = None
    ) -> engine_pb2.SaveResponse:
        """Copies the blocks from the worker's memory into the pool; ``layer_indices`` None = every layer."""
        request = engine_pb2.SaveRequest(
            context_id=context_id, blocks=_block_refs(blocks), layer_indices=list(layer_indices or [])
        )
        return self._unary(self._stub, "Save", request)

    def query(
        self, namespace: str, hashes: Iterable[bytes], lease_ttl_ms: int = 0, scope: str = "local"
    ) -> engine_pb2.QueryResponse:
        """Length of the sealed prefix of ``hashes``; leases it when ``lease_ttl_ms`` > 0.

        ``scope="cluster"``: this node's prefix, then the blocks other nodes hold (the block directory); the lease
        covers only the ``local_hit_blocks`` this node holds, and a Load of the rest fetches them from their holders.
        """
        request = engine_pb2.QueryRequest(
            namespace=namespace, hashes=list(hashes), lease_ttl_ms=lease_ttl_ms, scope=_query_scope(scope)
        )
        return self._unary(self._stub, "Query", request)

    def load(self, context_id: str, blocks: Iterable[Block], flag, lease_id: int = 0) -> engine_pb2.LoadResponse:
        """Starts a load; completion arrives in ``flag`` (a LoadFlagSlot, reset beforehand, or a LoadFlag)."""
        request = engine_pb2.LoadRequest(
            context_id=context_id,
            blocks=_block_refs(blocks),
            lease_id=lease_id,
            flag=_as_proto(flag, engine_pb2.LoadFlag),
        )
        return self._unary(self._stub, "Load", request)

    def release(self, lease_id: int) -> engine_pb2.ReleaseResponse:
        return self._unary(self._stub, "Release", engine_pb2.ReleaseRequest(lease_id=lease_id))


_QUERY_SCOPES = {"local": 0, "cluster": 1}


def _query_scope(scope: str) -> int:
    if scope not in _QUERY_SCOPES:
        raise ValueError(f"scope: {scope!r} is not one of {sorted(_QUERY_SCOPES)}")
    return engine_pb2.QueryScope.Value("QUERY_SCOPE_" + scope.upper())


class FabricClient(_GrpcClient):
    """Client of the Fabric service (pegaflow.fabric.v1): health, cluster membership, shutdown, block locations."""

    def __init__(self, endpoint: str, timeout_s: float = 5.0, *, channel: grpc.Channel | None = None):
        super().__init__(endpoint, timeout_s, channel)
        self._stub = fabric_pb2_grpc.FabricStub(self._channel)

    def health(self) -> fabric_pb2.HealthResponse:
        return self._unary(self._stub, "Health", fabric_pb2.HealthRequest())

    def cluster_status(self) -> fabric_pb2.ClusterStatusResponse:
        return self._unary(self._stub, "ClusterStatus", fabric_pb2.ClusterStatusRequest())

    def shutdown(self, node_id: str, reason: str = "") -> fabric_pb2.ShutdownResponse:
        """Asks the node to leave the cluster and exit; it replies before leaving.

        ``node_id`` confirms which node is meant (``health().node_id``): a node refuses a Shutdown that does not name
        it (INVALID_ARGUMENT when empty, FAILED_PRECONDITION when another node's) and logs who asked.
        """
        request = fabric_pb2.ShutdownRequest(reason=reason, confirm_node_id=node_id)
        return self._unary(self._stub, "Shutdown", request)

    def locate(self, namespace: str, hashes: Iterable[bytes]) -> fabric_pb2.LocateResponse:
        """Which nodes hold each block (``blocks[i].node_ids``), the cluster prefix and whether the answer is complete.

        At most 8192 hashes of 1..64 bytes; any node answers for the whole cluster.
        """
        request = fabric_pb2.LocateRequest(namespace=namespace, hashes=list(hashes))
        return self._unary(self._stub, "Locate", request)

    def watch_locations(
        self, namespace: str, after_sequence: int = 0, incarnation: int = 0, timeout_s: float | None = None
    ) -> Iterator[fabric_pb2.LocationEvent]:
        """This node's block-location changes for ``namespace``: a snapshot (HELD…, SNAPSHOT_END), then STORED/REMOVED.

        Pass the last event's ``sequence`` and ``incarnation`` back to resume without a new snapshot (possible while the
        node still buffers the changes since then). ``timeout_s`` bounds the whole stream (None: until cancelled).
        """
        request = fabric_pb2.WatchLocationsRequest(
            namespace=namespace, after_sequence=after_sequence, incarnation=incarnation
        )
        try:
            yield from self._stub.WatchLocations(request, timeout=timeout_s)
        except grpc.RpcError as e:
            raise EngineError.from_rpc_error(e, "WatchLocations") from e


def _as_proto(value, message_type):
    if isinstance(value, message_type):
        return value
    to_proto = getattr(value, "to_proto", None)
    if to_proto is None:
        raise TypeError(f"expected {message_type.DESCRIPTOR.name} or an object with to_proto(), got {type(value)}")
    return to_proto()


def _block_refs(blocks: Iterable[Block]) -> list[engine_pb2.BlockRef]:
    refs = []
    for block in blocks:
        if isinstance(block, engine_pb2.BlockRef):
            refs.append(block)
        else:
            block_id, block_hash = block
            refs.append(engine_pb2.BlockRef(block_id=block_id, hash=block_hash))
    return refs
