"""RebalanceWorkflow: move replicas from the fullest live nodes to the emptiest until every
live node is within tolerance (planning/balance.py), a bounded number of migrations at once.

It runs in rounds: a region moves at most once per round, and each round after the first
plans again from the cluster as it then is. It ends when a round plans nothing, a move fails,
or after MAX_ROUNDS. Bounds, pause, resume, stall reports, cancellation and continue-as-new are
the drain's (workflows/machinery/operation.py).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior

from contracts.errors import InvalidRequest
from contracts.models import MovesProgress, RebalanceInput, RebalanceResult
from contracts.plans import RebalancePlan
from contracts.search_attributes import KIND_KEY, NODES_KEY
from planning.balance import MAX_ROUNDS
from workflows.machinery.moves import Reroute
from workflows.machinery.operation import MovesWorkflow, settings_of
from workflows.migration import RegionMigrationWorkflow


# a long operation moves to the current build at its next task (patches guard changes)
@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class RebalanceWorkflow(MovesWorkflow):
    kind = "rebalance"

    @workflow.init
    def __init__(self, req: RebalanceInput) -> None:
        state = req.carried or MovesProgress(max_concurrent=req.max_concurrent)
        super().__init__(
            state,
            "rebalance",
            req.high_watermark,
            RegionMigrationWorkflow.run,
            req.allow_less_diverse,
        )

    @workflow.run
    async def run(self, req: RebalanceInput) -> RebalanceResult:
        workflow.upsert_search_attributes(
            [KIND_KEY.value_set(self.kind), NODES_KEY.value_set([str(n) for n in req.nodes])]
        )
        plan = RebalancePlan(
            destinations=req.nodes,
            watermark=req.high_watermark,
            allow_less_diverse=req.allow_less_diverse,
        )
        state = self._state
        if req.carried is None:
            state.planned = await self._plan_or_refuse(req, "rebalance", plan)
        self._verdict.accept(_first_round(state))

        stopped = ""
        while state.planned:
            # a move whose node does not come back waits for the others, then tries once more
            await self._move_or_continue(req, settings_of(req, Reroute.SET_ASIDE))
            if state.failed or state.round >= MAX_ROUNDS:
                break
            try:  # the next round, planned from the cluster as the last one left it
                more = await self._plan("rebalance", plan)
            except InvalidRequest as e:
                stopped = f"; stopped before round {state.round + 1}: {e}"
                break
            if not more:
                break
            state.next_round(more)
        moved, failed = state.moved(), state.failed
        self._done()
        if not moved and not failed:
            message = "the cluster is balanced: nothing to move"
        else:
            message = (
                f"rebalance: {len(moved)} replica(s) moved in {state.round} round(s), "
                f"{len(failed)} failed{stopped}"
            )
        if state.under_diversified:
            message += f"; {len(state.under_diversified)} region(s) left under-diversified"
        if state.kept:
            message += f"; {len(state.kept)} kept (a move would lower their diversity)"
        return RebalanceResult(
            moved=moved,
            failed=failed,
            rounds=state.round,
            message=message,
            kept=state.kept,
            under_diversified=state.under_diversified,
        )


def _first_round(state: MovesProgress) -> str:
    if not state.planned:
        return "the cluster is balanced: nothing to move"
    return f"rebalance: {len(state.planned)} moves in round {state.round}"
