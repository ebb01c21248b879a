"""RepairNodeWorkflow: restore the replication factor of every region of a node that is gone.

For each region the dead node was a peer of, a new replica on the live node with the fewest
store bytes, copied from a live holder, then the dead peer removed (its steps skipped after a
short wait: it does not answer). Each move is the region's migration from the dead node, on the
drain's engine (`machinery/operation.py`). The result says, per region, how far the survivors
hold the dead node's own writes: those it acknowledged and never replicated are lost with it,
unless it comes back, when it hands them to the members before deleting its stale replicas
(node/retirement.py). A node that answers is refused: that is a drain.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior

from contracts.models import RegionRepair, RepairInput, RepairProgress, RepairResult
from contracts.plans import RepairPlan
from contracts.search_attributes import KIND_KEY, NODES_KEY
from workflows.machinery.moves import MoveSettings, Reroute
from workflows.machinery.operation import MovesWorkflow
from workflows.migration import RegionMigrationWorkflow


# a long operation moves to the current build at its next task (patches guard changes)
@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class RepairNodeWorkflow(MovesWorkflow):
    kind = "repair"

    @workflow.init
    def __init__(self, req: RepairInput) -> None:
        state = req.carried or RepairProgress(node=req.node, max_concurrent=req.max_concurrent)
        super().__init__(
            state,
            f"repair node {req.node}",
            req.high_watermark,
            RegionMigrationWorkflow.run,
            allow_less_diverse=True,  # the replica count first, wherever only it fits
        )
        self._repair = state

    @workflow.run
    async def run(self, req: RepairInput) -> RepairResult:
        workflow.upsert_search_attributes(
            [KIND_KEY.value_set(self.kind), NODES_KEY.value_set([str(req.node)])]
        )
        state, what = self._repair, f"repair node {req.node}"
        if req.carried is None:
            plan = RepairPlan(node=req.node, watermark=req.high_watermark)
            state.planned = await self._plan_or_refuse(req, what, plan)
            state.unrepairable, state.kept = state.kept, {}  # "kept": none fits it
        self._verdict.accept(f"{what}: {len(state.planned)} region(s) get a new replica")

        settings = MoveSettings(
            req.max_per_node,
            req.down_timeout_s,
            req.stall_after_s,
            leaving_down_timeout_s=req.dead_wait_s,
            keep_outcomes=True,
            from_node_gone=True,
            reroute=Reroute.REPLAN,  # a new replica's node that does not come back: another
        )
        await self._move_or_continue(req, settings)
        repaired = [
            RegionRepair(
                region=m.region, to_node=m.to_node, account=state.outcomes.get(m.region, "")
            )
            for m in state.moved()
        ]
        failed = {**state.unrepairable, **state.failed}
        less = state.under_diversified
        message = (
            f"node {req.node}: {len(repaired)} region(s) back to full replication, "
            f"{len(failed)} not repaired"
        )
        if less:
            message += f", {len(less)} under-diversified (only a less diverse place fitted)"
        self._done()
        return RepairResult(
            node=req.node,
            repaired=repaired,
            failed=failed,
            message=message,
            under_diversified=less,
        )
