"""Following a running workflow (a change, an operation, a check): one `follow` loop, and
its progress as bars on a terminal (display.py)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TextIO, TypeVar

from rich.progress import TaskID
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError

from airctl.display import Bars
from client.status import running
from contracts.ids import region_workflow_id
from contracts.models import MovesProgress, Phase, Progress
from contracts.rates import limit_text
from workflows.drain import DrainNodeWorkflow
from workflows.machinery.change import MembershipChange
from workflows.machinery.operation import MovesWorkflow
from workflows.rebalance import RebalanceWorkflow
from workflows.repair import RepairNodeWorkflow


async def _query(client: Client, workflow_id: str) -> Progress | None:
    try:
        return await client.get_workflow_handle(workflow_id).query(MembershipChange.progress)
    except RPCError:  # not started yet, or gone
        return None


async def snapshot(client: Client, handle: WorkflowHandle[Any, Any]) -> Progress | None:
    """A membership change's progress; None when it has not started or is gone."""
    return await _query(client, handle.id)


def transfer(p: Progress) -> str:
    """The transfer's lag, rate and ETA (a workflow past its wait: the last ones seen)."""
    text = f"lag {p.lag:,} seqs"
    if p.rate and p.lag is not None:
        text += f"  {p.rate:,.0f} seqs/s  ETA {p.lag / p.rate:.1f}s"
    if p.snapshot_received and p.phase == Phase.TRANSFERRING:
        text += f"  snapshot {p.snapshot_received / 1e6:,.1f} MB received"
        limit = limit_text(p.snapshot_limit, p.snapshot_limit_auto)
        text += f" ({limit})" if limit else ""
    return text


P = TypeVar("P")


async def follow(
    finished: Callable[[], Awaitable[bool]],
    read: Callable[[], Awaitable[P | None]],
    show: Callable[[P], Awaitable[None]],
    interval: float,
) -> None:
    """Show what `read` answers (None: nothing yet) every `interval` until `finished`.

    `finished` is asked before the read, so the last read comes after the end and shows how
    it ended; it may itself wait (a check waits on its result, to give the verdict at once).
    """
    while True:
        over = await finished()
        progress = await read()
        if progress is not None:
            await show(progress)
        if over:
            return
        await asyncio.sleep(interval)


def closed(handle: WorkflowHandle[Any, Any]) -> Callable[[], Awaitable[bool]]:
    """`follow`'s `finished` for a workflow: it no longer runs."""

    async def finished() -> bool:
        return not await running(handle)

    return finished


async def follow_change(
    client: Client,
    handle: WorkflowHandle[Any, Any],
    out: TextIO = sys.stderr,
    interval: float = 0.2,
) -> None:
    """Show a change's progress until it closes: its phase, and during a transfer the seqs
    applied of those it waits for, the rate and the ETA."""
    with Bars(out) as bars:
        bar, lag = bars.add(handle.id), LagBar()

        async def show(progress: Progress) -> None:
            show_change(bars, bar, handle.id, progress, lag)

        await follow(closed(handle), partial(snapshot, client, handle), show, interval)


class LagBar:
    """A transfer's bar: the largest lag seen in the phase is its length."""

    def __init__(self) -> None:
        self.phase: Phase | None = None
        self.total = 0

    def measure(self, progress: Progress) -> tuple[float | None, float | None]:
        """(done, total) for the bar; (None, None) while there is nothing to measure."""
        if progress.phase == Phase.DONE:
            return 1, 1
        if progress.phase != self.phase:
            self.phase, self.total = progress.phase, 0
        if progress.lag is None or progress.phase not in (Phase.TRANSFERRING, Phase.HANDING_OFF):
            return None, None
        self.total = max(self.total, progress.lag)
        return self.total - progress.lag, self.total or 1


def show_change(bars: Bars, bar: TaskID, name: str, progress: Progress, lag: LagBar) -> None:
    done, total = lag.measure(progress)
    detail = transfer(progress) if progress.lag is not None and total is not None else ""
    bars.update(bar, f"{name} {progress.phase.value}", done=done, total=total, detail=detail)


# a running workflow whose worker is away answers no query: its progress shows as unknown
QUERY_TIMEOUT_S = 3.0

NO_ANSWER = "unknown (no worker answers)"
OPERATIONS = {
    DrainNodeWorkflow.__name__,
    RebalanceWorkflow.__name__,
    RepairNodeWorkflow.__name__,
}


async def live_progress(client: Client, workflow_id: str, kind: str) -> tuple[str, bool | None]:
    """A running workflow's progress in a few words, and whether it stalls (None: unknown)."""
    handle = client.get_workflow_handle(workflow_id)
    if kind in OPERATIONS:
        state = await operation_state(handle)
        if state is None:
            return NO_ANSWER, None
        return moves_text(state), bool(state.stalled)
    try:
        progress = await asyncio.wait_for(snapshot(client, handle), QUERY_TIMEOUT_S)
    except (TimeoutError, RPCError, WorkflowQueryFailedError):
        return NO_ANSWER, None
    if progress is None:
        return "starting", None
    if progress.lag is None:
        return f"{len(progress.steps_done)} steps done", progress.stalled
    return transfer(progress), progress.stalled


async def operation_state(handle: WorkflowHandle[Any, Any]) -> MovesProgress | None:
    """A drain's or a rebalance's progress (a closed one's too); None when no worker answers."""
    try:
        return await asyncio.wait_for(handle.query(MovesWorkflow.moves_progress), QUERY_TIMEOUT_S)
    except (TimeoutError, RPCError, WorkflowQueryFailedError):
        return None


def moves_text(state: MovesProgress) -> str:
    """An operation's state in one line: moves done, running, left, failed, stalled; bytes,
    ETA."""
    text = f"{moved(state)}, running {sorted(state.running)}, {state.left} left"
    if state.round > 1:
        text = f"round {state.round}: " + text
    text += f", {state.bytes_moved / 1e6:.1f}/{state.bytes_total / 1e6:.1f} MB"
    if state.rate_bytes_per_s > 0:
        text += f" at {state.rate_bytes_per_s / 1e6:.2f} MB/s"
    if state.eta_s is not None and state.eta_s > 0:
        text += f", ETA {state.eta_s:.0f} s"
    if state.failed:
        text += f", failed {sorted(state.failed)}"
    if state.stalled:
        text += f", stalled {sorted(state.stalled)}"
    for region, why in sorted(state.waiting.items()):  # "waiting for node 4: <the refusal>"
        text += f", region {region} {why.split(':', 1)[0]}"
    if state.rerouted:
        text += f", rerouted {sorted(state.rerouted)}"
    return text + f"; at most {state.max_concurrent} at once" + (", PAUSED" if state.paused else "")


def moved(state: MovesProgress) -> str:
    """Moves done of those planned, in every round so far."""
    return f"{len(state.earlier) + len(state.done)}/{len(state.earlier) + len(state.planned)} moved"


async def follow_operation(
    client: Client,
    handle: WorkflowHandle[Any, Any],
    out: TextIO = sys.stderr,
    interval: float = 0.5,
) -> None:
    """Show a drain or a rebalance until it ends: the bytes moved of the total, and on a
    terminal a bar per running move."""
    with Bars(out) as bars:
        overall = bars.add(handle.id)
        moves: dict[int, tuple[TaskID, LagBar]] = {}

        async def show(state: MovesProgress) -> None:
            title, total = f"{handle.id}: {moved(state)}", state.bytes_total or None
            bars.update(
                overall, title, done=state.bytes_moved, total=total, detail=moves_text(state)
            )
            if bars.live:
                await _show_moves(client, bars, moves, state.running)

        await follow(closed(handle), partial(operation_state, handle), show, interval)


async def _show_moves(
    client: Client, bars: Bars, moves: dict[int, tuple[TaskID, LagBar]], running: list[int]
) -> None:
    for region in list(moves):
        if region not in running:
            bars.remove(moves.pop(region)[0])
    for region in running:
        bar, lag = moves.setdefault(region, (bars.add(f"  region {region}"), LagBar()))
        progress = await _query(client, region_workflow_id(region))
        if progress is not None:
            show_change(bars, bar, f"  region {region}", progress, lag)
