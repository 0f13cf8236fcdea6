"""gRPC clients of a PegaFlow node: EngineClient (the worker's data-path control calls) and FabricClient.

One method per RPC; every unary call uses the client's timeout; a failed call raises EngineError with the gRPC
status code. Responses are the generated protobuf messages. Thread-safe (gRPC channels and stubs are).

Blocks travel packed (engine.proto's PackedBlocks / PackedHashes: the block ids as one packed array, the hashes
back to back in one bytes field), not as a message per block; a list whose hashes differ in length goes as BlockRefs.
``save_async`` / ``load_async`` return a PendingCall (a gRPC future) so that a caller can overlap the node's copy
with its own work and wait only where it needs the result.

Same host: ``open_session`` also opens the node's command channel (pegaflow.channel, shared memory) when the node
offers one, and from then on every EngineClient of this process sends that context's Save and Load (and local
Queries) through it: the same requests, replies and errors, without gRPC per call and with the completion seen at
once (futex wake-up). A call that does not fit (more blocks than the channel's slots hold, hashes of mixed lengths,
every slot busy) goes over gRPC. ``last_path`` and ``calls_by_path`` tell which path ran. ``command_channel=False``
(or PEGAFLOW_COMMAND_CHANNEL=0) keeps everything on gRPC.
"""

from __future__ import annotations

import logging
import os
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

import grpc

from pegaflow import channel as _channel
from pegaflow._proto import engine_pb2, engine_pb2_grpc, fabric_pb2, fabric_pb2_grpc
from pegaflow.errors import EngineError, SessionEndedError
from pegaflow.session import Session

_log = logging.getLogger(__name__)

__all__ = [
    "BlockHolders",
    "EngineClient",
    "EngineError",
    "FabricClient",
    "Locations",
    "PendingCall",
    "Session",
    "SessionEndedError",
    "pack_blocks",
]

# A block: (block_id, hash) or a ready BlockRef.
Block = tuple[int, bytes] | engine_pb2.BlockRef
# What save/load take: blocks one by one, or already packed (pack_blocks).
Blocks = Iterable[Block] | engine_pb2.PackedBlocks

MAX_HASH_BYTES = 64


class PendingCall:
    """A unary call in flight (``EngineClient.save_async`` / ``load_async``): ``result()`` waits for its reply.

    ``result(timeout_s)`` returns the response or raises EngineError (the RPC's status; DEADLINE_EXCEEDED also when
    ``timeout_s`` passes first, the call itself then still runs up to the client's timeout). Thread-safe.
    """

    def __init__(self, future, method: str):
        self._future = future
        self.method = method

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout_s: float | None = None):
        try:
            return self._future.result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise EngineError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"no reply within {timeout_s} s (still running)", self.method
            ) from None
        except grpc.RpcError as e:
            raise EngineError.from_rpc_error(e, self.method) from e

    def add_done_callback(self, fn: Callable[[PendingCall], None]) -> None:
        """Calls ``fn(self)`` once the reply (or failure) is in, on gRPC's thread (or at once if done already)."""
        self._future.add_done_callback(lambda _f: fn(self))

    def cancel(self) -> bool:
        return self._future.cancel()


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

    def _unary_async(self, stub, method: str, request) -> PendingCall:
        return PendingCall(getattr(stub, method).future(request, timeout=self.timeout_s), method)

    def close(self) -> None:
        """Closes the channel (if this client created it); open sessions end with it."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EngineClient(_GrpcClient):
    """Client of the Engine service (pegaflow.engine.v1) on ``endpoint`` ("host:port").

    ``command_channel``: open the node's same-host command channel with each session (default: unless
    PEGAFLOW_COMMAND_CHANNEL=0). ``last_path`` is "shm" or "grpc" for this client's last Save/Load/Query;
    ``calls_by_path`` counts them by (method, path).
    """

    def __init__(
        self,
        endpoint: str,
        timeout_s: float = 5.0,
        *,
        channel: grpc.Channel | None = None,
        command_channel: bool | None = None,
    ):
        super().__init__(endpoint, timeout_s, channel)
        self._stub = engine_pb2_grpc.EngineStub(self._channel)
        if command_channel is None:
            command_channel = os.environ.get("PEGAFLOW_COMMAND_CHANNEL", "1") != "0"
        self.command_channel = command_channel
        self.last_path: str | None = None
        self.calls_by_path: Counter[tuple[str, str]] = Counter()

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
        opened: list[_channel.CommandChannel] = []
        endpoint = self.endpoint

        def ended(s: Session) -> None:
            for ch in opened:
                _channel.unregister(endpoint, ch)  # tells the node, which removes the file
            if on_end is not None:
                on_end(s)

        call = self._stub.Session(engine_pb2.SessionRequest(context_id=context_id))
        session = Session(call, context_id, ended)
        session._start(self.timeout_s)
        if self.command_channel:
            ch = self.open_command_channel(context_id, session)
            if ch is not None:
                opened.append(ch)
                if not session.alive:  # ended meanwhile: its on_end ran before the channel was in the list
                    _channel.unregister(endpoint, ch)
        return session

    def open_command_channel(self, context_id: str, session: Session | None = None):
        """Opens the node's command channel for ``context_id`` and uses it from now on (open_session does this).

        Returns the pegaflow.channel.CommandChannel, or None when the node offers none (an older node, channels off,
        another host's file system): the calls then stay on gRPC.
        """
        try:
            info = self._stub.OpenCommandChannel(
                engine_pb2.OpenCommandChannelRequest(context_id=context_id), timeout=self.timeout_s
            )
            ch = _channel.CommandChannel(info, context_id, session)
        except grpc.RpcError as e:
            _log.info("no command channel for %s (%s): using gRPC", context_id, e.code())
            return None
        except (OSError, ValueError) as e:  # e.g. the node's /dev/shm is not ours (another host or container)
            _log.info("command channel for %s not usable (%s): using gRPC", context_id, e)
            return None
        _channel.register(self.endpoint, ch)
        return ch

    def _counted(self, method: str, path: str) -> None:
        self.last_path = path
        self.calls_by_path[(method, path)] += 1

    def _on_channel(self, method: str, make_call, grpc_call):
        """The call posted on the context's channel (a ChannelCall), or None when it must go over gRPC."""
        call = make_call()
        if call is None:
            return None
        call._fallback = grpc_call
        self._counted(method, "shm")
        return call

    def save(
        self, context_id: str, blocks: Blocks, layer_indices: Iterable[int] | None = None
    ) -> engine_pb2.SaveResponse:
        """Copies the blocks from the worker's memory into the pool; ``layer_indices`` None = every layer.

        Replies once the copy is done. ``blocks``: (block_id, hash) pairs, BlockRefs, or a PackedBlocks.
        """
        blocks = _reusable(blocks)
        call = self._save_on_channel(context_id, blocks, layer_indices)
        if call is not None:
            return call.result()
        self._counted("Save", "grpc")
        return self._unary(self._stub, "Save", _save_request(context_id, blocks, layer_indices))

    def save_async(self, context_id: str, blocks: Blocks, layer_indices: Iterable[int] | None = None) -> PendingCall:
        """``save`` without waiting: the PendingCall's ``result()`` is the SaveResponse once the copy is done."""
        blocks = _reusable(blocks)
        call = self._save_on_channel(context_id, blocks, layer_indices)
        if call is not None:
            return call
        self._counted("Save", "grpc")
        return self._unary_async(self._stub, "Save", _save_request(context_id, blocks, layer_indices))

    def _save_on_channel(self, context_id, blocks, layer_indices):
        ch = _channel.lookup(self.endpoint, context_id) if self.command_channel else None
        if ch is None:
            return None
        parts = _channel_parts(blocks)
        layers = list(layer_indices or [])
        if parts is None or not ch.fits(len(parts[0]), parts[2], len(layers)) or not _u32s(layers):
            return None
        ids, hashes, width = parts
        return self._on_channel(
            "Save",
            lambda: ch.submit_save(ids, hashes, width, layers, self.timeout_s),
            lambda: self._unary(self._stub, "Save", _save_request(context_id, blocks, layers)),
        )

    def query(
        self, namespace: str, hashes: Iterable[bytes], lease_ttl_ms: int = 0, scope: str = "local"
    ) -> engine_pb2.QueryResponse:
        """Length of the sealed prefix of ``hashes``; leases it when ``lease_ttl_ms`` > 0.

        ``scope="cluster"``: this node's prefix, then the blocks other nodes hold (the block directory); the lease
        covers only the ``local_hit_blocks`` this node holds, and a Load of the rest fetches them from their holders.
        """
        request = engine_pb2.QueryRequest(namespace=namespace, lease_ttl_ms=lease_ttl_ms, scope=_query_scope(scope))
        hashes = list(hashes)
        packed = _pack_hashes(hashes)
        use = self.command_channel and scope == "local" and 0 <= lease_ttl_ms < 2**32
        ch = _channel.any_for(self.endpoint) if use else None
        if ch is not None and packed is not None and ch.fits(len(hashes), packed.hash_bytes):
            call = self._on_channel(
                "Query",
                lambda: ch.submit_query(
                    namespace, packed.data, packed.hash_bytes, len(hashes), lease_ttl_ms, self.timeout_s
                ),
                lambda: self._query_grpc(request, hashes, packed),
            )
            if call is not None:
                return call.result()
        self._counted("Query", "grpc")
        return self._query_grpc(request, hashes, packed)

    def _query_grpc(self, request, hashes, packed) -> engine_pb2.QueryResponse:
        if packed is not None:
            request.packed_hashes.CopyFrom(packed)
        else:
            request.hashes.extend(hashes)
        return self._unary(self._stub, "Query", request)

    def load(
        self, context_id: str, blocks: Blocks, flag=None, lease_id: int = 0, *, reply_when_done: bool = False
    ) -> engine_pb2.LoadResponse:
        """Starts a load; completion arrives in ``flag`` (a LoadFlagSlot, reset beforehand, or a LoadFlag).

        ``reply_when_done=True``: the call returns only once the copy has ended, the reply's ``done_state`` (1 done,
        2 failed), ``blocks_loaded``, ``blocks_failed`` and ``node_duration_ns`` set (the flag, optional then, is
        written too). Mind the client's timeout: it bounds the whole copy then.
        """
        blocks = _reusable(blocks)
        call = self._load_on_channel(context_id, blocks, flag, lease_id, reply_when_done)
        if call is not None:
            return call.result()
        self._counted("Load", "grpc")
        return self._unary(self._stub, "Load", _load_request(context_id, blocks, flag, lease_id, reply_when_done))

    def load_async(
        self, context_id: str, blocks: Blocks, flag=None, lease_id: int = 0, *, reply_when_done: bool = True
    ) -> PendingCall:
        """``load`` without waiting; by default the reply comes when the copy has ended (see ``load``)."""
        blocks = _reusable(blocks)
        call = self._load_on_channel(context_id, blocks, flag, lease_id, reply_when_done)
        if call is not None:
            return call
        self._counted("Load", "grpc")
        return self._unary_async(self._stub, "Load", _load_request(context_id, blocks, flag, lease_id, reply_when_done))

    def _load_on_channel(self, context_id, blocks, flag, lease_id, reply_when_done):
        if flag is None and not reply_when_done:
            raise ValueError("load: pass a flag, or reply_when_done=True to learn the end from the reply")
        ch = _channel.lookup(self.endpoint, context_id) if self.command_channel else None
        if ch is None or not 0 <= lease_id < 2**64:
            return None
        parts = _channel_parts(blocks)
        if parts is None or not ch.fits(len(parts[0]), parts[2]):
            return None
        flag_proto = _as_proto(flag, engine_pb2.LoadFlag) if flag is not None else None
        ids, hashes, width = parts
        return self._on_channel(
            "Load",
            lambda: ch.submit_load(ids, hashes, width, lease_id, flag_proto, reply_when_done, self.timeout_s),
            lambda: self._unary(self._stub, "Load", _load_request(context_id, blocks, flag, lease_id, reply_when_done)),
        )

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

    def locate(self, namespace: str, hashes: Iterable[bytes]) -> Locations:
        """Which nodes hold each block (``holders(i)``), the cluster prefix and whether the answer is complete.

        At most 8192 hashes of 1..64 bytes; any node answers for the whole cluster. The hashes go packed when they
        have one length, and the node answers with its node-id table and one holder bitmask per hash (no message per
        hash either way); ``Locations.blocks[i].node_ids`` reads as the previous release's reply did.
        """
        hashes = hashes if isinstance(hashes, list) else list(hashes)
        request = fabric_pb2.LocateRequest(namespace=namespace, packed_reply=True)
        packed = _pack_hashes(hashes)
        if packed is not None:
            request.packed_hashes.CopyFrom(packed)
        else:
            request.hashes.extend(hashes)
        return Locations(self._unary(self._stub, "Locate", request))

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


def _reusable(blocks: Blocks):
    """The blocks as something that can be read twice (a generator is read once, for the channel or gRPC)."""
    if isinstance(blocks, (list, engine_pb2.PackedBlocks)):
        return blocks
    return list(blocks)


def _u32s(values) -> bool:
    return all(isinstance(v, int) and 0 <= v < 2**32 for v in values)


def _channel_parts(blocks: Blocks):
    """(block ids as array('I'), the hashes back to back, hash length) for the channel, or None (send it over gRPC).

    None for what only gRPC can carry or refuse as it does: BlockRefs, hashes of mixed or bad lengths, ids out of
    uint32, a PackedBlocks whose two fields disagree.
    """
    try:
        if isinstance(blocks, engine_pb2.PackedBlocks):
            ids = array("I", blocks.block_ids)
            data, width = blocks.hashes.data, blocks.hashes.hash_bytes
            if not ids and not data:
                return ids, b"", 0
            if not 0 < width <= MAX_HASH_BYTES or len(data) != width * len(ids):
                return None
            return ids, data, width
        if not blocks:
            return array("I"), b"", 0
        ids, hashes = zip(*blocks)  # a BlockRef (not a pair) raises TypeError: gRPC carries those
        data = b"".join(hashes)
        ids = array("I", ids)
    except (OverflowError, TypeError, ValueError):
        return None
    width = len(hashes[0])
    # The total alone is not enough: 31 + 33 bytes would shift every later hash.
    if not 0 < width <= MAX_HASH_BYTES or len(data) != width * len(hashes) or len(set(map(len, hashes))) != 1:
        return None
    return ids, data, width


class BlockHolders(NamedTuple):
    """The holders of one block: topology node ids in topology order; empty = no holder known."""

    node_ids: tuple[str, ...]


class Locations:
    """A Locate answer, hash by hash in request order.

    ``holders(i)`` is the list of node ids holding hash ``i`` (``blocks[i].node_ids`` the same, as a tuple);
    ``holder_masks[i]`` has bit ``k`` set when node ``holder_node_ids[k]`` holds it. ``prefix_length``: leading
    hashes with a holder; ``complete``: False while a directory range rebuilds or did not answer (a hash without
    holders may then be held somewhere); ``node_id``: the node that answered. Reads a reply of a node of the previous
    release (per-hash ``blocks`` only) too.
    """

    __slots__ = ("_blocks", "complete", "holder_masks", "holder_node_ids", "node_id", "prefix_length")

    def __init__(self, reply: fabric_pb2.LocateResponse):
        self.node_id = reply.node_id
        self.prefix_length = reply.prefix_length
        self.complete = reply.complete
        self._blocks = None
        if len(reply.holder_masks) or not len(reply.blocks):
            self.holder_node_ids = tuple(reply.holder_node_ids)
            self.holder_masks = list(reply.holder_masks)
            return
        table: dict[str, int] = {}
        masks = []
        for block in reply.blocks:
            mask = 0
            for node in block.node_ids:
                mask |= 1 << table.setdefault(node, len(table))
            masks.append(mask)
        self.holder_node_ids = tuple(table)
        self.holder_masks = masks

    def __len__(self) -> int:
        return len(self.holder_masks)

    def holders(self, i: int) -> list[str]:
        """Ids of the nodes holding hash ``i``, in topology order."""
        mask, ids = self.holder_masks[i], self.holder_node_ids
        return [ids[k] for k in range(min(mask.bit_length(), len(ids))) if mask >> k & 1]

    @property
    def blocks(self) -> tuple[BlockHolders, ...]:
        """One BlockHolders per hash (built once, one per distinct holder set)."""
        if self._blocks is None:
            by_mask: dict[int, BlockHolders] = {}
            blocks = []
            for i, mask in enumerate(self.holder_masks):
                holders = by_mask.get(mask)
                if holders is None:
                    holders = by_mask[mask] = BlockHolders(tuple(self.holders(i)))
                blocks.append(holders)
            self._blocks = tuple(blocks)
        return self._blocks

    def __repr__(self) -> str:
        return (
            f"Locations(node_id={self.node_id!r}, hashes={len(self)}, prefix_length={self.prefix_length}, "
            f"complete={self.complete})"
        )


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


def pack_blocks(block_ids: Iterable[int], hashes: Iterable[bytes]) -> engine_pb2.PackedBlocks:
    """The blocks as one PackedBlocks message: ``block_ids[i]`` with ``hashes[i]``, every hash the same length.

    Raises ValueError when the counts differ or the hashes are not all of one length of 1..64 bytes.
    """
    ids = list(block_ids)
    hashes = list(hashes)
    if len(ids) != len(hashes):
        raise ValueError(f"{len(ids)} block ids but {len(hashes)} hashes: they come in pairs")
    packed = _pack_hashes(hashes)
    if packed is None:
        raise ValueError("packed blocks need hashes of one length of 1..64 bytes")
    return engine_pb2.PackedBlocks(block_ids=ids, hashes=packed)


def _pack_hashes(hashes: list[bytes]) -> engine_pb2.PackedHashes | None:
    """The hashes back to back, or None when they are not all of one length of 1..64 bytes (or there are none)."""
    if not hashes:
        return None
    width = len(hashes[0])
    data = b"".join(hashes)
    if not 0 < width <= MAX_HASH_BYTES or len(data) != width * len(hashes):
        return None
    # A hash of the right total but uneven lengths (e.g. 31 + 33 bytes) would shift every later hash. (map and set
    # run in C: a generator over 625 hashes cost more than the rest of building the request.)
    if len(set(map(len, hashes))) != 1:
        return None
    return engine_pb2.PackedHashes(data=data, hash_bytes=width)


def _blocks_into(request, blocks: Blocks) -> None:
    """Sets the request's packed_blocks (or, for hashes of mixed lengths, its BlockRefs)."""
    if isinstance(blocks, engine_pb2.PackedBlocks):
        request.packed_blocks.CopyFrom(blocks)
        return
    blocks = blocks if isinstance(blocks, list) else list(blocks)
    pairs = None
    if blocks:
        try:
            pairs = tuple(zip(*blocks, strict=True))  # (ids, hashes) in C; a BlockRef is not a pair: TypeError
        except (TypeError, ValueError):
            pairs = None
    if pairs is not None and len(pairs) == 2:
        packed = _pack_hashes(pairs[1])
        if packed is not None:
            request.packed_blocks.block_ids.extend(pairs[0])
            request.packed_blocks.hashes.CopyFrom(packed)
            return
    request.blocks.extend(_block_refs(blocks))


def _save_request(context_id: str, blocks: Blocks, layer_indices) -> engine_pb2.SaveRequest:
    request = engine_pb2.SaveRequest(context_id=context_id, layer_indices=list(layer_indices or []))
    _blocks_into(request, blocks)
    return request


def _load_request(context_id: str, blocks: Blocks, flag, lease_id: int, reply_when_done: bool):
    if flag is None and not reply_when_done:
        raise ValueError("load: pass a flag, or reply_when_done=True to learn the end from the reply")
    request = engine_pb2.LoadRequest(context_id=context_id, lease_id=lease_id, reply_when_done=reply_when_done)
    if flag is not None:
        request.flag.CopyFrom(_as_proto(flag, engine_pb2.LoadFlag))
    _blocks_into(request, blocks)
    return request
