"""Crash-safe file operations: a kill -9 at any line leaves the old state or the new one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


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


def atomic_remove_dir(path: Path, trash: Path) -> None:
    """Remove a folder so that a crash never leaves it half there under its own name."""
    if trash.exists():
        shutil.rmtree(trash)
    os.rename(path, trash)
    fsync_dir(path.parent)
    shutil.rmtree(trash)
    fsync_dir(path.parent)
