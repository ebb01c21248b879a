"""A repair's migration off a node that did not answer when it was planned, and answers again
by its removal: the new replica, which no channel from that node reaches, takes its writes
from the others by a catch-up once they hold them all (nemesis seed 109: the addition waited
for them from a channel that was never made, for good). Real workflows in a
WorkflowEnvironment on the session's dev server, activities faked."""

from __future__ import annotations

from temporalio.client import Client

from client.starter import start_change
from contracts.models import MigrationInput
from tests.workflow.fake_nodes import FakeNodes, Replica, versioned_worker
from workflows.migration import RegionMigrationWorkflow

REGION = 7301  # apart from the integration tests' regions: workflow ids are the server's


async def test_a_node_repaired_away_that_answers_again_hands_its_writes_over_by_catch_up(
    client: Client,
) -> None:
    held = {n: Replica() for n in (101, 102, 103)}
    nodes = FakeNodes(nodes=[101, 102, 103, 104], replicas={REGION: held}, came_back={101})
    async with versioned_worker(client, [RegionMigrationWorkflow], nodes.activities()) as running:
        move = MigrationInput(region=REGION, from_node=101, to_node=104, from_node_gone=True)
        moved = await start_change(client, RegionMigrationWorkflow.run, move, running.task_queue)
        result = await moved.handle.result()

    removed = result.remove
    assert removed is not None and removed.clean, removed  # it answered: removed step by step
    # the addition waited for the new replica alone; the removal's hand-off for the peers
    # with a channel from node 101, not for node 104, which no channel from it reaches
    assert nodes.waits[0] == [104]
    assert nodes.waits[-1] == [102, 103]
    on_101 = [name for name, node in nodes.calls if node == 101]
    # before the addition (it was gone), then after the hand-off, for node 104
    assert on_101.count("catch_up_dead_origin") == 2, nodes.calls
    assert on_101[-3:] == ["catch_up_dead_origin", "wait_release", "delete_local_peer"]
    assert sorted(nodes.replicas[REGION]) == [102, 103, 104]
