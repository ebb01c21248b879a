"""A live progress line for a running membership workflow: phase, lag, rate, ETA."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, TextIO

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError

from workflows.change import MembershipChange
from workflows.drain import DrainNodeWorkflow
from workflows.models import DrainProgress, Phase, Progress

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


# a running workflow whose worker is away answers no query: its progress shows as unknown
QUERY_TIMEOUT_S = 3.0

NO_ANSWER = "unknown (no worker answers)"


async def live_progress(client: Client, workflow_id: str, kind: str) -> tuple[str, bool | None]:
    """A running workflow's progress in a few words, and whether it stalls (None: unknown)."""
    handle = client.get_workflow_handle(workflow_id)
    if kind == DrainNodeWorkflow.__name__:
        state = await drain_state(handle)
        if state is None:
            return NO_ANSWER, None
        return drain_text(state), bool(state.stalled)
    try:
        progress = await asyncio.wait_for(snapshot(client, handle), QUERY_TIMEOUT_S)
    except (TimeoutError, RPCError, WorkflowQueryFailedError):
        return NO_ANSWER, None
    if progress is None:
        return "starting", None
    if progress.lag is None:
        return f"{len(progress.steps_done)} steps done", progress.stalled
    return transfer(progress), progress.stalled


async def drain_state(handle: WorkflowHandle[Any, Any]) -> DrainProgress | None:
    """The drain's `drain_progress` (a closed one's too), or None when no worker answers."""
    try:
        return await asyncio.wait_for(
            handle.query(DrainNodeWorkflow.drain_progress), QUERY_TIMEOUT_S
        )
    except (TimeoutError, RPCError, WorkflowQueryFailedError):
        return None


def drain_text(s: DrainProgress) -> str:
    """A drain's state in one line: moves done, running, left, failed, stalled; bytes, ETA."""
    text = f"{len(s.done)}/{len(s.planned)} moved, running {sorted(s.running)}, {s.left} left"
    text += f", {s.bytes_moved / 1e6:.1f}/{s.bytes_total / 1e6:.1f} MB"
    if s.rate_bytes_per_s > 0:
        text += f" at {s.rate_bytes_per_s / 1e6:.2f} MB/s"
    if s.eta_s is not None and s.eta_s > 0:
        text += f", ETA {s.eta_s:.0f} s"
    if s.failed:
        text += f", failed {sorted(s.failed)}"
    if s.stalled:
        text += f", stalled {sorted(s.stalled)}"
    return text + f"; at most {s.max_concurrent} at once" + (", PAUSED" if s.paused else "")
