"""What every operation of many moves shares: its handlers, its planning, its run of moves.

A drain, a rebalance and a repair differ only in how they plan. Each is a
workflow class deriving from `MovesWorkflow`: it plans from the cluster's description and
hands the moves to the bounded mover (`moves.py`), which continues as new before the run's
history grows large. The handlers here steer it: the `validated` update, the progress
query, the bound, pause and resume updates, and the stall signal of its moves.
"""

from __future__ import annotations

from typing import Any, Protocol

from temporalio import workflow

from contracts.errors import InvalidRequest
from contracts.models import Move, MovesProgress, Phase, StallReport
from contracts.plans import DrainPlan, PlanRequest, RebalancePlan, RepairPlan, Replan
from planning.placement import check_bound
from workflows.machinery.moves import MigrationRun, Mover, MoveSettings, Reroute
from workflows.machinery.progress import STALL_SIGNAL
from workflows.machinery.reading import make_plan
from workflows.machinery.verdict import Verdict


class BoundedInput(Protocol):
    max_concurrent: int
    max_per_node: int
    down_timeout_s: float
    stall_after_s: float
    high_watermark: float


class MovesWorkflow:
    def __init__(
        self,
        state: MovesProgress,
        title: str,
        watermark: float,
        migrate: MigrationRun,
        allow_less_diverse: bool = False,
    ) -> None:
        # set before any handler runs: an update may arrive before the run method starts
        self._state = state
        # a move planned again keeps the operation's watermark, and its word on diversity
        self._watermark = watermark
        self._allow_less_diverse = allow_less_diverse
        self._mover = Mover(state, title, migrate, replan=self._replan)
        self._verdict = Verdict()

    @workflow.update
    async def validated(self) -> str:
        return await self._verdict.wait()

    @workflow.signal(name=STALL_SIGNAL)
    def transfer_stall(self, report: StallReport) -> None:
        """A move's transfer stalled or moves again."""
        self._mover.stall(report)

    @workflow.query
    def moves_progress(self) -> MovesProgress:
        return self._mover.measured()

    @workflow.update
    def set_max_concurrent(self, bound: int) -> int:
        return self._mover.bound(bound)

    @set_max_concurrent.validator
    def _valid_bound(self, bound: int) -> None:
        try:
            check_bound("the bound", bound)
        except InvalidRequest as e:
            raise ValueError(str(e)) from None

    @workflow.update
    def pause(self) -> MovesProgress:
        return self._mover.pause()

    @workflow.update
    def resume(self) -> MovesProgress:
        return self._mover.resume()

    # -- for the run methods ------------------------------------------------------------------

    async def _plan_or_refuse(
        self,
        req: BoundedInput,
        what: str,
        plan: DrainPlan | RepairPlan | RebalancePlan,
    ) -> list[Move]:
        """Check the bounds and plan: a refusal fails the workflow and answers the
        `validated` update with the reason, before anything changed."""
        try:
            check_bound("max_concurrent", req.max_concurrent)
            check_bound("max_per_node", req.max_per_node)
            return await self._plan(what, plan)
        except InvalidRequest as e:
            raise await self._verdict.refuse(e) from None

    async def _plan(self, what: str, plan: DrainPlan | RepairPlan | RebalancePlan) -> list[Move]:
        """Plan from the cluster as it is now; `InvalidRequest` when the plan cannot be made.
        The regions the plan keeps and those it leaves under-diversified go in the state."""
        made = await make_plan(PlanRequest(plan=plan), what)
        if made.refused:
            raise InvalidRequest(made.refused)
        self._state.kept, self._state.under_diversified = made.kept, made.under_diversified
        return made.moves

    async def _replan(self, move: Move, avoid: set[int]) -> Move | None:
        """`move` to another destination, none of `avoid`, from the cluster as it is now."""
        again = Replan(
            move=move,
            avoid=sorted(avoid),
            watermark=self._watermark,
            allow_less_diverse=self._allow_less_diverse,
        )
        made = await make_plan(PlanRequest(plan=again), f"move region {move.region}")
        return made.moves[0] if made.moves else None

    async def _move_or_continue(self, req: Any, settings: MoveSettings) -> None:
        """Run the moves of the plan; continue as new, carrying the state, if the run's
        history fills before they all ended."""
        if not await self._mover.run(settings):
            await workflow.wait_condition(workflow.all_handlers_finished)
            carried = self._state.model_copy(update={"runs": self._state.runs + 1})
            workflow.continue_as_new(req.model_copy(update={"carried": carried}))

    def _done(self) -> None:
        self._mover.show(Phase.DONE)


def settings_of(req: BoundedInput, reroute: Reroute) -> MoveSettings:
    return MoveSettings(req.max_per_node, req.down_timeout_s, req.stall_after_s, reroute=reroute)
