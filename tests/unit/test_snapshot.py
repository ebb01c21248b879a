"""Snapshot chunks between a sender's file and a receiver's side file, in process, through
their wire form: a broken stream resumes where the receiver's durable record says, a changed
file resends only the chunks that changed, and damage is refused, under either digest; the
digest is the one the receiver takes, and the one its held chunks are under."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import cast

import pytest
import xxhash

from node import digests, snapshot
from node.chunk_wire import Chunk, decode, encode
from node.compat import BelowFloor
from node.digests import SHA256, TAKEN, XXH3_128, Kind, UnknownDigest
from node.snapshot import (
    CHUNK_BYTES,
    ChecksumMismatch,
    Held,
    IncomingSnapshot,
    Sent,
    held_of,
    snapshot_chunks,
)
from node.store import HeldView
from protos import air_node_pb2 as pb

SIZE = 5 * CHUNK_BYTES + 12345  # a short last chunk


def a_file(path: Path, size: int = SIZE) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def view_of(path: Path) -> HeldView:
    return HeldView(sqlite3.connect(":memory:"), path, path.stat().st_size)


async def chunks(
    path: Path, held: Held, counts: Sent | None = None, kind: Kind = XXH3_128
) -> list[Chunk]:
    """The chunks a sender sends, as the receiver parses them."""
    stream = snapshot_chunks(view_of(path), 7, 1, held, kind, counts or Sent())
    return [decode(encode(c)) async for c in stream]


async def receive(incoming: IncomingSnapshot, stream: list[Chunk]) -> Path:
    for chunk in stream[:-1]:
        await incoming.add(chunk)
    return await incoming.finish(stream[-1])


async def broken_after(source: Path, partial: Path, count: int, kind: Kind = XXH3_128) -> None:
    """A stream that sent the first `count` chunks of `source`, then broke."""
    first = IncomingSnapshot.open(partial)
    for chunk in (await chunks(source, held_of(partial), kind=kind))[:count]:
        await first.add(chunk)
    await first.suspend()


def edited(chunk: Chunk, data: bytes | None = None, **fields: object) -> Chunk:
    """The chunk with other data or other fields."""
    copy = pb.SnapshotChunk()
    copy.CopyFrom(chunk.fields)
    for name, value in fields.items():
        setattr(copy, name, value)
    return Chunk(copy, chunk.data if data is None else data)


async def test_a_whole_snapshot_arrives_equal(tmp_path: Path) -> None:
    source = a_file(tmp_path / "store")
    stream = await chunks(source, held_of(tmp_path / "in"))
    assert len(stream) == 7 and stream[-1].fields.last and not stream[-1].data
    incoming = IncomingSnapshot.open(tmp_path / "in")
    assert incoming._aligned is not None or not hasattr(os, "O_DIRECT")  # past the page cache
    received = await receive(incoming, stream)
    assert received.read_bytes() == source.read_bytes()


async def test_a_whole_snapshot_arrives_equal_through_the_page_cache_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "O_DIRECT")  # a filesystem or a system without direct writes
    source = a_file(tmp_path / "store")
    incoming = IncomingSnapshot.open(tmp_path / "in")
    assert incoming._aligned is None
    received = await receive(incoming, await chunks(source, held_of(tmp_path / "in")))
    assert received.read_bytes() == source.read_bytes()


async def test_the_receiver_knows_its_senders_limit_as_of_the_last_chunk(tmp_path: Path) -> None:
    stream = await chunks(a_file(tmp_path / "store"), held_of(tmp_path / "in"))
    incoming = IncomingSnapshot.open(tmp_path / "in")
    assert incoming.sender_limit == (0.0, False)  # nothing said yet: no limit shown
    for limit, chunk in zip((32e6, 0.0), stream[:2], strict=True):
        chunk.fields.limit_bytes_per_s, chunk.fields.limit_auto = limit, True
        await incoming.add(chunk)
        assert incoming.sender_limit == (limit, True)
    incoming.discard()


@pytest.mark.parametrize("kind", TAKEN, ids=digests.NAMES.get)
async def test_a_broken_stream_resumes_where_the_receiver_stands(
    tmp_path: Path, kind: Kind
) -> None:
    source = a_file(tmp_path / "store")
    partial = tmp_path / "in"
    await broken_after(source, partial, 3, kind)
    held = held_of(partial)
    assert sorted(held.digests) == [0, 1, 2] and held.kind == kind

    counts = Sent()
    stream = await chunks(source, held, counts, kind)
    offsets = [c.fields.offset for c in stream[:-1]]
    assert offsets == [3 * CHUNK_BYTES, 4 * CHUNK_BYTES, 5 * CHUNK_BYTES]
    assert sum(len(c.data) for c in stream) == SIZE - 3 * CHUNK_BYTES
    assert counts.skipped == 3 * CHUNK_BYTES
    received = await receive(IncomingSnapshot.open(partial), stream)
    assert received.read_bytes() == source.read_bytes()


async def test_only_what_changed_on_the_sender_is_sent_again(tmp_path: Path) -> None:
    source = a_file(tmp_path / "store")
    partial = tmp_path / "in"
    await broken_after(source, partial, 4)
    with open(source, "r+b") as f:  # a checkpoint rewrote a page of chunk 1 and grew the file
        f.seek(CHUNK_BYTES + 4096)
        f.write(b"x" * 4096)
        f.seek(0, os.SEEK_END)
        f.write(os.urandom(CHUNK_BYTES))

    stream = await chunks(source, held_of(partial))
    assert [c.fields.offset // CHUNK_BYTES for c in stream[:-1]] == [1, 4, 5, 6]
    received = await receive(IncomingSnapshot.open(partial), stream)
    assert received.read_bytes() == source.read_bytes()


async def test_a_receiver_that_crashed_keeps_only_what_it_recorded(tmp_path: Path) -> None:
    source = a_file(tmp_path / "store")
    partial = tmp_path / "in"
    first = IncomingSnapshot.open(partial)
    stream = await chunks(source, held_of(partial))
    for chunk in stream[:2]:
        await first.add(chunk)
    await first.suspend()
    crashed = IncomingSnapshot.open(partial)
    await crashed.add(stream[2])  # written, never recorded: the process died here
    assert sorted(held_of(partial).digests) == [0, 1]
    received = await receive(IncomingSnapshot.open(partial), await chunks(source, held_of(partial)))
    assert received.read_bytes() == source.read_bytes()


async def test_short_writes_are_taken_up_where_they_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_pwrite = os.pwrite

    def a_third_at_most(fd: int, data: memoryview, offset: int) -> int:
        # in whole blocks, as a short direct write is
        third = max(len(data) // 3 // snapshot.DIRECT_ALIGN, 1) * snapshot.DIRECT_ALIGN
        return real_pwrite(fd, data[:third], offset)

    monkeypatch.setattr(os, "pwrite", a_third_at_most)
    source = a_file(tmp_path / "store")
    stream = await chunks(source, held_of(tmp_path / "in"))
    received = await receive(IncomingSnapshot.open(tmp_path / "in"), stream)
    assert received.read_bytes() == source.read_bytes()


async def test_a_flush_due_at_the_last_chunk_ends_before_the_file_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "FLUSH_S", 3600.0)  # flushes fall due by bytes alone
    source = a_file(tmp_path / "store", size=snapshot.FLUSH_BYTES)
    stream = await chunks(source, held_of(tmp_path / "in"))
    incoming = IncomingSnapshot.open(tmp_path / "in")
    for chunk in stream[:-1]:
        await incoming.add(chunk)
    pending = incoming._pending  # due at the last chunk, not yet begun
    assert pending is not None and not pending.done()
    received = await incoming.finish(stream[-1])
    assert pending.done() and pending.exception() is None
    assert received.read_bytes() == source.read_bytes()


@pytest.mark.parametrize("kind", TAKEN, ids=digests.NAMES.get)
async def test_a_damaged_chunk_or_a_wrong_root_is_refused(tmp_path: Path, kind: Kind) -> None:
    source = a_file(tmp_path / "store")
    stream = await chunks(source, held_of(tmp_path / "in"), kind=kind)
    damaged = edited(stream[1], b"y" + bytes(stream[1].data[1:]))
    with pytest.raises(ChecksumMismatch, match="damaged"):
        await IncomingSnapshot.open(tmp_path / "in").add(damaged)

    wrong = edited(stream[-1], root=b"\0" * 32)
    with pytest.raises(ChecksumMismatch, match="root"):
        await receive(IncomingSnapshot.open(tmp_path / "again"), [*stream[:-1], wrong])
    with pytest.raises(ChecksumMismatch, match="never received"):
        await receive(IncomingSnapshot.open(tmp_path / "short"), [stream[0], stream[-1]])


async def test_a_receiver_that_takes_only_sha256_gets_sha256_chunks(tmp_path: Path) -> None:
    """A receiver of the floor build names no digest: the sender picks sha256, every chunk and
    the root are sha256, and a receiver of this build takes them too."""
    floor = pb.TransferReply(snapshot_chunk_bytes=CHUNK_BYTES)
    held = Held.of(floor)
    kind = digests.pick(floor.snapshot_digests, held.kind, bool(held.digests), 2)
    assert kind == SHA256
    source = a_file(tmp_path / "store")
    stream = await chunks(source, held, kind=kind)
    assert all(c.fields.digest_kind == SHA256 for c in stream)
    assert [c.fields.digest for c in stream[:-1]] == [
        hashlib.sha256(c.data).digest() for c in stream[:-1]
    ]
    root = hashlib.sha256(b"".join(c.fields.digest for c in stream[:-1])).digest()
    assert stream[-1].fields.root == root
    received = await receive(IncomingSnapshot.open(tmp_path / "in"), stream)
    assert received.read_bytes() == source.read_bytes()


def test_the_sender_picks_the_held_digest_else_the_receivers_best() -> None:
    assert digests.pick(TAKEN, SHA256, False, 2) == XXH3_128  # this build's receiver
    assert digests.pick(TAKEN, SHA256, True, 2) == SHA256  # it holds chunks under sha256
    assert digests.pick(TAKEN, XXH3_128, True, 2) == XXH3_128
    assert digests.pick([], SHA256, False, 2) == SHA256  # the floor's
    assert digests.pick([SHA256], XXH3_128, True, 2) == SHA256  # takes no xxh3, whatever held
    with pytest.raises(BelowFloor, match="node 2 takes snapshot chunks under none"):
        digests.pick([cast(Kind, 7)], SHA256, False, 2)  # a build's after this one's only


async def test_chunks_held_under_sha256_are_skipped_by_a_sender_of_this_build(
    tmp_path: Path,
) -> None:
    """A snapshot from a floor sender, broken, resumes from this build's sender: the receiver
    holds sha256 digests, so the sender sends under sha256 and skips them."""
    source = a_file(tmp_path / "store")
    partial = tmp_path / "in"
    await broken_after(source, partial, 3, SHA256)
    reply = pb.TransferReply(snapshot_chunk_bytes=CHUNK_BYTES, snapshot_digests=TAKEN)
    held = held_of(partial)
    reply.snapshot_held.update(held.digests)
    reply.snapshot_held_digest = held.kind
    kind = digests.pick(reply.snapshot_digests, reply.snapshot_held_digest, True, 2)
    counts = Sent()
    stream = await chunks(source, Held.of(reply), counts, kind)
    assert kind == SHA256 and counts.skipped == 3 * CHUNK_BYTES
    received = await receive(IncomingSnapshot.open(partial), stream)
    assert received.read_bytes() == source.read_bytes()


async def test_chunks_under_another_digest_replace_what_was_held(tmp_path: Path) -> None:
    """Held sha256 chunks vouch for nothing under XXH3_128: a XXH3_128 stream sends them all, and
    the record is rewritten under XXH3_128 before the first of them lands."""
    source = a_file(tmp_path / "store")
    partial = tmp_path / "in"
    await broken_after(source, partial, 3, SHA256)
    held = held_of(partial)
    counts = Sent()
    stream = await chunks(source, held, counts, XXH3_128)
    assert counts.skipped == 0 and len(stream) == 7
    incoming = IncomingSnapshot.open(partial)
    await incoming.add(stream[4])
    await incoming.suspend()
    assert held_of(partial) == Held(
        CHUNK_BYTES, {4: xxhash.xxh3_128_digest(stream[4].data)}, XXH3_128
    )
    received = await receive(IncomingSnapshot.open(partial), stream)
    assert received.read_bytes() == source.read_bytes()


async def test_a_record_of_the_floor_build_holds_sha256_digests(tmp_path: Path) -> None:
    partial = a_file(tmp_path / "in", CHUNK_BYTES)
    digest = hashlib.sha256(partial.read_bytes()).digest()
    record = {"chunk_bytes": CHUNK_BYTES, "digests": {"0": digest.hex()}}
    (tmp_path / "in.held").write_text(json.dumps(record))  # as the floor build writes it
    assert held_of(partial) == Held(CHUNK_BYTES, {0: digest}, SHA256)


async def test_an_unknown_digest_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    source = a_file(tmp_path / "store")
    partial = tmp_path / "in"
    await broken_after(source, partial, 2)
    before = held_of(partial)
    stream = await chunks(source, before)
    unknown = edited(stream[0], digest_kind=7)
    incoming = IncomingSnapshot.open(partial)
    with pytest.raises(UnknownDigest, match="digest 7 is unknown to this build"):
        await incoming.add(unknown)
    await incoming.suspend()  # as a stream that broke on it (node/inbound.py)
    assert held_of(partial) == before and sorted(before.digests) == [0, 1]
