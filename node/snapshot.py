"""Snapshots: a consistent copy of a region's store, shipped whole in large chunks.

The source ships history as whole data files and streams only recent writes; this is the
analogue. The sender sends its store's main file as it reads it, with no copy on its own disk:
the file is held as a consistent state while it is read (`Store.hold_view`: every write
checkpointed into it, then a read transaction that keeps later checkpoints out of it), and it
carries the applied vector it is consistent with. Writes go on meanwhile, into the log. (An
earlier version first copied the store with SQLite's backup API, then sent the copy: every
byte was written twice on the sender's disk, and nothing was sent until the copy was whole.)
The receiver writes the chunks to a side file, checks the sha256, makes it durable, and
installs the file with one rename: a crash mid-install leaves no half store, and the sender
sends it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from node.store import HeldView
from protos import air_node_pb2 as pb
from runtime.files import fsync_dir

CHUNK_BYTES = 1024 * 1024


class ChecksumMismatch(Exception):
    pass


async def snapshot_chunks(
    view: HeldView, region: int, sender: int
) -> AsyncIterator[pb.SnapshotChunk]:
    """The held file in chunks, as it is read, the sha256 of the whole on the last one."""
    digest = hashlib.sha256()
    left = view.size
    with open(view.path, "rb") as f:  # noqa: ASYNC230 (opening is instant; reads are threaded)
        data = await asyncio.to_thread(f.read, min(CHUNK_BYTES, left))
        left -= len(data)
        while True:
            following = await asyncio.to_thread(f.read, min(CHUNK_BYTES, left)) if left else b""
            left -= len(following)
            digest.update(data)
            last = not following
            yield pb.SnapshotChunk(
                region=region,
                sender=sender,
                data=data,
                last=last,
                sha256=digest.hexdigest() if last else "",
            )
            if last:
                return
            data = following


class IncomingSnapshot:
    """A snapshot file being received, made durable only once whole and checked."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._digest = hashlib.sha256()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    async def add(self, data: bytes) -> None:
        await asyncio.to_thread(os.write, self._fd, data)
        self._digest.update(data)
        self.size += len(data)

    async def finish(self, sha256: str) -> Path:
        """Check the whole file's sha256 and make it durable; then it may be installed."""
        if sha256 != self._digest.hexdigest():
            raise ChecksumMismatch(f"snapshot checksum mismatch after {self.size} bytes")
        await asyncio.to_thread(os.fsync, self._fd)
        os.close(self._fd)
        self._fd = -1
        await asyncio.to_thread(fsync_dir, self.path.parent)
        return self.path

    async def discard(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.path.unlink(missing_ok=True)
