from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from contracts.killpoints import EXIT_CODE, NODE_POINTS, WORKER_POINTS, KillPoint
from runtime.killswitch import KillPoints

REACH = (
    "from pathlib import Path; from runtime.killswitch import KillPoints; "
    "from contracts.killpoints import KillPoint; "
    "KillPoints.from_env(Path('{d}')).reach(KillPoint.AFTER_DELETE); print('went on')"
)


def run(tmp_path: Path, armed: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", REACH.format(d=tmp_path)],
        env={"AIR_KILL_POINTS": armed, "PATH": ""},
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_an_armed_point_kills_once(tmp_path: Path) -> None:
    first = run(tmp_path, "AFTER_DELETE")
    assert first.returncode == EXIT_CODE
    assert "[KILL POINT] AFTER_DELETE" in first.stderr
    second = run(tmp_path, "AFTER_DELETE")
    assert (second.returncode, second.stdout.strip()) == (0, "went on")


def test_an_unarmed_point_does_nothing(tmp_path: Path) -> None:
    assert run(tmp_path, "BEFORE_DELETE").stdout.strip() == "went on"


def test_an_unknown_name_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIR_KILL_POINTS", "AFTER_DELETE,NO_SUCH_POINT")
    with pytest.raises(ValueError, match=r"unknown kill point.*NO_SUCH_POINT"):
        KillPoints.from_env(tmp_path)


def test_the_thirteen_points_split_between_nodes_and_workers() -> None:
    assert len(KillPoint) == 13
    assert set(KillPoint) == NODE_POINTS | WORKER_POINTS
    assert not NODE_POINTS & WORKER_POINTS
