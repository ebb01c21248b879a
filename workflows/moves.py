"""The bounded mover: runs a plan of moves, each a RegionMigrationWorkflow child.

At most `max_concurrent` moves run at once in the cluster and `max_per_node` on any one node,
sending (the snapshot's source) or receiving. Pause, resume and a new bound take effect at once.
A move whose transfer stalls says so (its migration signals), and the progress lists it.
Cancelling stops new moves and cancels the running ones: each rolls back, or finishes once its
removal began. Each run of the workflow stays small: no move starts once the run's history
nears `START_BEFORE` events; the running ones finish, and the workflow continues as new with
the state. A drain, a rebalance and a repair differ only in their plan.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError

from workflows.errors import root_cause
from workflows.ids import region_workflow_id
from workflows.migration import RegionMigrationWorkflow
from workflows.models import MigrationInput, Move, MovesProgress, Phase, StallReport
from workflows.options import child
from workflows.progress import Reporter
from workflows.search_attributes import MOVES_DONE_KEY, MOVES_LEFT_KEY, PHASE_KEY

# No move starts in a run whose history holds this many events. A move costs about 10 events,
# 4 of them as it ends; with at most MAX_CONCURRENT (planning.py) running, no run of an
# operation reaches 2,000 events whatever its number of moves.
START_BEFORE = 1_500


@dataclass
class ByteCount:
    """The plan's store bytes: in all, of the moves done, of those failed."""

    total: int = 0
    moved: int = 0
    gone: int = 0


@dataclass(frozen=True)
class MoveSettings:
    """What every move of an operation is started with."""

    max_per_node: int
    down_timeout_s: float
    stall_after_s: float
    leaving_down_timeout_s: float | None = None  # see MigrationInput
    keep_outcomes: bool = False  # each move's account in the state (a repair reports them)


class Steered:
    """The steering an operation's updates and its moves' stall signal do: on any runner of
    moves with a `state`, a `show()` and a `measured()` (the mover; a drain of the earlier
    worker)."""

    state: MovesProgress

    def show(self) -> None:
        raise NotImplementedError

    def measured(self) -> MovesProgress:
        raise NotImplementedError

    def pause(self) -> MovesProgress:
        self.state.paused = True
        self.show()
        return self.measured()

    def resume(self) -> MovesProgress:
        self.state.paused = False
        self.show()
        return self.measured()

    def bound(self, max_concurrent: int) -> int:
        self.state.max_concurrent = max_concurrent
        self.show()
        return max_concurrent

    def stall(self, report: StallReport) -> None:
        """A move's transfer stalled or moves again (its migration signals)."""
        if report.stalled and report.region in self.state.running:
            self.state.stalled[report.region] = report.detail
        else:
            self.state.stalled.pop(report.region, None)
        self.show()


class Mover(Steered):
    def __init__(self, state: MovesProgress, title: str, reporter: Reporter | None = None) -> None:
        self.state = state
        self.title = title  # "drain node 1"
        self.reporter = reporter or Reporter()
        self._waiting: list[Move] = []  # the moves not started yet, in plan order
        self._bytes = ByteCount()  # of the plan, kept as moves end: progress costs no scan
        self._busy: Counter[int] = Counter()  # node -> running moves it sends or receives

    # -- running ------------------------------------------------------------------------------

    async def run(self, settings: MoveSettings) -> bool:
        """Start moves while some wait and the history has room, then wait for those started.

        True when every move has ended; False when the workflow must continue as new.
        """
        s = self.state
        if s.began is None:
            s.began = workflow.now()
        ended = {*s.done, *s.failed, *s.running}
        self._waiting = [m for m in s.planned if m.region not in ended]
        self._bytes = ByteCount(*s.byte_counts())
        self.show()
        started: list[asyncio.Task[None]] = []
        try:
            while (chosen := await self._next(settings)) is not None:
                move, source = chosen
                self._take(move, source)  # before the next choice: the bounds hold
                started.append(asyncio.create_task(self._move(move, source, settings)))
            await asyncio.gather(*started)
        except asyncio.CancelledError:
            for task in started:  # each move is asked to cancel: it rolls back, or finishes
                task.cancel()
            await asyncio.gather(*started, return_exceptions=True)
            raise
        return not self._waiting

    async def _next(self, settings: MoveSettings) -> tuple[Move, int | None] | None:
        """The next move to start and the node it copies from; None once no move will start
        in this run (none waits, or the history is full)."""
        while self._waiting and not _history_full():
            if (chosen := self._startable(settings)) is not None:
                return chosen
            await workflow.wait_condition(
                lambda: _history_full() or self._startable(settings) is not None
            )
        return None

    def _startable(self, settings: MoveSettings) -> tuple[Move, int | None] | None:
        """The first waiting move (in plan order) that fits the bounds, and its source."""
        s, limit = self.state, settings.max_per_node
        if s.paused or len(s.running) >= s.max_concurrent:
            return None
        for move in self._waiting:
            if self._busy[move.to_node] >= limit:
                continue
            if not move.sources:  # planned by the earlier worker: the migration picks
                return move, None
            free = [n for n in move.sources if self._busy[n] < limit and n != move.to_node]
            if free:
                return move, min(free, key=lambda n: (self._busy[n], n))
        return None

    def _take(self, move: Move, source: int | None) -> None:
        self._waiting.remove(move)
        self.state.running.append(move.region)
        self._busy[move.to_node] += 1
        if source is not None:
            self._busy[source] += 1

    async def _move(self, move: Move, source: int | None, settings: MoveSettings) -> None:
        s = self.state
        try:
            result = await child(
                RegionMigrationWorkflow.run,
                MigrationInput(
                    region=move.region,
                    from_node=move.from_node,
                    to_node=move.to_node,
                    coordinator=source,
                    down_timeout_s=settings.down_timeout_s,
                    stall_after_s=settings.stall_after_s,
                    leaving_down_timeout_s=settings.leaving_down_timeout_s,
                ),
                region_workflow_id(move.region),
                f"migrate region {move.region}: node {move.from_node} -> node {move.to_node} "
                f"({self.title})",
            )
            s.done.append(move.region)
            self._bytes.moved += move.store_bytes
            if settings.keep_outcomes:
                s.outcomes[move.region] = result.remove.message if result.remove else ""
        except ChildWorkflowError as e:
            s.failed[move.region] = root_cause(e)
            self._bytes.gone += move.store_bytes
        except WorkflowAlreadyStartedError:  # the move must not fail the others
            s.failed[move.region] = (
                f"another change of region {move.region} is running "
                f"({region_workflow_id(move.region)}); the region was left where it is"
            )
            self._bytes.gone += move.store_bytes
        finally:
            s.running.remove(move.region)
            s.stalled.pop(move.region, None)
            self._busy[move.to_node] -= 1
            if source is not None:
                self._busy[source] -= 1
            self.show()

    # -- showing ------------------------------------------------------------------------------

    def measured(self) -> MovesProgress:
        """The state with bytes moved, rate and ETA as of now (workflow time)."""
        began, b = self.state.began, self._bytes
        elapsed = (workflow.now() - began).total_seconds() if began else 0.0
        return self.state.rated(elapsed, b.total, b.moved, b.gone)

    def show(self, phase: Phase | None = None) -> None:
        s = self.measured()
        phase = phase or (Phase.PAUSED if s.paused else Phase.MOVING)
        updates: list[SearchAttributeUpdate[Any]] = [
            PHASE_KEY.value_set(phase.value),
            MOVES_DONE_KEY.value_set(len(s.earlier) + len(s.done)),
            MOVES_LEFT_KEY.value_set(s.left + len(s.running)),
        ]
        self.reporter.attributes(updates)
        self.reporter.stalled(bool(s.stalled))
        left = s.left + len(s.running)
        self.reporter.surface.gauge(
            "air_moves_left", "Moves of an operation not finished", left, {"operation": self.title}
        )
        self.reporter.surface.details(details(self.title, s, phase))


def _history_full() -> bool:
    return workflow.info().get_current_history_length() >= START_BEFORE


def details(title: str, s: MovesProgress, phase: Phase) -> str:
    """An operation's current details in the UI: its moves, bytes, rate, ETA and stalls."""
    stalled = "".join(f"\n\nregion {r}: {why}" for r, why in sorted(s.stalled.items()))
    eta = f"ETA {s.eta_s:.0f} s" if s.eta_s is not None else "ETA unknown yet"
    earlier = f" (and {len(s.earlier)} in rounds before)" if s.earlier else ""
    return (
        f"**{title}**: phase **{phase}**, round {s.round}, run {s.runs}\n\n"
        f"{len(s.done)} done{earlier}, {len(s.running)} running {sorted(s.running)}, "
        f"{s.left} left, {len(s.failed)} failed, {len(s.stalled)} stalled; "
        f"at most {s.max_concurrent} at once"
        f"\n\n{s.bytes_moved / 1e6:.1f} of {s.bytes_total / 1e6:.1f} MB moved, "
        f"{s.rate_bytes_per_s / 1e6:.2f} MB/s, {eta}" + stalled
    )
