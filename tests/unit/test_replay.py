"""Recorded histories of every workflow replay without non-determinism errors.

Record them anew after a deliberate workflow change:
`AIR_RECORD_HISTORIES=1 pytest -m "not slow" tests/integration/test_workflows.py
tests/integration/test_drain.py` (writes tests/histories/). Move the previous recordings into a
dated folder first and keep them: a worker of the new code must replay workflows that a worker
of the old one started, or a deploy would break the migrations in flight.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker import WORKFLOW_RUNNER, WORKFLOWS

ROOT = Path(__file__).parent.parent / "histories"
HISTORIES = sorted(ROOT.glob("**/*.json"))


def test_every_workflow_type_has_recorded_histories() -> None:
    types = set()
    for path in HISTORIES:
        first: dict[str, Any] = events(path)[0]  # type: ignore[assignment]
        types.add(first["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])
    assert types == {w.__name__ for w in WORKFLOWS}


def test_every_history_executes_steps() -> None:
    """A history of a workflow's start alone replays nothing: none is kept."""
    short = [str(p.relative_to(ROOT)) for p in HISTORIES if len(events(p)) < 10]
    assert not short, short


def events(path: Path) -> list[object]:
    events: list[object] = json.loads(path.read_text())["events"]
    return events


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: str(p.relative_to(ROOT)))
async def test_history_replays(path: Path) -> None:
    workflow_id = path.stem.split("@", 1)[1].replace("~", "/")  # <test>@<workflow id>
    history = WorkflowHistory.from_json(workflow_id, path.read_text())
    replayer = Replayer(
        workflows=WORKFLOWS, workflow_runner=WORKFLOW_RUNNER, data_converter=pydantic_data_converter
    )
    await replayer.replay_workflow(history)
