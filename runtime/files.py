"""Crash-safe file operations: a kill -9 at any line leaves the old state or the new one."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

# A large file is removed this many bytes at a time, a pause between (`remove_gently`).
RELEASE_STEP = 16 * 2**20
RELEASE_PAUSE_S = 0.01


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Write `data` to a new file, fsynced (the file may not exist yet)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically: readers see the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    write_durably(tmp, data)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_publish_dir(staging: Path, final: Path) -> None:
    """Make a fully written staging folder appear under its final name in one step."""
    fsync_dir(staging)
    os.rename(staging, final)
    fsync_dir(final.parent)


def move_aside(path: Path, trash: Path) -> None:
    """Move a folder out of its name in one step, durably: after a crash it is under its own
    name, whole, or under `trash`, which `remove_gently` may then remove at leisure."""
    os.rename(path, trash)
    fsync_dir(path.parent)


def remove_gently(path: Path) -> None:
    """Remove a folder and what it holds, each large file cut down RELEASE_STEP bytes at a
    time, with a pause between, before it is unlinked. Idempotent: what a crash leaves is a
    smaller folder to remove the same way.

    ext4 frees a file's extents in the journal commit that every synced write on the disk
    waits for: beside a 1 GB file unlinked at once the slowest of those writes took 76-101 ms,
    beside the same file cut in 16 MiB steps 7-11 ms; and the unlink at once blocks its
    caller for about 200 ms (BENCHMARKS.md, "Deleting a large replica")."""
    if not path.exists():
        return
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
        with open(file, "r+b") as f:
            size = os.fstat(f.fileno()).st_size
            while size > RELEASE_STEP:
                size -= RELEASE_STEP
                os.ftruncate(f.fileno(), size)
                time.sleep(RELEASE_PAUSE_S)
        file.unlink()
    shutil.rmtree(path)
    fsync_dir(path.parent)
