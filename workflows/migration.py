"""RegionMigrationWorkflow: add the new peer, then remove the old one, as phases of one workflow.

As IoTDB's ConfigNode runs ADD_REGION_PEER, CHECK_ADD_REGION_PEER, REMOVE_REGION_PEER,
CHECK_REMOVE_REGION_PEER: a failed addition stops before any removal. The region is described
once; both phases run the same steps as the standalone AddPeer and RemovePeer
(machinery/addition.py, machinery/removal.py).
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import VersioningBehavior

from contracts.models import MigrationInput, MigrationResult, Phase
from planning.placement import plan_migration
from workflows.machinery.addition import addition_result
from workflows.machinery.change import MembershipChange, finish_even_if_cancelled
from workflows.machinery.removal import remove_peer_steps
from workflows.machinery.rollback import add_or_roll_back
from workflows.machinery.transfer import catch_up


# a membership change finishes on the build that started it
@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)
class RegionMigrationWorkflow(MembershipChange):
    kind = "migration"

    @workflow.run
    async def run(self, req: MigrationInput) -> MigrationResult:
        steps, plan = await self.begin(
            req.region,
            [req.from_node, req.to_node],
            req.stall_after_s,
            lambda region: plan_migration(region, req, workflow.random()),
        )
        addition, removal = plan.addition, plan.removal

        # a dead leaving peer (a repair): every survivor first holds the longest prefix of its
        # writes that any of them holds, so the new replica has them whoever it copies from
        if addition.absent and req.from_node_gone:
            await catch_up(steps, removal.leaving, addition.live_peers(), req.down_timeout_s)
        # ADD_REGION_PEER, CHECK_ADD_REGION_PEER: a failure rolls back and stops here
        target = await add_or_roll_back(steps, addition)
        # REMOVE_REGION_PEER, CHECK_REMOVE_REGION_PEER: once started, finished even if cancelled
        removed, cancelled = await finish_even_if_cancelled(
            asyncio.ensure_future(remove_peer_steps(steps, removal))
        )
        message = f"region {req.region} moved from node {req.from_node} to node {req.to_node}"
        if cancelled:
            message += " (cancelled after the new peer was active: the removal was finished)"
        self.reporter.enter(Phase.DONE, message)
        return MigrationResult(
            region=req.region,
            from_node=req.from_node,
            to_node=req.to_node,
            add=addition_result(addition, target),
            remove=removed,
            cancelled=cancelled,
            message=message,
        )
