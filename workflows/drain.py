"""DrainNodeWorkflow: move every replica off a node, a bounded number of migrations at once.

Each move is a RegionMigrationWorkflow child with the region's own workflow id, so a drain
never runs beside another change of the same region. The bound can change while it runs, and
the drain can pause and resume (Temporal updates). Cancelling it starts no new move and
cancels the running ones: each rolls back, or finishes when its removal had begun. A move whose
transfer stalls says so by a signal, so the drain shows which stall. It continues as new before
its history grows large, carrying its plan and progress (workflows/machinery/moves.py).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior

from contracts.models import DrainInput, DrainProgress, DrainResult, MovesProgress
from contracts.plans import DrainPlan
from contracts.search_attributes import KIND_KEY, NODES_KEY
from workflows.machinery.moves import Reroute
from workflows.machinery.operation import MovesWorkflow, settings_of
from workflows.machinery.patches import lean_recorded
from workflows.migration import RegionMigrationWorkflow


# a long operation moves to the current build at its next task (patches guard changes)
@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class DrainNodeWorkflow(MovesWorkflow):
    kind = "drain"

    @workflow.init
    def __init__(self, req: DrainInput) -> None:
        state = req.carried or DrainProgress(node=req.node, max_concurrent=req.max_concurrent)
        super().__init__(
            state,
            f"drain node {req.node}",
            req.high_watermark,
            RegionMigrationWorkflow.run,
            req.allow_less_diverse,
        )

    @workflow.run
    async def run(self, req: DrainInput) -> DrainResult:
        lean_recorded()
        workflow.upsert_search_attributes(
            [KIND_KEY.value_set(self.kind), NODES_KEY.value_set([str(req.node)])]
        )
        what = f"drain node {req.node}"
        if req.carried is None:
            plan = DrainPlan(
                node=req.node,
                watermark=req.high_watermark,
                allow_less_diverse=req.allow_less_diverse,
                nearest_source=req.nearest_source,
            )
            self._state.planned = await self._plan_or_refuse(req, what, plan)
        self._verdict.accept(f"{what}: {len(self._state.planned)} moves" + _kept(self._state))

        # a move whose destination does not come back goes to another node
        await self._move_or_continue(req, settings_of(req, Reroute.REPLAN))
        state = self._state
        moved, failed = state.moved(), state.failed
        message = f"node {req.node}: {len(moved)} region(s) moved, {len(failed)} failed" + _kept(
            state
        )
        self._done()
        return DrainResult(
            node=req.node,
            moved=moved,
            failed=failed,
            message=message,
            kept=state.kept,
            under_diversified=state.under_diversified,
        )


def _kept(state: MovesProgress) -> str:
    if not state.kept:
        return ""
    return (
        f", {len(state.kept)} kept where they are (a move would lower their diversity: "
        "--allow-less-diverse moves them)"
    )
