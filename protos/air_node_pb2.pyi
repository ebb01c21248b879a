from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Acks(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACKS_ONE: _ClassVar[Acks]
    ACKS_QUORUM: _ClassVar[Acks]
    ACKS_ALL: _ClassVar[Acks]

class SenderStanding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SENDER_PEER: _ClassVar[SenderStanding]
    SENDER_DEPARTED: _ClassVar[SenderStanding]
    SENDER_WRITTEN_OFF: _ClassVar[SenderStanding]

class ChunkDigest(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHUNK_DIGEST_SHA256: _ClassVar[ChunkDigest]
    CHUNK_DIGEST_XXH3_128: _ClassVar[ChunkDigest]
ACKS_ONE: Acks
ACKS_QUORUM: Acks
ACKS_ALL: Acks
SENDER_PEER: SenderStanding
SENDER_DEPARTED: SenderStanding
SENDER_WRITTEN_OFF: SenderStanding
CHUNK_DIGEST_SHA256: ChunkDigest
CHUNK_DIGEST_XXH3_128: ChunkDigest

class Peer(_message.Message):
    __slots__ = ("node_id", "address")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    address: str
    def __init__(self, node_id: _Optional[int] = ..., address: _Optional[str] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("series", "timestamp", "value")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    series: str
    timestamp: int
    value: float
    def __init__(self, series: _Optional[str] = ..., timestamp: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...

class Columns(_message.Message):
    __slots__ = ("series", "series_index", "timestamps", "values")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    SERIES_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedScalarFieldContainer[str]
    series_index: _containers.RepeatedScalarFieldContainer[int]
    timestamps: _containers.RepeatedScalarFieldContainer[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, series: _Optional[_Iterable[str]] = ..., series_index: _Optional[_Iterable[int]] = ..., timestamps: _Optional[_Iterable[int]] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class MembershipReply(_message.Message):
    __slots__ = ("changed", "message")
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    changed: bool
    message: str
    def __init__(self, changed: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class RegionRequest(_message.Message):
    __slots__ = ("region",)
    REGION_FIELD_NUMBER: _ClassVar[int]
    region: int
    def __init__(self, region: _Optional[int] = ...) -> None: ...

class CreateLocalPeerRequest(_message.Message):
    __slots__ = ("region", "peers", "active", "await_snapshot")
    REGION_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    AWAIT_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    region: int
    peers: _containers.RepeatedCompositeFieldContainer[Peer]
    active: bool
    await_snapshot: bool
    def __init__(self, region: _Optional[int] = ..., peers: _Optional[_Iterable[_Union[Peer, _Mapping]]] = ..., active: _Optional[bool] = ..., await_snapshot: _Optional[bool] = ...) -> None: ...

class SetActiveRequest(_message.Message):
    __slots__ = ("region", "active", "for_deletion")
    REGION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    FOR_DELETION_FIELD_NUMBER: _ClassVar[int]
    region: int
    active: bool
    for_deletion: bool
    def __init__(self, region: _Optional[int] = ..., active: _Optional[bool] = ..., for_deletion: _Optional[bool] = ...) -> None: ...

class CreateChannelRequest(_message.Message):
    __slots__ = ("region", "receiver", "snapshot")
    REGION_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    region: int
    receiver: Peer
    snapshot: bool
    def __init__(self, region: _Optional[int] = ..., receiver: _Optional[_Union[Peer, _Mapping]] = ..., snapshot: _Optional[bool] = ...) -> None: ...

class DropChannelRequest(_message.Message):
    __slots__ = ("region", "receiver_id", "write_off")
    REGION_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_ID_FIELD_NUMBER: _ClassVar[int]
    WRITE_OFF_FIELD_NUMBER: _ClassVar[int]
    region: int
    receiver_id: int
    write_off: bool
    def __init__(self, region: _Optional[int] = ..., receiver_id: _Optional[int] = ..., write_off: _Optional[bool] = ...) -> None: ...

class ResetPeerListRequest(_message.Message):
    __slots__ = ("region", "peers")
    REGION_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    region: int
    peers: _containers.RepeatedCompositeFieldContainer[Peer]
    def __init__(self, region: _Optional[int] = ..., peers: _Optional[_Iterable[_Union[Peer, _Mapping]]] = ...) -> None: ...

class ChannelProgress(_message.Message):
    __slots__ = ("name", "receiver", "snapshot", "status", "acked", "lag", "snapshot_bytes_sent", "snapshot_bytes_skipped")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ACKED_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_BYTES_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    name: str
    receiver: Peer
    snapshot: bool
    status: str
    acked: int
    lag: int
    snapshot_bytes_sent: int
    snapshot_bytes_skipped: int
    def __init__(self, name: _Optional[str] = ..., receiver: _Optional[_Union[Peer, _Mapping]] = ..., snapshot: _Optional[bool] = ..., status: _Optional[str] = ..., acked: _Optional[int] = ..., lag: _Optional[int] = ..., snapshot_bytes_sent: _Optional[int] = ..., snapshot_bytes_skipped: _Optional[int] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("region", "applied", "max_assigned", "channels", "active", "installed", "leaving", "peers", "departed", "confirmed", "written_off", "snapshot_received")
    class AppliedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    REGION_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    MAX_ASSIGNED_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    INSTALLED_FIELD_NUMBER: _ClassVar[int]
    LEAVING_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    DEPARTED_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_OFF_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    region: int
    applied: _containers.ScalarMap[int, int]
    max_assigned: int
    channels: _containers.RepeatedCompositeFieldContainer[ChannelProgress]
    active: bool
    installed: bool
    leaving: bool
    peers: _containers.RepeatedCompositeFieldContainer[Peer]
    departed: _containers.RepeatedScalarFieldContainer[int]
    confirmed: bool
    written_off: _containers.RepeatedScalarFieldContainer[int]
    snapshot_received: int
    def __init__(self, region: _Optional[int] = ..., applied: _Optional[_Mapping[int, int]] = ..., max_assigned: _Optional[int] = ..., channels: _Optional[_Iterable[_Union[ChannelProgress, _Mapping]]] = ..., active: _Optional[bool] = ..., installed: _Optional[bool] = ..., leaving: _Optional[bool] = ..., peers: _Optional[_Iterable[_Union[Peer, _Mapping]]] = ..., departed: _Optional[_Iterable[int]] = ..., confirmed: _Optional[bool] = ..., written_off: _Optional[_Iterable[int]] = ..., snapshot_received: _Optional[int] = ...) -> None: ...

class CheckTransferCompleteRequest(_message.Message):
    __slots__ = ("region", "target")
    class TargetEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    REGION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    region: int
    target: _containers.ScalarMap[int, int]
    def __init__(self, region: _Optional[int] = ..., target: _Optional[_Mapping[int, int]] = ...) -> None: ...

class CheckTransferCompleteReply(_message.Message):
    __slots__ = ("complete", "lag", "total_lag", "installed", "snapshot_received", "snapshot_limit_bytes_per_s", "snapshot_limit_auto")
    class LagEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    TOTAL_LAG_FIELD_NUMBER: _ClassVar[int]
    INSTALLED_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_LIMIT_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_LIMIT_AUTO_FIELD_NUMBER: _ClassVar[int]
    complete: bool
    lag: _containers.ScalarMap[int, int]
    total_lag: int
    installed: bool
    snapshot_received: int
    snapshot_limit_bytes_per_s: float
    snapshot_limit_auto: bool
    def __init__(self, complete: _Optional[bool] = ..., lag: _Optional[_Mapping[int, int]] = ..., total_lag: _Optional[int] = ..., installed: _Optional[bool] = ..., snapshot_received: _Optional[int] = ..., snapshot_limit_bytes_per_s: _Optional[float] = ..., snapshot_limit_auto: _Optional[bool] = ...) -> None: ...

class ReleaseStatusReply(_message.Message):
    __slots__ = ("released", "exists", "detail")
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    released: bool
    exists: bool
    detail: str
    def __init__(self, released: _Optional[bool] = ..., exists: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class WriteRequest(_message.Message):
    __slots__ = ("region", "points", "acks", "columns")
    REGION_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    ACKS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    region: int
    points: _containers.RepeatedCompositeFieldContainer[Point]
    acks: Acks
    columns: Columns
    def __init__(self, region: _Optional[int] = ..., points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., acks: _Optional[_Union[Acks, str]] = ..., columns: _Optional[_Union[Columns, _Mapping]] = ...) -> None: ...

class WriteReply(_message.Message):
    __slots__ = ("origin", "seq", "count", "applied_by")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_BY_FIELD_NUMBER: _ClassVar[int]
    origin: int
    seq: int
    count: int
    applied_by: int
    def __init__(self, origin: _Optional[int] = ..., seq: _Optional[int] = ..., count: _Optional[int] = ..., applied_by: _Optional[int] = ...) -> None: ...

class ReadRequest(_message.Message):
    __slots__ = ("region", "series", "start", "end")
    REGION_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    region: int
    series: str
    start: int
    end: int
    def __init__(self, region: _Optional[int] = ..., series: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class ReadReply(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[Point]
    def __init__(self, points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ...) -> None: ...

class DigestReply(_message.Message):
    __slots__ = ("region", "count", "hash", "active", "installed")
    REGION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    INSTALLED_FIELD_NUMBER: _ClassVar[int]
    region: int
    count: int
    hash: str
    active: bool
    installed: bool
    def __init__(self, region: _Optional[int] = ..., count: _Optional[int] = ..., hash: _Optional[str] = ..., active: _Optional[bool] = ..., installed: _Optional[bool] = ...) -> None: ...

class RegionInfo(_message.Message):
    __slots__ = ("region", "peers", "active", "installed", "leaving", "store_bytes", "check_reads")
    REGION_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    INSTALLED_FIELD_NUMBER: _ClassVar[int]
    LEAVING_FIELD_NUMBER: _ClassVar[int]
    STORE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHECK_READS_FIELD_NUMBER: _ClassVar[int]
    region: int
    peers: _containers.RepeatedCompositeFieldContainer[Peer]
    active: bool
    installed: bool
    leaving: bool
    store_bytes: int
    check_reads: int
    def __init__(self, region: _Optional[int] = ..., peers: _Optional[_Iterable[_Union[Peer, _Mapping]]] = ..., active: _Optional[bool] = ..., installed: _Optional[bool] = ..., leaving: _Optional[bool] = ..., store_bytes: _Optional[int] = ..., check_reads: _Optional[int] = ...) -> None: ...

class ThrottleRequest(_message.Message):
    __slots__ = ("bytes_per_s", "auto")
    BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    AUTO_FIELD_NUMBER: _ClassVar[int]
    bytes_per_s: float
    auto: bool
    def __init__(self, bytes_per_s: _Optional[float] = ..., auto: _Optional[bool] = ...) -> None: ...

class ThrottleReply(_message.Message):
    __slots__ = ("bytes_per_s", "previous")
    BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    bytes_per_s: float
    previous: float
    def __init__(self, bytes_per_s: _Optional[float] = ..., previous: _Optional[float] = ...) -> None: ...

class ListRegionsRequest(_message.Message):
    __slots__ = ("after_region", "limit")
    AFTER_REGION_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    after_region: int
    limit: int
    def __init__(self, after_region: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListRegionsReply(_message.Message):
    __slots__ = ("node_id", "regions", "next_after", "disk_capacity", "disk_used", "locality")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_FIELD_NUMBER: _ClassVar[int]
    DISK_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    DISK_USED_FIELD_NUMBER: _ClassVar[int]
    LOCALITY_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    regions: _containers.RepeatedCompositeFieldContainer[RegionInfo]
    next_after: int
    disk_capacity: int
    disk_used: int
    locality: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_id: _Optional[int] = ..., regions: _Optional[_Iterable[_Union[RegionInfo, _Mapping]]] = ..., next_after: _Optional[int] = ..., disk_capacity: _Optional[int] = ..., disk_used: _Optional[int] = ..., locality: _Optional[_Iterable[str]] = ...) -> None: ...

class TransferBatch(_message.Message):
    __slots__ = ("after", "upto", "seqs", "points", "columns")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    UPTO_FIELD_NUMBER: _ClassVar[int]
    SEQS_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    after: int
    upto: int
    seqs: _containers.RepeatedScalarFieldContainer[int]
    points: _containers.RepeatedCompositeFieldContainer[Point]
    columns: Columns
    def __init__(self, after: _Optional[int] = ..., upto: _Optional[int] = ..., seqs: _Optional[_Iterable[int]] = ..., points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., columns: _Optional[_Union[Columns, _Mapping]] = ...) -> None: ...

class TransferHello(_message.Message):
    __slots__ = ("region", "sender", "origin", "retiring")
    REGION_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    RETIRING_FIELD_NUMBER: _ClassVar[int]
    region: int
    sender: int
    origin: int
    retiring: bool
    def __init__(self, region: _Optional[int] = ..., sender: _Optional[int] = ..., origin: _Optional[int] = ..., retiring: _Optional[bool] = ...) -> None: ...

class TransferRequest(_message.Message):
    __slots__ = ("hello", "batch")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    hello: TransferHello
    batch: TransferBatch
    def __init__(self, hello: _Optional[_Union[TransferHello, _Mapping]] = ..., batch: _Optional[_Union[TransferBatch, _Mapping]] = ...) -> None: ...

class TransferReply(_message.Message):
    __slots__ = ("installed", "applied", "active", "columnar", "snapshot_chunk_bytes", "snapshot_held", "standing", "locality", "snapshot_digests", "snapshot_held_digest")
    class AppliedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    class SnapshotHeldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: bytes
        def __init__(self, key: _Optional[int] = ..., value: _Optional[bytes] = ...) -> None: ...
    INSTALLED_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    COLUMNAR_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_HELD_FIELD_NUMBER: _ClassVar[int]
    STANDING_FIELD_NUMBER: _ClassVar[int]
    LOCALITY_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_HELD_DIGEST_FIELD_NUMBER: _ClassVar[int]
    installed: bool
    applied: _containers.ScalarMap[int, int]
    active: bool
    columnar: bool
    snapshot_chunk_bytes: int
    snapshot_held: _containers.ScalarMap[int, bytes]
    standing: SenderStanding
    locality: _containers.RepeatedScalarFieldContainer[str]
    snapshot_digests: _containers.RepeatedScalarFieldContainer[ChunkDigest]
    snapshot_held_digest: ChunkDigest
    def __init__(self, installed: _Optional[bool] = ..., applied: _Optional[_Mapping[int, int]] = ..., active: _Optional[bool] = ..., columnar: _Optional[bool] = ..., snapshot_chunk_bytes: _Optional[int] = ..., snapshot_held: _Optional[_Mapping[int, bytes]] = ..., standing: _Optional[_Union[SenderStanding, str]] = ..., locality: _Optional[_Iterable[str]] = ..., snapshot_digests: _Optional[_Iterable[_Union[ChunkDigest, str]]] = ..., snapshot_held_digest: _Optional[_Union[ChunkDigest, str]] = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("region", "sender", "data", "last", "sha256", "offset", "digest", "size", "root", "limit_bytes_per_s", "limit_auto", "digest_kind")
    REGION_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    LIMIT_AUTO_FIELD_NUMBER: _ClassVar[int]
    DIGEST_KIND_FIELD_NUMBER: _ClassVar[int]
    region: int
    sender: int
    data: bytes
    last: bool
    sha256: str
    offset: int
    digest: bytes
    size: int
    root: bytes
    limit_bytes_per_s: float
    limit_auto: bool
    digest_kind: ChunkDigest
    def __init__(self, region: _Optional[int] = ..., sender: _Optional[int] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ..., sha256: _Optional[str] = ..., offset: _Optional[int] = ..., digest: _Optional[bytes] = ..., size: _Optional[int] = ..., root: _Optional[bytes] = ..., limit_bytes_per_s: _Optional[float] = ..., limit_auto: _Optional[bool] = ..., digest_kind: _Optional[_Union[ChunkDigest, str]] = ...) -> None: ...

class ForwardOriginRequest(_message.Message):
    __slots__ = ("region", "origin", "receiver", "upto")
    REGION_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    UPTO_FIELD_NUMBER: _ClassVar[int]
    region: int
    origin: int
    receiver: Peer
    upto: int
    def __init__(self, region: _Optional[int] = ..., origin: _Optional[int] = ..., receiver: _Optional[_Union[Peer, _Mapping]] = ..., upto: _Optional[int] = ...) -> None: ...

class ForwardOriginReply(_message.Message):
    __slots__ = ("applied", "points")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    applied: int
    points: int
    def __init__(self, applied: _Optional[int] = ..., points: _Optional[int] = ...) -> None: ...

class CheckRangeRequest(_message.Message):
    __slots__ = ("region", "settled", "from_start", "after_series", "after_ts", "to_end", "until_series", "until_ts", "limit", "list_points")
    class SettledEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    REGION_FIELD_NUMBER: _ClassVar[int]
    SETTLED_FIELD_NUMBER: _ClassVar[int]
    FROM_START_FIELD_NUMBER: _ClassVar[int]
    AFTER_SERIES_FIELD_NUMBER: _ClassVar[int]
    AFTER_TS_FIELD_NUMBER: _ClassVar[int]
    TO_END_FIELD_NUMBER: _ClassVar[int]
    UNTIL_SERIES_FIELD_NUMBER: _ClassVar[int]
    UNTIL_TS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    LIST_POINTS_FIELD_NUMBER: _ClassVar[int]
    region: int
    settled: _containers.ScalarMap[int, int]
    from_start: bool
    after_series: str
    after_ts: int
    to_end: bool
    until_series: str
    until_ts: int
    limit: int
    list_points: bool
    def __init__(self, region: _Optional[int] = ..., settled: _Optional[_Mapping[int, int]] = ..., from_start: _Optional[bool] = ..., after_series: _Optional[str] = ..., after_ts: _Optional[int] = ..., to_end: _Optional[bool] = ..., until_series: _Optional[str] = ..., until_ts: _Optional[int] = ..., limit: _Optional[int] = ..., list_points: _Optional[bool] = ...) -> None: ...

class CheckedPoint(_message.Message):
    __slots__ = ("series", "timestamp", "value", "origin", "seq")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    series: str
    timestamp: int
    value: float
    origin: int
    seq: int
    def __init__(self, series: _Optional[str] = ..., timestamp: _Optional[int] = ..., value: _Optional[float] = ..., origin: _Optional[int] = ..., seq: _Optional[int] = ...) -> None: ...

class CheckRangeReply(_message.Message):
    __slots__ = ("hash", "settled", "unsettled", "more", "last_series", "last_ts", "bytes_read", "applied", "points", "cpu_s")
    class AppliedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    HASH_FIELD_NUMBER: _ClassVar[int]
    SETTLED_FIELD_NUMBER: _ClassVar[int]
    UNSETTLED_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    LAST_SERIES_FIELD_NUMBER: _ClassVar[int]
    LAST_TS_FIELD_NUMBER: _ClassVar[int]
    BYTES_READ_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    CPU_S_FIELD_NUMBER: _ClassVar[int]
    hash: str
    settled: int
    unsettled: int
    more: bool
    last_series: str
    last_ts: int
    bytes_read: int
    applied: _containers.ScalarMap[int, int]
    points: _containers.RepeatedCompositeFieldContainer[CheckedPoint]
    cpu_s: float
    def __init__(self, hash: _Optional[str] = ..., settled: _Optional[int] = ..., unsettled: _Optional[int] = ..., more: _Optional[bool] = ..., last_series: _Optional[str] = ..., last_ts: _Optional[int] = ..., bytes_read: _Optional[int] = ..., applied: _Optional[_Mapping[int, int]] = ..., points: _Optional[_Iterable[_Union[CheckedPoint, _Mapping]]] = ..., cpu_s: _Optional[float] = ...) -> None: ...

class SnapshotReply(_message.Message):
    __slots__ = ("installed", "bytes", "applied")
    class AppliedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    INSTALLED_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    installed: bool
    bytes: int
    applied: _containers.ScalarMap[int, int]
    def __init__(self, installed: _Optional[bool] = ..., bytes: _Optional[int] = ..., applied: _Optional[_Mapping[int, int]] = ...) -> None: ...

class ProbeRequest(_message.Message):
    __slots__ = ("target", "timeout_s")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    target: Peer
    timeout_s: float
    def __init__(self, target: _Optional[_Union[Peer, _Mapping]] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class ProbeReply(_message.Message):
    __slots__ = ("reached", "detail", "seconds")
    REACHED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    reached: bool
    detail: str
    seconds: float
    def __init__(self, reached: _Optional[bool] = ..., detail: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...
