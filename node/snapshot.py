"""Snapshots: a consistent copy of a region's store, shipped in chunks, resumable.

IoTDB ships history as whole data files and streams only recent writes; this is the
analogue. The sender sends its store's main file as it reads it, with no copy on its own disk:
the file is held as a consistent state while it is read (`Store.hold_view`: every write
checkpointed into it, then a read transaction that keeps later checkpoints out of it), and it
carries the applied vector it is consistent with. Writes go on meanwhile, into the log. (An
earlier version first copied the store with SQLite's backup API, then sent the copy: every
byte was written twice on the sender's disk, and nothing was sent until the copy was whole.)

Resuming. The file is cut into fixed chunks, each with its digest (node/digests.py: XXH3, or
sha256 for a node of the floor build). The receiver writes each
chunk in place in a side file and, every FLUSH_S or FLUSH_BYTES, makes the file durable and
then records the digests of the chunks it now holds (`<file>.held`), so a crash or a cut
stream loses at most the last moments. Before sending, the sender learns those digests (the
transfer hello's answer), reads its view chunk by chunk and sends only the chunks whose digest
differs. After a receiver or connection failure the view is usually a new one (the old read
transaction ended with the session), but a checkpoint rewrites only the pages written since,
so the chunks that differ are the receiver's missing tail and the few pages new writes
touched; a sender that was killed and restarted is in the same place. The last message
carries the file's size and the digest of all its chunks' digests in order, which the
receiver checks against the digests it holds before it installs the file with one rename.
Every node at or above the floor sends and takes snapshots so (node/compat.py). A chunk's data
travels as a view, not copied by protobuf (node/chunk_wire.py).
"""

from __future__ import annotations

import asyncio
import mmap
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from node import digests
from node.chunk_wire import Buffer, Chunk
from node.compat import check_chunk
from node.digests import NAMES, SHA256, Kind
from node.store import HeldView
from protos import air_node_pb2 as pb
from runtime.files import atomic_write, fsync_dir

CHUNK_BYTES = 1024 * 1024
# How often a receiver makes what it received durable, what a crash of it can cost a resend:
# every FLUSH_S, or once FLUSH_BYTES or a FLUSH_SHARE of what it holds arrived since the last
# time (each flush is three fsyncs: 250 a GB at 4 MiB cost an eighth of the receiver's CPU).
FLUSH_S = 0.5
FLUSH_BYTES = 4 * CHUNK_BYTES
FLUSH_SHARE = 1 / 8
# The side file is allocated this far ahead of the chunks written, in large extents.
ALLOCATE_AHEAD_BYTES = 64 * CHUNK_BYTES
# A chunk goes to the file past the page cache (O_DIRECT), from a buffer aligned to this: on the
# virtual machines measured, the page cache the kernel allocates for written bytes was most of
# a receiver's CPU for its writes, two to five times the direct write's (more the more memory
# the machine had taken back; BENCHMARKS.md, 2026-12-07). The price: the new replica's pages
# are not cached after the install, its first reads go to the disk.
DIRECT_ALIGN = 4096
# Where the filesystem takes no O_DIRECT, through the page cache in writes of this size, as
# `cp` writes: one 1 MiB write there makes the kernel allocate its page cache in large blocks,
# up to ten times the CPU of the same bytes in 128 KiB writes (BENCHMARKS.md, 2026-12-05).
WRITE_BYTES = 128 * 1024
_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)  # Linux's read that never waits


class ChecksumMismatch(Exception):
    pass


@dataclass(frozen=True)
class Held:
    """What a receiver holds of a snapshot from one sender: the chunk size it holds at, and
    its chunks' digests, of `kind` (node/digests.py)."""

    chunk_bytes: int
    digests: dict[int, bytes]
    kind: Kind = SHA256

    @classmethod
    def of(cls, reply: pb.TransferReply) -> Held:
        return cls(
            reply.snapshot_chunk_bytes, dict(reply.snapshot_held), reply.snapshot_held_digest
        )


@dataclass
class Sent:
    """What a sender's snapshot sent (let through by its throttle) and did not (the receiver
    holding it), in bytes."""

    sent: int = 0
    skipped: int = 0


async def snapshot_chunks(
    view: HeldView, region: int, sender: int, held: Held, kind: Kind, counts: Sent
) -> AsyncIterator[Chunk]:
    """The held file's chunks the receiver lacks, each read (the next one while this one is
    sent) and hashed under `kind`; the last message names the file's size and root. A chunk
    the receiver holds is skipped if its digest is of the same kind and equal."""
    step = held.chunk_bytes
    holds = held.digests if held.kind == kind else {}
    chunk_digests: list[bytes] = []
    fd = os.open(view.path, os.O_RDONLY)
    offsets = iter(range(0, view.size, step))
    reading = _read_next(fd, offsets, step, view.size, kind)
    try:
        while reading is not None:
            offset, data, digest = await reading
            # read ahead while this one goes out
            reading = _read_next(fd, offsets, step, view.size, kind)
            chunk_digests.append(digest)
            if holds.get(len(chunk_digests) - 1) == digest:
                counts.skipped += len(data)
                continue
            fields = pb.SnapshotChunk(
                region=region, sender=sender, offset=offset, digest=digest, digest_kind=kind
            )
            yield Chunk(fields, data)
    finally:
        if reading is not None:  # the stream ended early: the read ahead ends before the fd
            await asyncio.gather(reading, return_exceptions=True)
        os.close(fd)
    root = digests.root(kind, chunk_digests)
    last = pb.SnapshotChunk(
        region=region, sender=sender, last=True, size=view.size, root=root, digest_kind=kind
    )
    yield Chunk(last)


def _read_next(
    fd: int, offsets: Iterator[int], step: int, size: int, kind: Kind
) -> asyncio.Future[tuple[int, Buffer, bytes]] | None:
    """The next chunk, read and hashed: at once if the page cache holds it all, else on a
    thread (a read from the disk would hold up the writes this node serves)."""
    offset = next(offsets, None)
    if offset is None:
        return None
    cached = _read_cached(fd, offset, min(step, size - offset))
    if cached is not None:
        done = asyncio.get_running_loop().create_future()
        done.set_result((offset, cached, digests.digest(kind, cached)))
        return done

    def read() -> tuple[int, Buffer, bytes]:
        data = os.pread(fd, step, offset)
        return offset, data, digests.digest(kind, data)

    return asyncio.ensure_future(asyncio.to_thread(read))


def _read_cached(fd: int, offset: int, n: int) -> Buffer | None:
    """`n` bytes at `offset` if the page cache holds them all, without waiting for the disk:
    on the event loop that saves two hand-overs between threads a chunk, a tenth of what a
    snapshot cost its sender (BENCHMARKS.md, 2026-12-07). None where the kernel cannot say."""
    if _NOWAIT is None:
        return None
    data = bytearray(n)
    try:
        read = os.preadv(fd, [data], offset, _NOWAIT)
    except OSError:
        return None
    return data if read == n else None


class HeldChunks(BaseModel):
    """`<file>.held`: the chunks of a partly received snapshot that are durable in the file,
    and their digests' kind (a record without one is of a floor build's node: sha256)."""

    chunk_bytes: int = CHUNK_BYTES
    digests: dict[int, str] = {}
    digest: str = NAMES[SHA256]


_KINDS = {name: kind for kind, name in NAMES.items()}


def held_of(path: Path) -> Held:
    """What the side file `path` durably holds (nothing if it has no record, or one under a
    digest this build does not compute)."""
    record = _record_path(path)
    if not path.exists() or not record.exists():
        return Held(CHUNK_BYTES, {})
    chunks = HeldChunks.model_validate_json(record.read_bytes())
    if chunks.digest not in _KINDS:
        return Held(CHUNK_BYTES, {})
    held = {i: bytes.fromhex(d) for i, d in chunks.digests.items()}
    return Held(chunks.chunk_bytes, held, _KINDS[chunks.digest])


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".held")


def remove_partial(path: Path) -> None:
    for leftover in (path, _record_path(path), _record_path(path).with_suffix(".held.tmp")):
        leftover.unlink(missing_ok=True)


def _open_for_chunks(path: Path) -> tuple[int, mmap.mmap | None]:
    """The side file opened for direct writes, with a buffer aligned for them; or, where the
    filesystem refuses O_DIRECT, for writes through the page cache (no buffer)."""
    flags, direct = os.O_WRONLY | os.O_CREAT, getattr(os, "O_DIRECT", 0)
    if direct:
        try:
            return os.open(path, flags | direct, 0o644), mmap.mmap(-1, CHUNK_BYTES)
        except OSError:
            pass
    return os.open(path, flags, 0o644), None


def _write(fd: int, aligned: mmap.mmap | None, offset: int, data: Buffer, kind: Kind) -> bytes:
    """Write `data` at `offset`, past the page cache through `aligned` if there is one (a
    short last chunk padded to DIRECT_ALIGN: the file is cut to its size at the end); returns
    its digest."""
    if aligned is None:
        source, length, piece = memoryview(data), len(data), WRITE_BYTES
    else:
        length = -(-len(data) // DIRECT_ALIGN) * DIRECT_ALIGN
        aligned[: len(data)] = data
        aligned[len(data) : length] = bytes(length - len(data))
        source, piece = memoryview(aligned), length
    with source:
        at = 0
        while at < length:  # a short write (a full disk) is taken up where it stopped
            at += os.pwrite(fd, source[at : min(at + piece, length)], offset + at)
    return digests.digest(kind, data)


def _sync_and_record(fd: int, path: Path, record: HeldChunks) -> None:
    """The file made durable, then the record of what it holds: on one thread, one hand-over."""
    os.fdatasync(fd)
    atomic_write(_record_path(path), record.model_dump_json().encode())


@dataclass
class IncomingSnapshot:
    """A snapshot being received into the side file `path`, kept across streams and restarts."""

    path: Path
    held: dict[int, bytes] = field(default_factory=dict)  # written, not all durable yet
    kind: Kind = SHA256  # of the digests in `held`
    _durable: set[int] = field(default_factory=set)
    _fd: int = -1
    _aligned: mmap.mmap | None = None
    _writing: asyncio.Future[bytes] | None = None
    _flush: asyncio.Lock = field(default_factory=asyncio.Lock)
    _pending: asyncio.Task[None] | None = None
    _unflushed: int = 0
    _flushed_at: float = field(default_factory=time.monotonic)
    _allocated: int = 0
    # the sender's limit on its chunks as of the last one (bytes/s, 0: none; set by `auto`)
    sender_limit: tuple[float, bool] = (0.0, False)

    @classmethod
    def open(cls, path: Path) -> IncomingSnapshot:
        held = held_of(path)
        if held.chunk_bytes != CHUNK_BYTES:  # cut differently: not worth keeping
            held = Held(CHUNK_BYTES, {})
        incoming = cls(path, dict(held.digests), held.kind, set(held.digests))
        incoming._fd, incoming._aligned = _open_for_chunks(path)
        return incoming

    @property
    def bytes_held(self) -> int:
        return len(self.held) * CHUNK_BYTES

    async def add(self, chunk: Chunk) -> None:
        """Write one chunk in place; idempotent, as the same chunk lands on the same bytes."""
        check_chunk(chunk)
        fields, data = chunk.fields, chunk.data
        offset = fields.offset
        self.sender_limit = (fields.limit_bytes_per_s, fields.limit_auto)
        if offset % CHUNK_BYTES or len(data) > CHUNK_BYTES:
            raise ValueError(f"a chunk of {len(data)} bytes at {offset}: not a chunk")
        await self._digests_of(fields.digest_kind)
        index = offset // CHUNK_BYTES
        if index in self._durable:  # rewritten: the record must stop vouching for it first
            del self.held[index]
            await self._flush_now()
        if offset + len(data) > self._allocated:
            self._allocated = offset + ALLOCATE_AHEAD_BYTES
            os.posix_fallocate(self._fd, offset, ALLOCATE_AHEAD_BYTES)
        self._writing = asyncio.ensure_future(
            asyncio.to_thread(_write, self._fd, self._aligned, offset, data, self.kind)
        )
        digest = await asyncio.shield(self._writing)  # a broken stream lets it end first
        if digest != fields.digest:
            raise ChecksumMismatch(f"snapshot chunk at {offset} arrived damaged")
        self.held[index] = digest
        self._unflushed += len(data)
        enough = max(FLUSH_BYTES, self.bytes_held * FLUSH_SHARE)
        due = self._unflushed >= enough or time.monotonic() - self._flushed_at >= FLUSH_S
        if due and (self._pending is None or self._pending.done()):
            self._pending = asyncio.create_task(self._flush_now())

    async def finish(self, last: Chunk) -> Path:
        """Check the file against the sender's size and root, make it durable; then it may be
        installed."""
        check_chunk(last)
        await self._digests_of(last.fields.digest_kind)
        await self._last_flush()
        size = last.fields.size
        count = -(-size // CHUNK_BYTES)
        missing = [i for i in range(count) if i not in self.held]
        if missing:
            raise ChecksumMismatch(f"snapshot chunks never received: {missing[:5]}")
        if digests.root(self.kind, [self.held[i] for i in range(count)]) != last.fields.root:
            raise ChecksumMismatch(f"snapshot of {size} bytes: its root does not match")
        await asyncio.to_thread(os.ftruncate, self._fd, size)
        await asyncio.to_thread(os.fsync, self._fd)
        self._close()
        await asyncio.to_thread(fsync_dir, self.path.parent)
        return self.path

    async def suspend(self) -> None:
        """The stream broke: keep what arrived, durably, for the next one to resume."""
        if self._writing is not None:  # its file and buffer stay open until it ends
            await asyncio.gather(self._writing, return_exceptions=True)
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

    async def _digests_of(self, kind: Kind) -> None:
        """Chunks come under digests of `kind` now: those held under another vouch for
        nothing any more (the sender sends them all), and the record says so first."""
        if kind != self.kind:
            digests.require(kind)  # refused before anything changes
            self.held.clear()
            self.kind = kind
            await self._flush_now()

    async def _last_flush(self) -> None:
        """A flush after the one still pending, if any: that one must not run on a closed file."""
        if self._pending is not None:
            await self._pending
        await self._flush_now()

    async def _flush_now(self) -> None:
        """Make the chunks written so far durable, then record them. Serialised: a record never
        lists a chunk written after the sync it follows."""
        async with self._flush:
            listed, kind = dict(self.held), self.kind
            self._unflushed, self._flushed_at = 0, time.monotonic()
            record = HeldChunks(digests={i: d.hex() for i, d in listed.items()}, digest=NAMES[kind])
            await asyncio.to_thread(_sync_and_record, self._fd, self.path, record)
            self._durable = set(listed)

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._aligned = None  # freed with the last view of it
