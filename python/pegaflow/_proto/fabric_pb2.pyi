from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LocateRequest(_message.Message):
    __slots__ = ("namespace", "hashes")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, namespace: _Optional[str] = ..., hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class LocateResponse(_message.Message):
    __slots__ = ("blocks", "prefix_length", "complete", "node_id")
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    PREFIX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    blocks: _containers.RepeatedCompositeFieldContainer[BlockHolders]
    prefix_length: int
    complete: bool
    node_id: str
    def __init__(self, blocks: _Optional[_Iterable[_Union[BlockHolders, _Mapping]]] = ..., prefix_length: _Optional[int] = ..., complete: _Optional[bool] = ..., node_id: _Optional[str] = ...) -> None: ...

class BlockHolders(_message.Message):
    __slots__ = ("node_ids",)
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    node_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchLocationsRequest(_message.Message):
    __slots__ = ("namespace", "after_sequence", "incarnation")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    after_sequence: int
    incarnation: int
    def __init__(self, namespace: _Optional[str] = ..., after_sequence: _Optional[int] = ..., incarnation: _Optional[int] = ...) -> None: ...

class LocationEvent(_message.Message):
    __slots__ = ("kind", "node_id", "hash", "sequence", "incarnation")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[LocationEvent.Kind]
        HELD: _ClassVar[LocationEvent.Kind]
        SNAPSHOT_END: _ClassVar[LocationEvent.Kind]
        STORED: _ClassVar[LocationEvent.Kind]
        REMOVED: _ClassVar[LocationEvent.Kind]
    KIND_UNSPECIFIED: LocationEvent.Kind
    HELD: LocationEvent.Kind
    SNAPSHOT_END: LocationEvent.Kind
    STORED: LocationEvent.Kind
    REMOVED: LocationEvent.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    kind: LocationEvent.Kind
    node_id: str
    hash: bytes
    sequence: int
    incarnation: int
    def __init__(self, kind: _Optional[_Union[LocationEvent.Kind, str]] = ..., node_id: _Optional[str] = ..., hash: _Optional[bytes] = ..., sequence: _Optional[int] = ..., incarnation: _Optional[int] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("node_id", "status", "version", "uptime_ms", "copy_engine", "transport", "pools")
    class ServingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SERVING_STATUS_UNSPECIFIED: _ClassVar[HealthResponse.ServingStatus]
        SERVING: _ClassVar[HealthResponse.ServingStatus]
        NOT_SERVING: _ClassVar[HealthResponse.ServingStatus]
    SERVING_STATUS_UNSPECIFIED: HealthResponse.ServingStatus
    SERVING: HealthResponse.ServingStatus
    NOT_SERVING: HealthResponse.ServingStatus
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_MS_FIELD_NUMBER: _ClassVar[int]
    COPY_ENGINE_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    POOLS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    status: HealthResponse.ServingStatus
    version: str
    uptime_ms: int
    copy_engine: str
    transport: str
    pools: _containers.RepeatedCompositeFieldContainer[PoolUse]
    def __init__(self, node_id: _Optional[str] = ..., status: _Optional[_Union[HealthResponse.ServingStatus, str]] = ..., version: _Optional[str] = ..., uptime_ms: _Optional[int] = ..., copy_engine: _Optional[str] = ..., transport: _Optional[str] = ..., pools: _Optional[_Iterable[_Union[PoolUse, _Mapping]]] = ...) -> None: ...

class PoolUse(_message.Message):
    __slots__ = ("pool", "numa_node", "capacity_bytes", "used_bytes", "gpus")
    POOL_FIELD_NUMBER: _ClassVar[int]
    NUMA_NODE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    pool: int
    numa_node: int
    capacity_bytes: int
    used_bytes: int
    gpus: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pool: _Optional[int] = ..., numa_node: _Optional[int] = ..., capacity_bytes: _Optional[int] = ..., used_bytes: _Optional[int] = ..., gpus: _Optional[_Iterable[str]] = ...) -> None: ...

class ClusterStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClusterStatusResponse(_message.Message):
    __slots__ = ("cluster_name", "self_node_id", "self_address", "members", "unreachable", "leader_address")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    SELF_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SELF_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    self_node_id: str
    self_address: str
    members: _containers.RepeatedCompositeFieldContainer[Member]
    unreachable: _containers.RepeatedScalarFieldContainer[str]
    leader_address: str
    def __init__(self, cluster_name: _Optional[str] = ..., self_node_id: _Optional[str] = ..., self_address: _Optional[str] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., unreachable: _Optional[_Iterable[str]] = ..., leader_address: _Optional[str] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("address", "node_id", "status", "roles")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    address: str
    node_id: str
    status: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, address: _Optional[str] = ..., node_id: _Optional[str] = ..., status: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ("reason", "confirm_node_id")
    REASON_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    reason: str
    confirm_node_id: str
    def __init__(self, reason: _Optional[str] = ..., confirm_node_id: _Optional[str] = ...) -> None: ...

class ShutdownResponse(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...
