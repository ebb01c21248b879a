"""A deleted replica's folder: out of its name at once, its files given back a step at a time
in the background, one folder after another; what a crash leaves, the next start removes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node.replicas import Replicas
from runtime import files
from runtime.files import RELEASE_STEP, remove_gently


def a_replica_folder(replicas: Replicas, region: int, big: int) -> Path:
    """A region's folder holding a `big`-byte store (sparse) and small files beside it."""
    folder = replicas.directory(region)
    (folder / "nested").mkdir(parents=True)
    with open(folder / "store.db", "wb") as f:
        f.truncate(big)
    (folder / "replica.json").write_text("{}")
    (folder / "nested" / "snapshot.2.held").write_text("{}")
    return folder


def trash(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob("region_*.deleting*"))


@pytest.fixture
def cuts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes each file was cut to, in order (no pause between steps)."""
    sizes: list[int] = []
    real = os.ftruncate

    def ftruncate(fd: int, size: int) -> None:
        sizes.append(size)
        real(fd, size)

    monkeypatch.setattr(os, "ftruncate", ftruncate)
    monkeypatch.setattr(files, "RELEASE_PAUSE_S", 0.0)
    return sizes


def test_a_large_file_is_cut_down_a_step_at_a_time_before_it_goes(
    tmp_path: Path, cuts: list[int]
) -> None:
    folder = a_replica_folder(Replicas(1, tmp_path, "normal"), 7, 5 * RELEASE_STEP + 123)
    remove_gently(folder)
    assert not folder.exists()
    assert cuts == [4 * RELEASE_STEP + 123, 3 * RELEASE_STEP + 123, 2 * RELEASE_STEP + 123,
                    RELEASE_STEP + 123, 123]  # fmt: skip
    remove_gently(folder)  # a retry after it finished: nothing to do


def test_a_folder_left_half_removed_is_removed_the_same_way(
    tmp_path: Path, cuts: list[int]
) -> None:
    folder = a_replica_folder(Replicas(1, tmp_path, "normal"), 7, 3 * RELEASE_STEP)
    os.truncate(folder / "store.db", RELEASE_STEP // 2)  # where a crash stopped the cuts
    (folder / "replica.json").unlink()
    remove_gently(folder)
    assert not folder.exists() and cuts == []


async def test_a_deleted_folder_leaves_its_name_at_once_and_goes_in_the_background(
    tmp_path: Path, cuts: list[int]
) -> None:
    replicas = Replicas(1, tmp_path, "normal")
    a_replica_folder(replicas, 7, 3 * RELEASE_STEP)
    replicas.remove_folder(7)
    assert not replicas.directory(7).exists()
    # the same region made and deleted again while the first folder may still be going
    a_replica_folder(replicas, 7, 2 * RELEASE_STEP)
    replicas.remove_folder(7)
    await replicas.reclaimer.drain()
    assert trash(tmp_path) == [] and replicas.reclaimer.pending == 0
    assert len(cuts) == 2 + 1  # both stores cut in steps, one after the other


async def test_what_a_crash_left_mid_delete_the_next_start_removes(tmp_path: Path) -> None:
    before = Replicas(1, tmp_path, "normal")
    for region, name in ((7, "region_7.deleting"), (8, "region_8.deleting-17")):
        a_replica_folder(before, region, RELEASE_STEP).rename(tmp_path / name)
    after = Replicas(1, tmp_path, "normal")
    after.recover()
    await after.reclaimer.drain()
    assert trash(tmp_path) == [] and len(after) == 0
