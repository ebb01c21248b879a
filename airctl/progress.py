"""A live progress line for a running membership workflow: phase, lag, rate, ETA."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, TextIO

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from workflows.change import MembershipChange
from workflows.models import Phase, Progress

# steps a change runs when all goes well, for the bar (describe counts once per workflow)
EXPECTED_STEPS = {"migration": 14, "add-peer": 7, "remove-peer": 8}
WIDTH = 24


async def _query(client: Client, workflow_id: str) -> Progress | None:
    try:
        return await client.get_workflow_handle(workflow_id).query(MembershipChange.progress)
    except RPCError:  # not started (a child), or gone
        return None


async def snapshot(client: Client, handle: WorkflowHandle[Any, Any]) -> Progress | None:
    """The workflow's progress; for a migration the earlier worker started, with its
    children's steps, phase and lag."""
    progress = await _query(client, handle.id)
    if progress is None or progress.kind != "migration":
        return progress
    current = {Phase.ADDING: "add-peer", Phase.REMOVING: "remove-peer"}.get(progress.phase)
    for child in ("add-peer", "remove-peer"):
        inner = await _query(client, f"{handle.id}/{child}")
        if inner is None:
            continue
        progress.steps_done = progress.steps_done + inner.steps_done
        if child == current:
            progress.phase, progress.lag, progress.rate = inner.phase, inner.lag, inner.rate
    return progress


def render(p: Progress) -> str:
    total = EXPECTED_STEPS.get(p.kind, 10)
    done = total if p.phase == Phase.DONE else min(len(p.steps_done), total)
    bar = "#" * (done * WIDTH // total) + "." * (WIDTH - done * WIDTH // total)
    line = f"[{bar}] {p.phase.value:<26}"
    if p.lag is not None:
        line += " " + transfer(p)
    return line


def transfer(p: Progress) -> str:
    """The transfer's lag, rate and ETA (a workflow past its wait: the last ones seen)."""
    text = f"lag {p.lag:,} seqs"
    if p.rate and p.lag is not None:
        text += f"  {p.rate:,.0f} seqs/s  ETA {p.lag / p.rate:.1f}s"
    return text


async def follow(
    client: Client,
    handle: WorkflowHandle[Any, Any],
    out: TextIO = sys.stderr,
    interval: float = 0.2,
) -> None:
    """Show progress until the workflow closes (a line per change when not on a terminal)."""
    live = out.isatty()
    last = ""
    while True:
        running = (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        progress = await snapshot(client, handle)  # once more after it closed: the last phase
        if progress is not None:
            line = render(progress)
            if live:
                out.write("\r" + line + "\033[K")
                out.flush()
            elif line.split(" lag")[0] != last.split(" lag")[0]:
                out.write(line + "\n")
            last = line
        if not running:
            break
        await asyncio.sleep(interval)
    if live:
        out.write("\n")
