"""The bounded mover: runs a plan of moves, each a region migration workflow's child.

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
import enum
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError

from contracts.errors import root_cause
from contracts.ids import region_workflow_id
from contracts.models import (
    MigrationInput,
    MigrationResult,
    Move,
    MovesProgress,
    Phase,
    StallReport,
)
from contracts.search_attributes import MOVES_DONE_KEY, MOVES_LEFT_KEY, PHASE_KEY
from workflows.machinery import patches
from workflows.machinery.failures import rolled_back, unreachable_node
from workflows.machinery.options import child
from workflows.machinery.progress import Reporter

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


class Reroute(enum.Enum):
    """What becomes of a move whose node did not answer for `down_timeout_s`, or whose
    addition failed (and was rolled back)."""

    FAIL = "fail"
    REPLAN = "replan"  # to another destination, as its operation's planner would (drain, repair)
    SET_ASIDE = "set-aside"  # retried once after the others (rebalance)


# A move refused for a node that does not answer tries again after this long, doubling.
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 10.0
# A move goes elsewhere at most this many times before it is counted failed.
MAX_REPLANS = 3


@dataclass(frozen=True)
class MoveSettings:
    """What every move of an operation is started with."""

    max_per_node: int
    down_timeout_s: float
    stall_after_s: float
    leaving_down_timeout_s: float | None = None  # see MigrationInput
    keep_outcomes: bool = False  # each move's account in the state (a repair reports them)
    from_node_gone: bool = False  # see MigrationInput: a repair's moves
    reroute: Reroute = Reroute.FAIL


class MoveFailed(Exception):
    """A move ended without moving its region: the reason."""


# Plans a move again, to none of the nodes given: an operation's planner (drain, repair).
Replanner = Callable[[Move, set[int]], Awaitable[Move | None]]
# The migration workflow's run method, each move's child (handed down by the definitions, so
# this machinery imports none of them).
MigrationRun = Callable[[Any, MigrationInput], Awaitable[MigrationResult]]


class Mover:
    """Runs an operation's plan of moves within its bounds; the operation's updates (pause,
    resume, bound) and its moves' stall signal steer it."""

    def __init__(
        self,
        state: MovesProgress,
        title: str,
        migrate: MigrationRun,
        reporter: Reporter | None = None,
        replan: Replanner | None = None,
    ) -> None:
        self.state = state
        self.title = title  # "drain node 1"
        self.migrate = migrate
        self.reporter = reporter or Reporter()
        self.replan = replan
        self._waiting: list[Move] = []  # the moves not started yet, in plan order
        self._bytes = ByteCount()  # of the plan, kept as moves end: progress costs no scan
        self._busy: Counter[int] = Counter()  # node -> running moves it sends or receives
        self._current: dict[int, Move] = {}  # running region -> its move (rerouted, maybe)
        self._sources: dict[int, int] = {}  # running region -> the node it copies from
        self._failed_destinations: dict[int, set[int]] = {}  # region -> nodes that failed it

    # -- running ------------------------------------------------------------------------------

    async def run(self, settings: MoveSettings) -> bool:
        """Start moves while some wait and the history has room, then wait for those started.

        True when every move has ended; False when the workflow must continue as new.
        """
        state = self.state
        if state.began is None:
            state.began = workflow.now()
        ended = {*state.done, *state.failed, *state.running}
        aside = set(state.set_aside)  # moves set aside go after the others
        self._waiting = sorted(
            (m for m in state.planned if m.region not in ended), key=lambda m: m.region in aside
        )
        self._bytes = ByteCount(*state.byte_counts())
        self.show()
        started: list[asyncio.Task[None]] = []
        try:
            while (chosen := await self._next(settings)) is not None:
                move, source = chosen
                self._take(move, source)  # before the next choice: the bounds hold
                started.append(asyncio.create_task(self._move(move, settings)))
            await asyncio.gather(*started)
        except asyncio.CancelledError:
            for task in started:  # each move is asked to cancel: it rolls back, or finishes
                task.cancel()
            await asyncio.gather(*started, return_exceptions=True)
            raise
        return not self._waiting

    async def _next(self, settings: MoveSettings) -> tuple[Move, int] | None:
        """The next move to start and the node it copies from; None once no move will start
        in this run (none waits and none runs, which could set one aside; or the history is
        full)."""

        def over() -> bool:
            return _history_full() or not (self._waiting or self.state.running)

        while not over():
            if (chosen := self._startable(settings)) is not None:
                return chosen
            await workflow.wait_condition(lambda: over() or self._startable(settings) is not None)
        return None

    def _startable(self, settings: MoveSettings) -> tuple[Move, int] | None:
        """The first waiting move (in plan order) that fits the bounds, and its source."""
        state, limit = self.state, settings.max_per_node
        if state.paused or len(state.running) >= state.max_concurrent:
            return None
        for move in self._waiting:
            if self._busy[move.to_node] >= limit:
                continue
            free = [n for n in move.sources if self._busy[n] < limit and n != move.to_node]
            if free:
                return move, min(free, key=lambda n: (self._busy[n], n))
        return None

    def _take(self, move: Move, source: int) -> None:
        self._waiting.remove(move)
        self.state.running.append(move.region)
        self._current[move.region] = move
        self._sources[move.region] = source
        self._busy[move.to_node] += 1
        self._busy[source] += 1

    async def _move(self, move: Move, settings: MoveSettings) -> None:
        state = self.state
        try:
            result = await self._ride_through(move.region, settings)
            state.done.append(move.region)
            self._bytes.moved += move.store_bytes
            if settings.keep_outcomes:
                state.outcomes[move.region] = result.remove.message if result.remove else ""
        except _SetAside:
            self._waiting.append(self._current[move.region])
        except MoveFailed as e:
            state.failed[move.region] = str(e)
            self._bytes.gone += move.store_bytes
        finally:
            state.running.remove(move.region)
            state.stalled.pop(move.region, None)
            state.waiting.pop(move.region, None)
            self._release(self._current.pop(move.region), self._sources.pop(move.region))
            self.show()

    async def _ride_through(self, region: int, settings: MoveSettings) -> MigrationResult:
        """The region's move; refused for a node that does not answer, tried again for up to
        `down_timeout_s`; then, or once its addition failed, rerouted as `settings` say."""
        replans = 0
        waited_since: float | None = None
        delay = RETRY_FIRST_S
        while True:
            move = self._current[region]
            try:
                return await self._migrate(move, self._sources[region], settings)
            except ChildWorkflowError as e:
                node, reason = unreachable_node(e), root_cause(e)
                if (node is None and not rolled_back(e)) or not self._rides_through():
                    raise MoveFailed(reason) from e
            now = workflow.time()
            waited_since = waited_since or now
            if node is not None and now - waited_since < settings.down_timeout_s:
                self.state.waiting[region] = f"waiting for node {node}: {reason}"
                self.show()
                await workflow.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self.state.waiting.pop(region, None)
            if settings.reroute is Reroute.SET_ASIDE and region not in self.state.set_aside:
                self.state.set_aside.append(region)
                raise _SetAside
            if settings.reroute is not Reroute.REPLAN or self.replan is None:
                raise MoveFailed(reason)
            if replans >= MAX_REPLANS or (elsewhere := await self._elsewhere(move)) is None:
                raise MoveFailed(f"{reason}; and no other node could take region {region}")
            replans, waited_since, delay = replans + 1, None, RETRY_FIRST_S
            self._reroute(move, elsewhere)

    def _rides_through(self) -> bool:
        return workflow.patched(patches.MOVES_RIDE_THROUGH)

    async def _migrate(self, move: Move, source: int, settings: MoveSettings) -> MigrationResult:
        try:
            return await child(
                self.migrate,
                MigrationInput(
                    region=move.region,
                    from_node=move.from_node,
                    to_node=move.to_node,
                    coordinator=source,
                    down_timeout_s=settings.down_timeout_s,
                    stall_after_s=settings.stall_after_s,
                    leaving_down_timeout_s=settings.leaving_down_timeout_s,
                    from_node_gone=settings.from_node_gone,
                    allow_less_diverse=True,  # the operation's planner judged the place
                ),
                region_workflow_id(move.region),
                f"migrate region {move.region}: node {move.from_node} -> node {move.to_node} "
                f"({self.title})",
            )
        except WorkflowAlreadyStartedError:  # the move must not fail the others
            raise MoveFailed(
                f"another change of region {move.region} is running "
                f"({region_workflow_id(move.region)}); the region was left where it is"
            ) from None

    async def _elsewhere(self, move: Move) -> Move | None:
        """The move planned again to a node that has not failed it."""
        assert self.replan is not None
        avoid = {move.to_node, *self._failed_destinations.setdefault(move.region, set())}
        self._failed_destinations[move.region] = avoid
        return await self.replan(move, avoid)

    def _reroute(self, move: Move, elsewhere: Move) -> None:
        """Replace `move` by `elsewhere` in the plan, its bounds counted anew."""
        state = self.state
        self._release(move, self._sources[move.region])
        state.planned = [elsewhere if m.region == move.region else m for m in state.planned]
        self._current[move.region] = elsewhere
        source = min(elsewhere.sources, key=lambda n: (self._busy[n], n))
        self._sources[move.region] = source
        self._busy[elsewhere.to_node] += 1
        self._busy[source] += 1
        state.rerouted[move.region] = (
            f"node {move.to_node} did not take it: to node {elsewhere.to_node} instead"
        )
        self.show()

    def _release(self, move: Move, source: int) -> None:
        self._busy[move.to_node] -= 1
        self._busy[source] -= 1

    # -- steering (the operation's updates, its moves' stall signal) ---------------------------

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

    # -- showing ------------------------------------------------------------------------------

    def measured(self) -> MovesProgress:
        """The state with bytes moved, rate and ETA as of now (workflow time)."""
        began, counts = self.state.began, self._bytes
        elapsed = (workflow.now() - began).total_seconds() if began else 0.0
        return self.state.rated(elapsed, counts.total, counts.moved, counts.gone)

    def show(self, phase: Phase | None = None) -> None:
        state = self.measured()
        phase = phase or (Phase.PAUSED if state.paused else Phase.MOVING)
        updates: list[SearchAttributeUpdate[Any]] = [
            PHASE_KEY.value_set(phase.value),
            MOVES_DONE_KEY.value_set(len(state.earlier) + len(state.done)),
            MOVES_LEFT_KEY.value_set(state.left + len(state.running)),
        ]
        self.reporter.attributes(updates)
        self.reporter.stalled(bool(state.stalled))  # a wait for a node is bounded: not a stall
        left = state.left + len(state.running)
        self.reporter.workflow.gauge(
            "air_moves_left", "Moves of an operation not finished", left, {"operation": self.title}
        )
        self.reporter.workflow.details(details(self.title, state, phase))


class _SetAside(Exception):
    """The move waits until the others have had their turn (Reroute.SET_ASIDE)."""


def _history_full() -> bool:
    return workflow.info().get_current_history_length() >= START_BEFORE


def details(title: str, state: MovesProgress, phase: Phase) -> str:
    """An operation's current details in the UI: its moves, bytes, rate, ETA and stalls."""
    stalled = "".join(
        f"\n\nregion {r}: {why}" for r, why in sorted({**state.stalled, **state.waiting}.items())
    )
    eta = f"ETA {state.eta_s:.0f} s" if state.eta_s is not None else "ETA unknown yet"
    earlier = f" (and {len(state.earlier)} in rounds before)" if state.earlier else ""
    return (
        f"**{title}**: phase **{phase}**, round {state.round}, run {state.runs}\n\n"
        f"{len(state.done)} done{earlier}, {len(state.running)} running {sorted(state.running)}, "
        f"{state.left} left, {len(state.failed)} failed, {len(state.stalled)} stalled, "
        f"{len(state.waiting)} waiting for a node; "
        f"at most {state.max_concurrent} at once"
        f"\n\n{state.bytes_moved / 1e6:.1f} of {state.bytes_total / 1e6:.1f} MB moved, "
        f"{state.rate_bytes_per_s / 1e6:.2f} MB/s, {eta}" + stalled
    )
