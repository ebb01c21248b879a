"""RemovePeerWorkflow: a replica taken out of its region once the others hold every write it
acknowledged, or written off when it stays down; finished even if cancelled once begun. Its
steps are machinery/removal.py's."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import VersioningBehavior

from contracts.models import Phase, RemovePeerInput, RemovePeerResult
from planning.placement import plan_removal
from workflows.machinery.change import MembershipChange, finish_even_if_cancelled
from workflows.machinery.removal import remove_peer_steps


# a membership change finishes on the build that started it
@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)
class RemovePeerWorkflow(MembershipChange):
    kind = "remove-peer"

    @workflow.run
    async def run(self, req: RemovePeerInput) -> RemovePeerResult:
        steps, removal = await self.begin(
            req.region,
            [req.peer],
            req.stall_after_s,
            lambda region: plan_removal(region, req),
        )
        # Once started, a removal is finished even if cancelled: half a removal helps no one.
        result, cancelled = await finish_even_if_cancelled(
            asyncio.ensure_future(remove_peer_steps(steps, removal))
        )
        if cancelled:
            result.message += " (cancelled after the removal had started: it was finished)"
        self.reporter.enter(Phase.DONE, result.message)
        return result
