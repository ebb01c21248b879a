"""Snapshot chunks between a sender's file and a receiver's side file, in process: a broken
stream resumes where the receiver's durable record says, a changed file resends only the
chunks that changed, and damage is refused."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from node import snapshot
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


async def chunks(path: Path, held: Held, counts: Sent | None = None) -> list[pb.SnapshotChunk]:
    return [c async for c in snapshot_chunks(view_of(path), 7, 1, held, counts or Sent())]


async def receive(incoming: IncomingSnapshot, stream: list[pb.SnapshotChunk]) -> Path:
    for chunk in stream[:-1]:
        await incoming.add(chunk)
    return await incoming.finish(stream[-1])


async def broken_after(source: Path, partial: Path, count: int) -> None:
    """A stream that sent the first `count` chunks of `source`, then broke."""
    first = IncomingSnapshot.open(partial)
    for chunk in (await chunks(source, held_of(partial)))[:count]:
        await first.add(chunk)
    await first.suspend()


async def test_a_whole_snapshot_arrives_equal(tmp_path: Path) -> None:
    source = a_file(tmp_path / "store")
    stream = await chunks(source, held_of(tmp_path / "in"))
    assert len(stream) == 7 and stream[-1].last and not stream[-1].data
    received = await receive(IncomingSnapshot.open(tmp_path / "in"), stream)
    assert received.read_bytes() == source.read_bytes()


async def test_the_receiver_knows_its_senders_limit_as_of_the_last_chunk(tmp_path: Path) -> None:
    stream = await chunks(a_file(tmp_path / "store"), held_of(tmp_path / "in"))
    incoming = IncomingSnapshot.open(tmp_path / "in")
    assert incoming.sender_limit == (0.0, False)  # nothing said yet: no limit shown
    for limit, chunk in zip((32e6, 0.0), stream[:2], strict=True):
        chunk.limit_bytes_per_s, chunk.limit_auto = limit, True
        await incoming.add(chunk)
        assert incoming.sender_limit == (limit, True)
    incoming.discard()


async def test_a_broken_stream_resumes_where_the_receiver_stands(tmp_path: Path) -> None:
    source = a_file(tmp_path / "store")
    partial = tmp_path / "in"
    await broken_after(source, partial, 3)
    held = held_of(partial)
    assert sorted(held.digests) == [0, 1, 2]

    counts = Sent()
    stream = await chunks(source, held, counts)
    assert [c.offset for c in stream[:-1]] == [3 * CHUNK_BYTES, 4 * CHUNK_BYTES, 5 * CHUNK_BYTES]
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
    assert [c.offset // CHUNK_BYTES for c in stream[:-1]] == [1, 4, 5, 6]
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
        return real_pwrite(fd, data[: len(data) // 3 + 1], offset)

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


async def test_a_damaged_chunk_or_a_wrong_root_is_refused(tmp_path: Path) -> None:
    source = a_file(tmp_path / "store")
    stream = await chunks(source, held_of(tmp_path / "in"))
    damaged = pb.SnapshotChunk()
    damaged.CopyFrom(stream[1])
    damaged.data = b"y" + damaged.data[1:]
    with pytest.raises(ChecksumMismatch, match="damaged"):
        await IncomingSnapshot.open(tmp_path / "in").add(damaged)

    wrong = pb.SnapshotChunk()
    wrong.CopyFrom(stream[-1])
    wrong.root = b"\0" * 32
    with pytest.raises(ChecksumMismatch, match="root"):
        await receive(IncomingSnapshot.open(tmp_path / "again"), [*stream[:-1], wrong])
    with pytest.raises(ChecksumMismatch, match="never received"):
        await receive(IncomingSnapshot.open(tmp_path / "short"), [stream[0], stream[-1]])
