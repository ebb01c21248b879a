"""DrainNodeWorkflow: move every replica off a node, a bounded number of migrations at once.

Each move is a RegionMigrationWorkflow child with the region's own workflow id, so a drain
never runs beside another change of the same region. The bound can change while it runs, and
the drain can pause and resume (Temporal updates). Cancelling it starts no new move and
cancels the running ones: each rolls back, or finishes when its removal had begun. A move whose
transfer stalls says so by a signal, so the drain shows which stall. It continues as new before
its history grows large, carrying its plan and progress (workflows/moves.py).
"""

from __future__ import annotations

from temporalio import workflow

from activities.membership import MembershipActivities as A
from workflows.legacy import earlier_worker_started
from workflows.legacy.drain import DrainByCount
from workflows.models import DrainInput, DrainProgress, DrainResult, Phase, StallReport
from workflows.moves import Mover, MoveSettings
from workflows.options import DESCRIBE, execute
from workflows.planning import InvalidRequest, check_bound, plan_drain
from workflows.progress import STALL_SIGNAL
from workflows.search_attributes import KIND_KEY, NODES_KEY
from workflows.verdict import Verdict


@workflow.defn
class DrainNodeWorkflow:
    kind = "drain"

    @workflow.init
    def __init__(self, req: DrainInput) -> None:
        # set before any handler runs: an update may arrive before the run method starts
        self._state = req.carried or DrainProgress(node=req.node, max_concurrent=req.max_concurrent)
        self._mover = Mover(self._state, f"drain node {req.node}")
        self._legacy: DrainByCount | None = None  # a drain the earlier worker started
        self._verdict = Verdict()

    @workflow.update
    async def validated(self) -> str:
        return await self._verdict.wait()

    @workflow.signal(name=STALL_SIGNAL)
    def transfer_stall(self, report: StallReport) -> None:
        """A move's transfer stalled or moves again."""
        (self._legacy or self._mover).stall(report)

    @workflow.query
    def drain_progress(self) -> DrainProgress:
        return (self._legacy or self._mover).measured()

    @workflow.update
    def set_max_concurrent(self, bound: int) -> int:
        if self._legacy is not None:
            self._state.max_concurrent = bound
            self._legacy.show()
            return bound
        return self._mover.bound(bound)

    @set_max_concurrent.validator
    def _valid_bound(self, bound: int) -> None:
        try:
            check_bound("the bound", bound)
        except InvalidRequest as e:
            raise ValueError(str(e)) from None

    @workflow.update
    def pause(self) -> DrainProgress:
        if self._legacy is not None:
            self._state.paused = True
            self._legacy.show()
            return self._legacy.measured()
        return self._mover.pause()

    @workflow.update
    def resume(self) -> DrainProgress:
        if self._legacy is not None:
            self._state.paused = False
            self._legacy.show()
            return self._legacy.measured()
        return self._mover.resume()

    @workflow.run
    async def run(self, req: DrainInput) -> DrainResult:
        if earlier_worker_started():
            self._legacy = DrainByCount(self._state)
            return await self._legacy.run(req)
        workflow.upsert_search_attributes(
            [KIND_KEY.value_set(self.kind), NODES_KEY.value_set([str(req.node)])]
        )
        if req.carried is None:
            try:
                check_bound("max_concurrent", req.max_concurrent)
                check_bound("max_per_node", req.max_per_node)
                summary = f"describe the cluster to drain node {req.node}"
                cluster = await execute(A.describe_cluster, req.node, summary, DESCRIBE)
                self._state.planned = plan_drain(cluster, req.node)
            except InvalidRequest as e:
                raise await self._verdict.refuse(e) from None
        self._verdict.accept(f"drain node {req.node}: {len(self._state.planned)} moves")

        settings = MoveSettings(req.max_per_node, req.down_timeout_s, req.stall_after_s)
        if not await self._mover.run(settings):
            await workflow.wait_condition(workflow.all_handlers_finished)
            carried = self._state.model_copy(update={"runs": self._state.runs + 1})
            workflow.continue_as_new(req.model_copy(update={"carried": carried}))
        state = self._state
        moved = [m for m in state.planned if m.region in state.done]
        message = f"node {req.node}: {len(moved)} region(s) moved, {len(state.failed)} failed"
        self._mover.show(Phase.DONE)
        return DrainResult(node=req.node, moved=moved, failed=state.failed, message=message)
