"""An addition whose step a node refuses rolls back: the peers drop their channels to the new
peer and its replica is deleted; the workflow fails saying so, the refused step tried once.
Real workflows in a WorkflowEnvironment on the session's dev server, activities faked."""

from __future__ import annotations

from typing import TypeVar

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from client.starter import start_change
from contracts.errors import ADD_PEER_FAILED, causes, root_cause
from contracts.models import AddPeerInput, MigrationInput, Phase, Progress
from tests.workflow.fake_nodes import FakeNodes, Replica, versioned_worker
from workflows.add_peer import AddPeerWorkflow
from workflows.machinery.change import MembershipChange
from workflows.migration import RegionMigrationWorkflow

REGION = 7101  # apart from the integration tests' regions: workflow ids are the server's
REFUSED = "node 102 refused: the channel exists with snapshot=False"
Change = TypeVar("Change", bound=MembershipChange)
R = TypeVar("R")


def three_replicas() -> FakeNodes:
    held = {n: Replica() for n in (101, 102, 103)}
    return FakeNodes(nodes=[101, 102, 103, 104], replicas={REGION: held})


@pytest.mark.parametrize("workflow", ["add-peer", "migration"])
async def test_a_refused_addition_drops_the_channels_and_deletes_the_new_replica(
    client: Client, workflow: str
) -> None:
    nodes = three_replicas()
    nodes.refusals["notify_peers_to_create_channels"] = REFUSED
    workflows = [AddPeerWorkflow, RegionMigrationWorkflow]
    async with versioned_worker(client, workflows, nodes.activities()) as running:
        if workflow == "add-peer":
            request = AddPeerInput(region=REGION, new_peer=104)
            added = await start_change(client, AddPeerWorkflow.run, request, running.task_queue)
            failure, progress = await how_it_failed(added.handle)
        else:
            move = MigrationInput(region=REGION, from_node=101, to_node=104)
            moved = await start_change(
                client, RegionMigrationWorkflow.run, move, running.task_queue
            )
            failure, progress = await how_it_failed(moved.handle)

    assert any(getattr(e, "type", None) == ADD_PEER_FAILED for e in causes(failure))
    assert root_cause(failure) == REFUSED
    assert progress.phase == Phase.ROLLED_BACK and progress.message == f"rolled back: {REFUSED}"
    on_104 = [name for name, node in nodes.calls if node == 104]
    assert on_104 == [
        "create_local_peer",
        "inactivate_peer",
        "notify_peers_to_create_channels",  # refused: tried once, then the rollback
        "notify_peers_to_drop_channels",
        "inactivate_peer",  # for deletion
        "wait_release",
        "delete_local_peer",
    ], nodes.calls
    assert sorted(nodes.replicas[REGION]) == [101, 102, 103]  # nothing of node 104 is left
    assert nodes.peers[REGION] == [101, 102, 103]
    assert ("notify_peers_to_drop_channels", 101) not in nodes.calls  # no removal began


async def how_it_failed(
    handle: WorkflowHandle[Change, R],
) -> tuple[WorkflowFailureError, Progress]:
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    return failed.value, await handle.query(MembershipChange.progress)
