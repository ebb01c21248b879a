"""ReconstructRegionWorkflow: rebuild one replica from the others, as IoTDB's RECONSTRUCT REGION.

The replica's node leaves the region (the removal: the others first apply every write it
acknowledged), then joins again empty and takes a snapshot from a live holder (the addition).
Should it not take the replica back within `down_timeout_s`, the replica goes to another live
node instead; should that fail too, the workflow fails saying how many replicas the region has
left. Once the removal has begun it is carried through even if cancelled: the region is never
left a replica short without saying so. It runs under the region's workflow id, so never beside
another change of the region.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ApplicationError

from contracts.errors import RECONSTRUCT_FAILED, root_cause
from contracts.models import Phase, ReconstructInput, ReconstructResult
from planning.placement import Reconstruction, plan_reconstruct
from workflows.machinery.addition import addition_result
from workflows.machinery.change import MembershipChange, finish_even_if_cancelled
from workflows.machinery.removal import remove_peer_steps
from workflows.machinery.rollback import add_or_roll_back
from workflows.machinery.steps import Steps


async def reconstruct(steps: Steps, plan: Reconstruction) -> ReconstructResult:
    """The removal, then the addition back; elsewhere if the node cannot take it back."""
    removal, back = plan.removal, plan.addition
    region, node = removal.region, removal.leaving.node_id
    removed = await remove_peer_steps(steps, removal)
    failures = []
    for new in [back.new, *plan.elsewhere]:
        addition = back if new == back.new else replace(back, new=new)
        try:
            target = await add_or_roll_back(steps, addition)
        except ApplicationError as e:
            failures.append(f"node {new.node_id}: {root_cause(e)}")
            continue
        where = "" if new == back.new else f" (node {node} could not take it back)"
        message = (
            f"region {region}: node {node}'s replica rebuilt on node {new.node_id} from node "
            f"{back.coordinator.node_id}'s{where}"
        )
        return ReconstructResult(
            region=region,
            node=node,
            rebuilt_on=new.node_id,
            remove=removed,
            add=addition_result(addition, target),
            message=message,
        )
    raise ApplicationError(
        f"region {region} has {len(removal.remaining)} replica(s), one fewer than before: node "
        f"{node}'s was removed and could not be rebuilt ({'; '.join(failures)}). "
        f"Add one with airctl add-peer {region} --node N",
        type=RECONSTRUCT_FAILED,
        non_retryable=True,
    )


# a membership change finishes on the build that started it
@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)
class ReconstructRegionWorkflow(MembershipChange):
    kind = "reconstruct"

    @workflow.run
    async def run(self, req: ReconstructInput) -> ReconstructResult:
        steps, plan = await self.begin(
            req.region,
            [req.node],
            req.stall_after_s,
            lambda region: plan_reconstruct(region, req, workflow.random()),
        )
        result, cancelled = await finish_even_if_cancelled(
            asyncio.ensure_future(reconstruct(steps, plan))
        )
        if cancelled:
            result.message += " (cancelled once it had begun: it was carried through)"
        self.reporter.enter(Phase.DONE, result.message)
        return result
