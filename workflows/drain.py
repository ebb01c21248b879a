"""DrainNodeWorkflow: move every replica off a node, a bounded number of migrations at once.

Each move is a RegionMigrationWorkflow child with the region's own workflow id, so a drain
never runs beside another change of the same region. The bound can change while it runs, and
the drain can pause and resume (Temporal updates). Cancelling it starts no new move and
cancels the running ones: each rolls back, or finishes when its removal had begun. A move whose
transfer stalls says so by a signal (relayed by its migration), so the drain shows which stall.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError

from activities.membership import MembershipActivities as A
from workflows.ids import region_workflow_id
from workflows.migration import RegionMigrationWorkflow
from workflows.models import (
    DrainInput,
    DrainProgress,
    DrainResult,
    MigrationInput,
    Move,
    Phase,
    StallReport,
)
from workflows.options import DESCRIBE, child, execute
from workflows.planning import InvalidRequest, plan_drain
from workflows.progress import STALL_SIGNAL
from workflows.search_attributes import (
    KIND_KEY,
    MOVES_DONE_KEY,
    MOVES_LEFT_KEY,
    NODES_KEY,
    PHASE_KEY,
    STALLED_KEY,
)
from workflows.verdict import Verdict


def validate_drain(req: DrainInput) -> None:
    for name in ("max_concurrent", "max_per_node"):
        if getattr(req, name) < 1:
            raise InvalidRequest(f"{name} must be at least 1, not {getattr(req, name)}")


@workflow.defn
class DrainNodeWorkflow:
    kind = "drain"

    @workflow.init
    def __init__(self, req: DrainInput) -> None:
        # set before any handler runs: an update may arrive before the run method starts
        self._state = DrainProgress(node=req.node, max_concurrent=req.max_concurrent)
        self._stalled_shown = False  # the AirStalled value last upserted
        self._started: datetime | None = None  # when the plan was made
        self._verdict = Verdict()

    @workflow.update
    async def validated(self) -> str:
        return await self._verdict.wait()

    @workflow.signal(name=STALL_SIGNAL)
    def transfer_stall(self, report: StallReport) -> None:
        """A move's transfer stalled or moves again (its migration relays its child's report)."""
        s = self._state
        if report.stalled and report.region in s.running:
            s.stalled[report.region] = report.detail
        else:
            s.stalled.pop(report.region, None)
        self._show()

    @workflow.query
    def drain_progress(self) -> DrainProgress:
        return self._measured()

    @workflow.update
    def set_max_concurrent(self, bound: int) -> int:
        self._state.max_concurrent = bound
        self._show()
        return bound

    @set_max_concurrent.validator
    def _valid_bound(self, bound: int) -> None:
        if bound < 1:
            raise ValueError(f"the bound must be at least 1, not {bound}")

    @workflow.update
    def pause(self) -> DrainProgress:
        self._state.paused = True
        self._show()
        return self._measured()

    @workflow.update
    def resume(self) -> DrainProgress:
        self._state.paused = False
        self._show()
        return self._measured()

    @workflow.run
    async def run(self, req: DrainInput) -> DrainResult:
        workflow.upsert_search_attributes(
            [KIND_KEY.value_set(self.kind), NODES_KEY.value_set([str(req.node)])]
        )
        try:
            validate_drain(req)
            summary = f"describe the cluster to drain node {req.node}"
            cluster = await execute(A.describe_cluster, req.node, summary, DESCRIBE)
            self._state.planned = plan_drain(cluster, req.node)
        except InvalidRequest as e:
            raise await self._verdict.refuse(e) from None
        self._verdict.accept(f"drain node {req.node}: {len(self._state.planned)} moves")
        self._started = workflow.now()
        self._show()
        moves = [asyncio.ensure_future(self._move(m, req)) for m in self._state.planned]
        try:
            await asyncio.gather(*moves)
        except asyncio.CancelledError:
            await asyncio.gather(*moves, return_exceptions=True)  # each rolls back or finishes
            raise
        state = self._state
        moved = [m for m in state.planned if m.region in state.done]
        message = f"node {req.node}: {len(moved)} region(s) moved, {len(state.failed)} failed"
        workflow.upsert_search_attributes([PHASE_KEY.value_set(Phase.DONE.value)])
        workflow.set_current_details(message)
        return DrainResult(node=req.node, moved=moved, failed=state.failed, message=message)

    async def _move(self, move: Move, req: DrainInput) -> None:
        state = self._state

        def may_start() -> bool:
            into = sum(
                1 for m in state.planned if m.region in state.running and m.to_node == move.to_node
            )
            return (
                not state.paused
                and len(state.running) < state.max_concurrent
                and into < req.max_per_node
            )

        # Several waiters can be released by one change; each re-checks right before it takes
        # its slot (no await between), so the bound holds.
        while not may_start():
            await workflow.wait_condition(may_start)
        state.running.append(move.region)
        self._show()
        try:
            await child(
                RegionMigrationWorkflow.run,
                MigrationInput(
                    region=move.region,
                    from_node=move.from_node,
                    to_node=move.to_node,
                    down_timeout_s=req.down_timeout_s,
                    stall_after_s=req.stall_after_s,
                ),
                region_workflow_id(move.region),
            )
            state.done.append(move.region)
        except ChildWorkflowError as e:
            state.failed[move.region] = str(e.cause or e)
        except WorkflowAlreadyStartedError:  # the move must not fail the others
            state.failed[move.region] = (
                f"another change of region {move.region} is running "
                f"({region_workflow_id(move.region)}); the region was left where it is"
            )
        finally:
            state.running.remove(move.region)
            state.stalled.pop(move.region, None)
            self._show()

    def _measured(self) -> DrainProgress:
        """The state with bytes moved, rate and ETA as of now (workflow time)."""
        elapsed = (workflow.now() - self._started).total_seconds() if self._started else 0.0
        return self._state.measured(elapsed)

    def _show(self) -> None:
        s = self._measured()
        phase = Phase.PAUSED if s.paused else Phase.MOVING
        updates: list[SearchAttributeUpdate[Any]] = [
            PHASE_KEY.value_set(phase.value),
            MOVES_DONE_KEY.value_set(len(s.done)),
            MOVES_LEFT_KEY.value_set(s.left + len(s.running)),
        ]
        if bool(s.stalled) != self._stalled_shown:
            self._stalled_shown = bool(s.stalled)
            updates.append(STALLED_KEY.value_set(self._stalled_shown))
        workflow.upsert_search_attributes(updates)
        stalled = "".join(f"\n\nregion {r}: {why}" for r, why in sorted(s.stalled.items()))
        eta = f"ETA {s.eta_s:.0f} s" if s.eta_s is not None else "ETA unknown yet"
        workflow.set_current_details(
            f"**drain** node {s.node}: phase **{phase}**\n\n"
            f"{len(s.done)} done, {len(s.running)} running {sorted(s.running)}, {s.left} left, "
            f"{len(s.failed)} failed, {len(s.stalled)} stalled; at most {s.max_concurrent} at once"
            f"\n\n{s.bytes_moved / 1e6:.1f} of {s.bytes_total / 1e6:.1f} MB moved, "
            f"{s.rate_bytes_per_s / 1e6:.2f} MB/s, {eta}" + stalled
        )
