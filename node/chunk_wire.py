"""A snapshot chunk on the wire, its data not copied by protobuf on either end.

A chunk message is a megabyte of data and a few small fields. Built and parsed as a protobuf
message, the data was copied into the message, again into its serialized form and, on the
receiving end, out of the parsed message; with gRPC's own, copies were about a tenth of each
end's CPU (`perf`; BENCHMARKS.md, 2026-12-07). Here the small fields go through protobuf as
usual, and the data is appended as the message's field 3 after them on the way out (protobuf
takes fields in any order, so a node that parses the whole message reads the same chunk) and
taken as a view into the received message on the way in. InstallSnapshot's sender serializes
with `encode` and its receiver parses with `decode` (node/service.py registers it); either end
may be any build.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.protobuf.message import DecodeError

from protos import air_node_pb2 as pb

Buffer = bytes | bytearray | memoryview

_DATA = pb.SnapshotChunk.DESCRIPTOR.fields_by_name["data"].number
_LENGTH_DELIMITED, _VARINT, _FIXED64, _FIXED32 = 2, 0, 1, 5
_SERVICE = pb.DESCRIPTOR.services_by_name["AirNode"]
INSTALL_SNAPSHOT = f"/{_SERVICE.full_name}/InstallSnapshot"


@dataclass
class Chunk:
    """A snapshot chunk: its small fields as a message (`data` never set there), its data as
    a buffer."""

    fields: pb.SnapshotChunk = field(default_factory=pb.SnapshotChunk)
    data: Buffer = b""


def encode(chunk: Chunk) -> bytes:
    """The chunk as one SnapshotChunk message; its data copied once, into the message."""
    head = chunk.fields.SerializeToString()
    if not chunk.data:
        return head
    tag = _varint(_DATA << 3 | _LENGTH_DELIMITED)
    return b"".join((head, tag, _varint(len(chunk.data)), chunk.data))


def decode(message: bytes) -> Chunk:
    """A SnapshotChunk message, however its fields are ordered: its data a view into
    `message` (the last one, as protobuf takes a field given twice). `ValueError` if it is not
    a well-formed message."""
    view = memoryview(message)
    rest: list[memoryview] = []
    data: Buffer = b""
    at = 0
    while at < len(view):
        start = at
        key, at = _read_varint(view, at)
        number, kind = key >> 3, key & 7
        if kind == _VARINT:
            _, at = _read_varint(view, at)
        elif kind == _FIXED64:
            at += 8
        elif kind == _FIXED32:
            at += 4
        elif kind == _LENGTH_DELIMITED:
            length, at = _read_varint(view, at)
            if number == _DATA and at + length <= len(view):
                data, at = view[at : at + length], at + length
                continue
            at += length
        else:
            raise ValueError(f"a snapshot chunk with a field of wire type {kind}")
        if at > len(view):
            raise ValueError("a snapshot chunk cut short")
        rest.append(view[start:at])
    try:
        return Chunk(pb.SnapshotChunk.FromString(b"".join(rest)), data)
    except DecodeError as e:
        raise ValueError(f"a malformed snapshot chunk: {e}") from e


def install_snapshot(
    channel: grpc.aio.Channel,
) -> grpc.aio.StreamUnaryMultiCallable[Chunk, pb.SnapshotReply]:
    """InstallSnapshot on `channel`, its chunks sent as `encode` frames them."""
    return channel.stream_unary(
        INSTALL_SNAPSHOT,
        request_serializer=encode,
        response_deserializer=pb.SnapshotReply.FromString,
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if not n:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _read_varint(view: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(view) or shift > 63:
            raise ValueError("a snapshot chunk with a malformed varint")
        byte = view[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at
