"""RegionMigrationWorkflow: add the new peer, then remove the old one, as child workflows.

As the source's ConfigNode runs ADD_REGION_PEER, CHECK_ADD_REGION_PEER, REMOVE_REGION_PEER,
CHECK_REMOVE_REGION_PEER: a failed addition stops before any removal.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

from workflows.add_peer import AddPeerWorkflow, choose_coordinator
from workflows.common import (
    STALL_SIGNAL,
    MembershipWorkflow,
    child,
    invalid,
    region_peers,
    require_node,
)
from workflows.remove_peer import RemovePeerWorkflow, finish_even_if_cancelled
from workflows.steps import Steps

with workflow.unsafe.imports_passed_through():
    from activities.models import RegionDescription
    from workflows.models import (
        AddPeerInput,
        MigrationInput,
        MigrationResult,
        Phase,
        RemovePeerInput,
        StallReport,
    )


def validate_migration(description: RegionDescription, req: MigrationInput) -> None:
    """Fail fast, changing nothing, on a migration that cannot be right."""
    if req.from_node == req.to_node:
        raise invalid(f"from and to are the same node ({req.from_node})")
    require_node(description, req.from_node, "from")
    require_node(description, req.to_node, "to")
    peers = {p.node_id for p in region_peers(description)}
    if req.from_node not in peers:
        raise invalid(
            f"node {req.from_node} is not a peer of region {req.region} (peers: {sorted(peers)})"
        )
    if req.to_node in peers:
        raise invalid(f"node {req.to_node} is already a peer of region {req.region}")
    if req.to_node in description.unreachable:
        raise invalid(f"the destination, node {req.to_node}, cannot be reached")


@workflow.defn
class RegionMigrationWorkflow(MembershipWorkflow):
    kind = "migration"

    @workflow.signal(name=STALL_SIGNAL)
    async def transfer_stall(self, report: StallReport) -> None:
        await self.relay_stall(report)

    @workflow.run
    async def run(self, req: MigrationInput) -> MigrationResult:
        self.begin(req.region, [req.from_node, req.to_node])
        description = await Steps(self, req.region).describe()
        validate_migration(description, req)
        # the coordinator is a live peer other than the leaving one, unless it is the only one
        others = len(description.replicas) > 1
        exclude = req.from_node if others and req.coordinator is None else 0
        coordinator = choose_coordinator(description, req.coordinator, workflow.random(), exclude)
        me = workflow.info().workflow_id

        # ADD_REGION_PEER, CHECK_ADD_REGION_PEER: a failure rolls back and stops here
        self.enter(Phase.ADDING, f"adding node {req.to_node} (coordinator {coordinator.node_id})")
        try:
            add = await child(
                AddPeerWorkflow.run,
                AddPeerInput(
                    region=req.region,
                    new_peer=req.to_node,
                    coordinator=coordinator.node_id,
                    down_timeout_s=req.down_timeout_s,
                    stall_after_s=req.stall_after_s,
                ),
                f"{me}/add-peer",
            )
        except ChildWorkflowError:
            # the child rolled back; a cancelled child cancels this workflow, a failed one fails it
            self.enter(Phase.ROLLED_BACK, f"the addition of node {req.to_node} was rolled back")
            raise
        # REMOVE_REGION_PEER, CHECK_REMOVE_REGION_PEER: once started, finished even if cancelled
        self.enter(Phase.REMOVING, f"removing node {req.from_node}")
        removal = child(
            RemovePeerWorkflow.run,
            RemovePeerInput(
                region=req.region,
                peer=req.from_node,
                down_timeout_s=req.down_timeout_s,
                stall_after_s=req.stall_after_s,
            ),
            f"{me}/remove-peer",
        )
        remove, cancelled = await finish_even_if_cancelled(asyncio.ensure_future(removal))
        message = f"region {req.region} moved from node {req.from_node} to node {req.to_node}"
        if cancelled:
            message += " (cancelled after the new peer was active: the removal was finished)"
        self.enter(Phase.DONE, message)
        await workflow.wait_condition(workflow.all_handlers_finished)  # a relayed stall report
        return MigrationResult(
            region=req.region,
            from_node=req.from_node,
            to_node=req.to_node,
            add=add,
            remove=remove,
            cancelled=cancelled,
            message=message,
        )
