from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueryScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUERY_SCOPE_LOCAL: _ClassVar[QueryScope]
    QUERY_SCOPE_CLUSTER: _ClassVar[QueryScope]
QUERY_SCOPE_LOCAL: QueryScope
QUERY_SCOPE_CLUSTER: QueryScope

class RegisterContextRequest(_message.Message):
    __slots__ = ("instance_id", "namespace", "tp_rank", "tp_size", "pp_rank", "total_layers", "device", "layers")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TP_RANK_FIELD_NUMBER: _ClassVar[int]
    TP_SIZE_FIELD_NUMBER: _ClassVar[int]
    PP_RANK_FIELD_NUMBER: _ClassVar[int]
    TOTAL_LAYERS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    namespace: str
    tp_rank: int
    tp_size: int
    pp_rank: int
    total_layers: int
    device: str
    layers: _containers.RepeatedCompositeFieldContainer[LayerRegistration]
    def __init__(self, instance_id: _Optional[str] = ..., namespace: _Optional[str] = ..., tp_rank: _Optional[int] = ..., tp_size: _Optional[int] = ..., pp_rank: _Optional[int] = ..., total_layers: _Optional[int] = ..., device: _Optional[str] = ..., layers: _Optional[_Iterable[_Union[LayerRegistration, _Mapping]]] = ...) -> None: ...

class LayerRegistration(_message.Message):
    __slots__ = ("name", "layer_index", "region", "num_blocks", "block_stride_bytes", "segments", "replicated", "layer_count", "layer_stride_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LAYER_INDEX_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    NUM_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    BLOCK_STRIDE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    REPLICATED_FIELD_NUMBER: _ClassVar[int]
    LAYER_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAYER_STRIDE_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    layer_index: int
    region: MemoryRegion
    num_blocks: int
    block_stride_bytes: int
    segments: _containers.RepeatedCompositeFieldContainer[ByteSegment]
    replicated: bool
    layer_count: int
    layer_stride_bytes: int
    def __init__(self, name: _Optional[str] = ..., layer_index: _Optional[int] = ..., region: _Optional[_Union[MemoryRegion, _Mapping]] = ..., num_blocks: _Optional[int] = ..., block_stride_bytes: _Optional[int] = ..., segments: _Optional[_Iterable[_Union[ByteSegment, _Mapping]]] = ..., replicated: _Optional[bool] = ..., layer_count: _Optional[int] = ..., layer_stride_bytes: _Optional[int] = ...) -> None: ...

class MemoryRegion(_message.Message):
    __slots__ = ("shm", "cuda_ipc")
    SHM_FIELD_NUMBER: _ClassVar[int]
    CUDA_IPC_FIELD_NUMBER: _ClassVar[int]
    shm: SharedMemoryRegion
    cuda_ipc: CudaIpcRegion
    def __init__(self, shm: _Optional[_Union[SharedMemoryRegion, _Mapping]] = ..., cuda_ipc: _Optional[_Union[CudaIpcRegion, _Mapping]] = ...) -> None: ...

class SharedMemoryRegion(_message.Message):
    __slots__ = ("path", "offset_bytes")
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_BYTES_FIELD_NUMBER: _ClassVar[int]
    path: str
    offset_bytes: int
    def __init__(self, path: _Optional[str] = ..., offset_bytes: _Optional[int] = ...) -> None: ...

class CudaIpcRegion(_message.Message):
    __slots__ = ("ipc_handle", "allocation_size_bytes", "offset_bytes")
    IPC_HANDLE_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    OFFSET_BYTES_FIELD_NUMBER: _ClassVar[int]
    ipc_handle: bytes
    allocation_size_bytes: int
    offset_bytes: int
    def __init__(self, ipc_handle: _Optional[bytes] = ..., allocation_size_bytes: _Optional[int] = ..., offset_bytes: _Optional[int] = ...) -> None: ...

class ByteSegment(_message.Message):
    __slots__ = ("offset_bytes", "length_bytes")
    OFFSET_BYTES_FIELD_NUMBER: _ClassVar[int]
    LENGTH_BYTES_FIELD_NUMBER: _ClassVar[int]
    offset_bytes: int
    length_bytes: int
    def __init__(self, offset_bytes: _Optional[int] = ..., length_bytes: _Optional[int] = ...) -> None: ...

class RegisterContextResponse(_message.Message):
    __slots__ = ("context_id", "block_bytes", "slot_bytes")
    CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCK_BYTES_FIELD_NUMBER: _ClassVar[int]
    SLOT_BYTES_FIELD_NUMBER: _ClassVar[int]
    context_id: str
    block_bytes: int
    slot_bytes: int
    def __init__(self, context_id: _Optional[str] = ..., block_bytes: _Optional[int] = ..., slot_bytes: _Optional[int] = ...) -> None: ...

class UnregisterContextRequest(_message.Message):
    __slots__ = ("context_id",)
    CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    context_id: str
    def __init__(self, context_id: _Optional[str] = ...) -> None: ...

class UnregisterContextResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ("context_id",)
    CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    context_id: str
    def __init__(self, context_id: _Optional[str] = ...) -> None: ...

class SessionEvent(_message.Message):
    __slots__ = ("attached", "heartbeat_ms")
    ATTACHED_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_MS_FIELD_NUMBER: _ClassVar[int]
    attached: str
    heartbeat_ms: int
    def __init__(self, attached: _Optional[str] = ..., heartbeat_ms: _Optional[int] = ...) -> None: ...

class BlockRef(_message.Message):
    __slots__ = ("block_id", "hash")
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    block_id: int
    hash: bytes
    def __init__(self, block_id: _Optional[int] = ..., hash: _Optional[bytes] = ...) -> None: ...

class PackedBlocks(_message.Message):
    __slots__ = ("block_ids", "hashes")
    BLOCK_IDS_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    block_ids: _containers.RepeatedScalarFieldContainer[int]
    hashes: PackedHashes
    def __init__(self, block_ids: _Optional[_Iterable[int]] = ..., hashes: _Optional[_Union[PackedHashes, _Mapping]] = ...) -> None: ...

class PackedHashes(_message.Message):
    __slots__ = ("data", "hash_bytes")
    DATA_FIELD_NUMBER: _ClassVar[int]
    HASH_BYTES_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    hash_bytes: int
    def __init__(self, data: _Optional[bytes] = ..., hash_bytes: _Optional[int] = ...) -> None: ...

class SaveRequest(_message.Message):
    __slots__ = ("context_id", "blocks", "layer_indices", "packed_blocks")
    CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    LAYER_INDICES_FIELD_NUMBER: _ClassVar[int]
    PACKED_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    context_id: str
    blocks: _containers.RepeatedCompositeFieldContainer[BlockRef]
    layer_indices: _containers.RepeatedScalarFieldContainer[int]
    packed_blocks: PackedBlocks
    def __init__(self, context_id: _Optional[str] = ..., blocks: _Optional[_Iterable[_Union[BlockRef, _Mapping]]] = ..., layer_indices: _Optional[_Iterable[int]] = ..., packed_blocks: _Optional[_Union[PackedBlocks, _Mapping]] = ...) -> None: ...

class SaveResponse(_message.Message):
    __slots__ = ("blocks_stored", "blocks_skipped", "blocks_sealed")
    BLOCKS_STORED_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_SEALED_FIELD_NUMBER: _ClassVar[int]
    blocks_stored: int
    blocks_skipped: int
    blocks_sealed: int
    def __init__(self, blocks_stored: _Optional[int] = ..., blocks_skipped: _Optional[int] = ..., blocks_sealed: _Optional[int] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("namespace", "hashes", "lease_ttl_ms", "scope", "packed_hashes")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    PACKED_HASHES_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    lease_ttl_ms: int
    scope: QueryScope
    packed_hashes: PackedHashes
    def __init__(self, namespace: _Optional[str] = ..., hashes: _Optional[_Iterable[bytes]] = ..., lease_ttl_ms: _Optional[int] = ..., scope: _Optional[_Union[QueryScope, str]] = ..., packed_hashes: _Optional[_Union[PackedHashes, _Mapping]] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("hit_blocks", "lease_id", "lease_expires_in_ms", "local_hit_blocks")
    HIT_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_IN_MS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_HIT_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    hit_blocks: int
    lease_id: int
    lease_expires_in_ms: int
    local_hit_blocks: int
    def __init__(self, hit_blocks: _Optional[int] = ..., lease_id: _Optional[int] = ..., lease_expires_in_ms: _Optional[int] = ..., local_hit_blocks: _Optional[int] = ...) -> None: ...

class LoadRequest(_message.Message):
    __slots__ = ("context_id", "blocks", "lease_id", "flag", "packed_blocks", "reply_when_done")
    CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    FLAG_FIELD_NUMBER: _ClassVar[int]
    PACKED_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    REPLY_WHEN_DONE_FIELD_NUMBER: _ClassVar[int]
    context_id: str
    blocks: _containers.RepeatedCompositeFieldContainer[BlockRef]
    lease_id: int
    flag: LoadFlag
    packed_blocks: PackedBlocks
    reply_when_done: bool
    def __init__(self, context_id: _Optional[str] = ..., blocks: _Optional[_Iterable[_Union[BlockRef, _Mapping]]] = ..., lease_id: _Optional[int] = ..., flag: _Optional[_Union[LoadFlag, _Mapping]] = ..., packed_blocks: _Optional[_Union[PackedBlocks, _Mapping]] = ..., reply_when_done: _Optional[bool] = ...) -> None: ...

class LoadFlag(_message.Message):
    __slots__ = ("path", "offset_bytes")
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_BYTES_FIELD_NUMBER: _ClassVar[int]
    path: str
    offset_bytes: int
    def __init__(self, path: _Optional[str] = ..., offset_bytes: _Optional[int] = ...) -> None: ...

class LoadResponse(_message.Message):
    __slots__ = ("failed_block_ids", "blocks_scheduled", "done_state", "blocks_loaded", "blocks_failed", "node_duration_ns")
    FAILED_BLOCK_IDS_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    DONE_STATE_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_LOADED_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FAILED_FIELD_NUMBER: _ClassVar[int]
    NODE_DURATION_NS_FIELD_NUMBER: _ClassVar[int]
    failed_block_ids: _containers.RepeatedScalarFieldContainer[int]
    blocks_scheduled: int
    done_state: int
    blocks_loaded: int
    blocks_failed: int
    node_duration_ns: int
    def __init__(self, failed_block_ids: _Optional[_Iterable[int]] = ..., blocks_scheduled: _Optional[int] = ..., done_state: _Optional[int] = ..., blocks_loaded: _Optional[int] = ..., blocks_failed: _Optional[int] = ..., node_duration_ns: _Optional[int] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("lease_id",)
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    def __init__(self, lease_id: _Optional[int] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: bool
    def __init__(self, released: _Optional[bool] = ...) -> None: ...

class OpenCommandChannelRequest(_message.Message):
    __slots__ = ("context_id",)
    CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    context_id: str
    def __init__(self, context_id: _Optional[str] = ...) -> None: ...

class OpenCommandChannelResponse(_message.Message):
    __slots__ = ("path", "size_bytes", "version", "slot_count", "slot_bytes", "max_blocks", "max_layers", "header_bytes")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SLOT_COUNT_FIELD_NUMBER: _ClassVar[int]
    SLOT_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    MAX_LAYERS_FIELD_NUMBER: _ClassVar[int]
    HEADER_BYTES_FIELD_NUMBER: _ClassVar[int]
    path: str
    size_bytes: int
    version: int
    slot_count: int
    slot_bytes: int
    max_blocks: int
    max_layers: int
    header_bytes: int
    def __init__(self, path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., version: _Optional[int] = ..., slot_count: _Optional[int] = ..., slot_bytes: _Optional[int] = ..., max_blocks: _Optional[int] = ..., max_layers: _Optional[int] = ..., header_bytes: _Optional[int] = ...) -> None: ...
