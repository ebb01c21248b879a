"""How a workflow a command waited for ended, on the screen and in the exit status: one wait
for every change and operation, one way to put a failure in words (`root_cause`).

Exit status: 0 it completed and none of its moves failed; 1 it failed, or some of its moves
did (each reason on a line of its own). An error before it ended exits 2 (airctl/cli.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from airctl.context import Ctl
from airctl.progress import snapshot
from contracts.errors import root_cause
from contracts.models import (
    AddPeerResult,
    DrainResult,
    MigrationResult,
    RebalanceResult,
    ReconstructResult,
    RemovePeerResult,
    RepairResult,
)

COMPLETED, FAILED = 0, 1

ChangeResult = AddPeerResult | RemovePeerResult | MigrationResult | ReconstructResult
OperationResult = DrainResult | RebalanceResult | RepairResult
W = TypeVar("W")  # the workflow class
R = TypeVar("R", bound=ChangeResult | OperationResult)
Follow = Callable[[Client, WorkflowHandle[W, R]], Awaitable[None]]


async def wait_result(
    ctl: Ctl, client: Client, handle: WorkflowHandle[W, R], follow: Follow[W, R]
) -> int:
    """Show the workflow's progress with `follow` until it ends (with --json, nothing), then
    how it ended: its result, or why it failed."""
    began = time.monotonic()
    if not ctl.json:
        await follow(client, handle)
    try:
        result = await handle.result()
    except WorkflowFailureError as e:
        reason = root_cause(e)
        data = {"workflow_id": handle.id, "ok": False, "error": reason}
        ctl.emit(data, f"{handle.id} failed: {reason}")
        return FAILED
    seconds = time.monotonic() - began
    failed = result.failed if isinstance(result, OperationResult) else {}
    lines = [f"{handle.id} done in {seconds:.2f}s: {message(result)}"]
    data = {
        "workflow_id": handle.id,
        "ok": not failed,
        "seconds": round(seconds, 3),
        "result": result.model_dump(mode="json"),
    }
    if isinstance(result, RepairResult):  # what the survivors hold of the dead node's writes
        lines += [f"region {r.region} -> node {r.to_node}: {r.account}" for r in result.repaired]
    lines += [f"region {region}: {why}" for region, why in sorted(failed.items())]
    if isinstance(result, DrainResult | RebalanceResult):  # kept: a move would lower diversity
        lines += [f"region {region}: kept: {why}" for region, why in sorted(result.kept.items())]
    if isinstance(result, OperationResult):
        less = sorted(result.under_diversified.items())
        lines += [f"region {region}: under-diversified: {why}" for region, why in less]
    if isinstance(result, ChangeResult):
        progress = await snapshot(client, handle)  # the seconds of each phase
        phases = progress.phase_seconds if progress is not None else {}
        data["phase_seconds"] = phases
        if phases:
            spent = ", ".join(f"{phase.lower()} {s:.2f}s" for phase, s in phases.items())
            lines.append(f"  by phase: {spent}")
    ctl.emit(data, "\n".join(lines))
    return FAILED if failed else COMPLETED


def message(result: ChangeResult | OperationResult) -> str:
    """What a workflow did, in its own words."""
    if isinstance(result, AddPeerResult):
        return f"node {result.new_peer} is an active replica of region {result.region}"
    return result.message
