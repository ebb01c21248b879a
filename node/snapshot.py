"""Snapshots: a consistent copy of a region's store, shipped whole in large chunks.

The source ships history as whole data files and streams only recent writes; this is the
analogue. The sender copies its store with SQLite's backup API (readers never block the
writer, and the copy carries the applied vector it is consistent with). The receiver writes
the chunks to a side file, checks the sha256, makes it durable, and installs the file with one
rename: a crash mid-install leaves no half store, and the sender sends it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from node.files import fsync_dir
from node.store import Store
from protos import air_node_pb2 as pb

CHUNK_BYTES = 1024 * 1024


class ChecksumMismatch(Exception):
    pass


async def snapshot_chunks(
    store: Store, path: Path, region: int, sender: int
) -> AsyncIterator[pb.SnapshotChunk]:
    """Copy `store` to `path` and yield it in chunks, the sha256 on the last one."""
    await asyncio.to_thread(store.backup_to, path)
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:  # noqa: ASYNC230 (opening is instant; reads are threaded)
            data = await asyncio.to_thread(f.read, CHUNK_BYTES)
            while True:
                following = await asyncio.to_thread(f.read, CHUNK_BYTES)
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
    finally:
        path.unlink(missing_ok=True)  # noqa: ASYNC240 (an unlink does not wait on the disk)


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
