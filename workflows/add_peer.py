"""AddPeerWorkflow: a new replica of a region, created empty, filled by snapshot and the peers'
channels, then activated; rolled back on failure or cancellation. Its steps are
machinery/addition.py's, its rollback machinery/rollback.py's."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior

from contracts.models import AddPeerInput, AddPeerResult, Phase
from planning.placement import plan_addition
from workflows.machinery.addition import addition_result
from workflows.machinery.change import MembershipChange
from workflows.machinery.rollback import add_or_roll_back


# a membership change finishes on the build that started it
@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)
class AddPeerWorkflow(MembershipChange):
    kind = "add-peer"

    @workflow.run
    async def run(self, req: AddPeerInput) -> AddPeerResult:
        steps, addition = await self.begin(
            req.region,
            [req.new_peer],
            req.stall_after_s,
            lambda region: plan_addition(region, req, workflow.random()),
        )
        target = await add_or_roll_back(steps, addition)
        self.reporter.enter(
            Phase.DONE, f"node {req.new_peer} is an active replica of region {req.region}"
        )
        return addition_result(addition, target)
