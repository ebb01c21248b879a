"""The nemesis, as CI runs it: two seeds, each a schedule of faults (isolations, cuts, one-way
and lossy links, halves, freezes, kills of nodes and of the worker) and operations under writes
at every acknowledgement level, with the autopilot on. Zero anomalies is the bar."""

from __future__ import annotations

import json

import pytest

from bench.nemesis.run import run
from stack.hosts import missing_requirements
from tests.support.hosts import xdist_slot
from tests.support.requirements import require

pytestmark = pytest.mark.slow

SECONDS = 90.0  # of faults; then everything heals and settles


@pytest.mark.parametrize("seed", [11, 12])
async def test_a_seeded_nemesis_run_finds_no_anomaly(seed: int) -> None:
    require(missing_requirements())
    report = await run(seed, SECONDS, slot=xdist_slot())
    shown = json.dumps(report, indent=1)
    assert sum(report["faults"].values()) >= 3, shown  # the run did strike
    assert sum(report["operations"]["started"].values()) >= 3, shown
    assert all(count > 0 for count in report["acked"].values()), shown
    assert report["settled"], shown
    assert report["anomalies"] == [], shown
