"""The node's wire toward other builds (node/compat.py): what this build sends is what a node
at the floor takes, and a node below the floor is refused by name, on either end."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from node.channel import from_proto, to_proto
from node.chunk_wire import decode, encode
from node.compat import BelowFloor, check_chunk, check_chunk_bytes, check_receiver
from node.digests import SHA256
from node.snapshot import CHUNK_BYTES, Held, IncomingSnapshot, Sent, snapshot_chunks
from node.store import HeldView, OriginBatch
from protos import air_node_pb2 as pb


async def test_what_this_build_sends_is_what_a_node_at_the_floor_takes(tmp_path: Path) -> None:
    source = tmp_path / "store"
    source.write_bytes(os.urandom(2 * CHUNK_BYTES + 7))
    view = HeldView(sqlite3.connect(":memory:"), source, source.stat().st_size)
    # a receiver of the floor build names no digest: it is sent sha256 (node/digests.py)
    chunks = snapshot_chunks(view, 7, 1, Held(CHUNK_BYTES, {}), SHA256, Sent())
    # as a node of the floor build parses them: whole protobuf messages
    stream = [pb.SnapshotChunk.FromString(encode(c)) async for c in chunks]
    for message in stream:
        check_chunk(decode(message.SerializeToString()))
    assert all(c.digest for c in stream[:-1]) and not any(c.sha256 for c in stream)
    assert stream[-1].last and stream[-1].root and not stream[-1].data
    assert b"".join(c.data for c in stream) == source.read_bytes()

    rows = [("a", 1, 1.0), ("b", 2, 2.5)]
    batch = to_proto(OriginBatch(after=0, upto=2, seqs=[1, 2], rows=rows))
    assert not batch.points and batch.HasField("columns")
    assert from_proto(batch).rows == rows


async def test_a_node_below_the_floor_is_refused_by_name(tmp_path: Path) -> None:
    below = "runs a build below the floor"
    # as a receiver: it says no columns, or no chunk size
    with pytest.raises(BelowFloor, match=f"node 4 takes no batches as columns: it {below}"):
        check_receiver(pb.TransferReply(installed=True), 4)
    with pytest.raises(BelowFloor, match=f"node 4 takes no snapshot in chunks: it {below}"):
        check_chunk_bytes(0, 4)
    # as a sender: its batch as Point messages, its snapshot whole without chunk digests
    points = pb.TransferBatch(upto=1, seqs=[1], points=[pb.Point(series="a")])
    with pytest.raises(BelowFloor, match=f"a batch as Point messages: its sender {below}"):
        from_proto(points)
    whole = [
        decode(m.SerializeToString())
        for m in (
            pb.SnapshotChunk(region=7, sender=3, data=b"x" * 10),
            pb.SnapshotChunk(region=7, sender=3, last=True, sha256="0" * 64),
            pb.SnapshotChunk(region=7, sender=3, data=b"x", last=True, sha256="0" * 64),
        )
    ]
    for chunk in whole:
        with pytest.raises(BelowFloor, match=f"node 3 sent its snapshot whole.*it {below}"):
            check_chunk(chunk)
    incoming = IncomingSnapshot.open(tmp_path / "in")
    try:
        with pytest.raises(BelowFloor):
            await incoming.add(whole[0])
        with pytest.raises(BelowFloor):
            await incoming.finish(whole[1])
    finally:
        incoming.discard()
