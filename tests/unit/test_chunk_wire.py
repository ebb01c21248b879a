"""A snapshot chunk's wire form (node/chunk_wire.py): what `encode` frames, protobuf parses
as the same message, and `decode` parses any SnapshotChunk message, its data a view into it;
a malformed one is refused."""

from __future__ import annotations

import os

import pytest

from node.chunk_wire import Chunk, decode, encode
from protos import air_node_pb2 as pb

DATA = os.urandom(300_000)


def fields() -> pb.SnapshotChunk:
    return pb.SnapshotChunk(
        region=3,
        sender=9,
        offset=7 << 20,
        digest=b"d" * 32,
        limit_bytes_per_s=2.5,
        digest_kind=pb.CHUNK_DIGEST_XXH3_128,
    )


def test_encode_frames_the_message_protobuf_would() -> None:
    message = fields()
    message.data = DATA
    assert pb.SnapshotChunk.FromString(encode(Chunk(fields(), DATA))) == message
    last = pb.SnapshotChunk(region=3, sender=9, last=True, size=5, root=b"r" * 32)
    assert encode(Chunk(last)) == last.SerializeToString()


def test_decode_takes_any_order_and_views_the_data() -> None:
    message = fields()
    message.data = DATA
    for wire in (message.SerializeToString(), encode(Chunk(fields(), DATA))):
        chunk = decode(wire)
        assert chunk.fields == fields() and not chunk.fields.data
        assert isinstance(chunk.data, memoryview) and chunk.data.obj is wire
        assert chunk.data == DATA
    twice = encode(Chunk(fields(), b"old")) + encode(Chunk(pb.SnapshotChunk(), DATA))
    assert decode(twice).data == DATA  # a field given twice: the last, as protobuf takes it


def test_a_malformed_chunk_is_refused() -> None:
    wire = encode(Chunk(fields(), DATA))
    for bad, why in (
        (wire[:-1], "cut short"),
        (wire[:3], "cut short|malformed varint"),
        (b"\x1a\xff", "malformed varint"),
        (b"\x0f", "wire type 7"),
        (b"\x2a\x02\xff\xff", "malformed snapshot chunk"),  # `sha256`, a string, not UTF-8
    ):
        with pytest.raises(ValueError, match=why):
            decode(bad)
