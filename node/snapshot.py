"""Snapshots: a consistent copy of a region's store, shipped in chunks, resumable.

IoTDB ships history as whole data files and streams only recent writes; this is the
analogue. The sender sends its store's main file as it reads it, with no copy on its own disk:
the file is held as a consistent state while it is read (`Store.hold_view`: every write
checkpointed into it, then a read transaction that keeps later checkpoints out of it), and it
carries the applied vector it is consistent with. Writes go on meanwhile, into the log. (An
earlier version first copied the store with SQLite's backup API, then sent the copy: every
byte was written twice on the sender's disk, and nothing was sent until the copy was whole.)

Resuming. The file is cut into fixed chunks, each with its sha256. The receiver writes each
chunk in place in a side file and, every FLUSH_S or FLUSH_BYTES, makes the file durable and
then records the digests of the chunks it now holds (`<file>.held`), so a crash or a cut
stream loses at most the last moments. Before sending, the sender learns those digests (the
transfer hello's answer), reads its view chunk by chunk and sends only the chunks whose digest
differs. After a receiver or connection failure the view is usually a new one (the old read
transaction ended with the session), but a checkpoint rewrites only the pages written since,
so the chunks that differ are the receiver's missing tail and the few pages new writes
touched; a sender that was killed and restarted is in the same place. The last message
carries the file's size and the sha256 of all its chunks' digests in order, which the
receiver checks against the digests it holds before it installs the file with one rename.
Every node at or above the floor sends and takes snapshots so (node/compat.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from node.compat import check_chunk
from node.store import HeldView
from protos import air_node_pb2 as pb
from runtime.files import atomic_write, fsync_dir

CHUNK_BYTES = 1024 * 1024
# How often a receiver makes what it received durable: what a crash of it can cost a resend.
FLUSH_S = 0.5
FLUSH_BYTES = 4 * CHUNK_BYTES
# A chunk goes to the file in writes of this size, as `cp` writes: one 1 MiB write makes the
# kernel allocate its page cache in large blocks, which on the virtual machines measured cost
# up to ten times the CPU of the same bytes in 128 KiB writes (BENCHMARKS.md, 2026-12-05).
WRITE_BYTES = 128 * 1024


class ChecksumMismatch(Exception):
    pass


@dataclass(frozen=True)
class Held:
    """What a receiver holds of a snapshot from one sender, and the chunk size it holds at."""

    chunk_bytes: int
    digests: dict[int, bytes]

    @classmethod
    def of(cls, reply: pb.TransferReply) -> Held:
        return cls(reply.snapshot_chunk_bytes, dict(reply.snapshot_held))


@dataclass
class Sent:
    """What a sender's snapshot sent (let through by its throttle) and did not (the receiver
    holding it), in bytes."""

    sent: int = 0
    skipped: int = 0


def root_of(digests: list[bytes]) -> bytes:
    return hashlib.sha256(b"".join(digests)).digest()


def _read(fd: int, offset: int, n: int) -> tuple[bytes, bytes]:
    data = os.pread(fd, n, offset)
    return data, hashlib.sha256(data).digest()


async def snapshot_chunks(
    view: HeldView, region: int, sender: int, held: Held, counts: Sent
) -> AsyncIterator[pb.SnapshotChunk]:
    """The held file's chunks the receiver lacks, each read (the next one while this one is
    sent) and hashed; the last message names the file's size and root."""
    step = held.chunk_bytes
    digests: list[bytes] = []
    fd = os.open(view.path, os.O_RDONLY)
    offsets = iter(range(0, view.size, step))
    reading = _read_next(fd, offsets, step)
    try:
        while reading is not None:
            offset, data, digest = await reading
            reading = _read_next(fd, offsets, step)  # read ahead while this chunk goes out
            digests.append(digest)
            if held.digests.get(len(digests) - 1) == digest:
                counts.skipped += len(data)
                continue
            yield pb.SnapshotChunk(
                region=region, sender=sender, data=data, offset=offset, digest=digest
            )
    finally:
        if reading is not None:  # the stream ended early: the read ahead ends before the fd
            await asyncio.gather(reading, return_exceptions=True)
        os.close(fd)
    yield pb.SnapshotChunk(
        region=region, sender=sender, last=True, size=view.size, root=root_of(digests)
    )


def _read_next(
    fd: int, offsets: Iterator[int], step: int
) -> asyncio.Future[tuple[int, bytes, bytes]] | None:
    offset = next(offsets, None)
    if offset is None:
        return None

    def read() -> tuple[int, bytes, bytes]:
        return (offset, *_read(fd, offset, step))

    return asyncio.ensure_future(asyncio.to_thread(read))


class HeldChunks(BaseModel):
    """`<file>.held`: the chunks of a partly received snapshot that are durable in the file."""

    chunk_bytes: int = CHUNK_BYTES
    digests: dict[int, str] = {}


def held_of(path: Path) -> Held:
    """What the side file `path` durably holds (nothing if it has no record)."""
    record = _record_path(path)
    if not path.exists() or not record.exists():
        return Held(CHUNK_BYTES, {})
    chunks = HeldChunks.model_validate_json(record.read_bytes())
    return Held(chunks.chunk_bytes, {i: bytes.fromhex(d) for i, d in chunks.digests.items()})


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".held")


def remove_partial(path: Path) -> None:
    for leftover in (path, _record_path(path), _record_path(path).with_suffix(".held.tmp")):
        leftover.unlink(missing_ok=True)


def _write(fd: int, offset: int, data: bytes) -> bytes:
    view, at = memoryview(data), 0
    while at < len(view):  # a short write (a full disk) is taken up where it stopped
        at += os.pwrite(fd, view[at : at + WRITE_BYTES], offset + at)
    return hashlib.sha256(data).digest()


@dataclass
class IncomingSnapshot:
    """A snapshot being received into the side file `path`, kept across streams and restarts."""

    path: Path
    held: dict[int, bytes] = field(default_factory=dict)  # written, not all durable yet
    _durable: set[int] = field(default_factory=set)
    _fd: int = -1
    _flush: asyncio.Lock = field(default_factory=asyncio.Lock)
    _pending: asyncio.Task[None] | None = None
    _unflushed: int = 0
    _flushed_at: float = field(default_factory=time.monotonic)
    # the sender's limit on its chunks as of the last one (bytes/s, 0: none; set by `auto`)
    sender_limit: tuple[float, bool] = (0.0, False)

    @classmethod
    def open(cls, path: Path) -> IncomingSnapshot:
        held = held_of(path)
        if held.chunk_bytes != CHUNK_BYTES:  # cut differently: not worth keeping
            held = Held(CHUNK_BYTES, {})
        incoming = cls(path, dict(held.digests), set(held.digests))
        incoming._fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        return incoming

    @property
    def bytes_held(self) -> int:
        return len(self.held) * CHUNK_BYTES

    async def add(self, chunk: pb.SnapshotChunk) -> None:
        """Write one chunk in place; idempotent, as the same chunk lands on the same bytes."""
        check_chunk(chunk)
        # read once: each read of a protobuf bytes field copies the whole chunk
        offset, data = chunk.offset, chunk.data
        self.sender_limit = (chunk.limit_bytes_per_s, chunk.limit_auto)
        if offset % CHUNK_BYTES or len(data) > CHUNK_BYTES:
            raise ValueError(f"a chunk of {len(data)} bytes at {offset}: not a chunk")
        index = offset // CHUNK_BYTES
        if index in self._durable:  # rewritten: the record must stop vouching for it first
            del self.held[index]
            await self._flush_now()
        digest = await asyncio.to_thread(_write, self._fd, offset, data)
        if digest != chunk.digest:
            raise ChecksumMismatch(f"snapshot chunk at {offset} arrived damaged")
        self.held[index] = digest
        self._unflushed += len(data)
        due = self._unflushed >= FLUSH_BYTES or time.monotonic() - self._flushed_at >= FLUSH_S
        if due and (self._pending is None or self._pending.done()):
            self._pending = asyncio.create_task(self._flush_now())

    async def finish(self, last: pb.SnapshotChunk) -> Path:
        """Check the file against the sender's size and root, make it durable; then it may be
        installed."""
        check_chunk(last)
        await self._last_flush()
        size = last.size
        count = -(-size // CHUNK_BYTES)
        missing = [i for i in range(count) if i not in self.held]
        if missing:
            raise ChecksumMismatch(f"snapshot chunks never received: {missing[:5]}")
        if root_of([self.held[i] for i in range(count)]) != last.root:
            raise ChecksumMismatch(f"snapshot of {size} bytes: its root does not match")
        await asyncio.to_thread(os.ftruncate, self._fd, size)
        await asyncio.to_thread(os.fsync, self._fd)
        self._close()
        await asyncio.to_thread(fsync_dir, self.path.parent)
        return self.path

    async def suspend(self) -> None:
        """The stream broke: keep what arrived, durably, for the next one to resume."""
        if self._fd >= 0:
            try:
                await self._last_flush()
            finally:
                self._close()

    def discard(self) -> None:
        if self._pending is not None:
            self._pending.cancel()  # nothing of the file is kept, its record neither
        self._close()
        remove_partial(self.path)

    async def _last_flush(self) -> None:
        """A flush after the one still pending, if any: that one must not run on a closed file."""
        if self._pending is not None:
            await self._pending
        await self._flush_now()

    async def _flush_now(self) -> None:
        """Make the chunks written so far durable, then record them. Serialised: a record never
        lists a chunk written after the sync it follows."""
        async with self._flush:
            listed = dict(self.held)
            self._unflushed, self._flushed_at = 0, time.monotonic()
            await asyncio.to_thread(os.fdatasync, self._fd)
            record = HeldChunks(digests={i: d.hex() for i, d in listed.items()})
            await asyncio.to_thread(
                atomic_write, _record_path(self.path), record.model_dump_json().encode()
            )
            self._durable = set(listed)

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
