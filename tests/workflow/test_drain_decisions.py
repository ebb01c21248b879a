"""A drain's decisions, with real workflows (the drain and its migrations) in a
WorkflowEnvironment on the session's dev server, the nodes faked: a move refused because its
destination does not answer waits for it, then goes elsewhere; a drain whose history fills
continues as new with its plan and progress, and plans only once; a drain among many other
regions records its plan, not the cluster they make."""

from __future__ import annotations

import pytest
from temporalio.client import Client

from client.starter import start_operation
from contracts.models import DrainInput, DrainResult, MovesProgress
from tests.support.waiting import eventually
from tests.workflow.fake_nodes import FakeNodes, Replica, versioned_worker
from workflows.drain import DrainNodeWorkflow
from workflows.machinery import moves
from workflows.migration import RegionMigrationWorkflow

DRAINED = 201  # node ids apart from the integration tests': a drain's workflow id is its node's
FIRST_REGION = 7201
DOWN_TIMEOUT_S = 2.0


def cluster(regions: int) -> FakeNodes:
    """Nodes 201-205, `regions` regions on 201, 202 and 203."""
    held = {r: {n: Replica() for n in (201, 202, 203)} for r in range(regions)}
    return FakeNodes(
        nodes=[201, 202, 203, 204, 205],
        replicas={FIRST_REGION + r: replicas for r, replicas in held.items()},
    )


async def test_a_move_to_a_silent_node_waits_for_it_then_goes_elsewhere(client: Client) -> None:
    nodes = cluster(1)
    nodes.went_silent.add(204)  # planned onto (the plan sees it answer), then silent
    region = FIRST_REGION
    async with versioned_worker(
        client, [DrainNodeWorkflow, RegionMigrationWorkflow], nodes.activities()
    ) as running:
        request = DrainInput(node=DRAINED, down_timeout_s=DOWN_TIMEOUT_S)
        started = await start_operation(client, DrainNodeWorkflow.run, request, running.task_queue)
        assert started.plan == f"drain node {DRAINED}: 1 moves", started.plan
        first = await started.handle.query(DrainNodeWorkflow.moves_progress)
        assert [(m.region, m.to_node) for m in first.planned] == [(region, 204)], first

        async def progress() -> MovesProgress:
            return await started.handle.query(DrainNodeWorkflow.moves_progress)

        waiting = await eventually(
            progress, lambda p: region in p.waiting, what="the move to wait for node 204"
        )
        assert waiting.waiting[region].startswith("waiting for node 204: "), waiting.waiting
        result: DrainResult = await started.handle.result()
        done = await progress()

    assert [(m.region, m.to_node) for m in result.moved] == [(region, 205)], result
    assert result.failed == {}, result.failed
    assert done.rerouted == {region: "node 204 did not take it: to node 205 instead"}, done
    assert done.waiting == {}, done.waiting
    assert sorted(nodes.replicas[region]) == [202, 203, 205]
    assert not [call for call in nodes.calls if call[1] == 204]  # nothing was done on it
    describes = [call for call in nodes.calls if call[0] == "describe_cluster"]
    assert len(describes) == 2, nodes.calls  # the plan, then the move planned again


async def test_a_drain_continues_as_new_with_its_plan_and_progress(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(moves, "START_BEFORE", 30)  # a move or two per run, not 150
    nodes = cluster(4)
    async with versioned_worker(
        client, [DrainNodeWorkflow, RegionMigrationWorkflow], nodes.activities()
    ) as running:
        request = DrainInput(node=DRAINED, max_concurrent=1)
        started = await start_operation(client, DrainNodeWorkflow.run, request, running.task_queue)
        planned = (await started.handle.query(DrainNodeWorkflow.moves_progress)).planned
        result = await started.handle.result()
        done = await started.handle.query(DrainNodeWorkflow.moves_progress)

    assert done.runs > 1, done.runs
    assert done.planned == planned and sorted(done.done) == [m.region for m in planned], done
    assert [m.region for m in result.moved] == [m.region for m in planned] and not result.failed
    assert [call for call in nodes.calls if call[0] == "describe_cluster"] == [
        ("describe_cluster", 0)
    ], "a run carried on from the last plans nothing again"
    for move in planned:  # each moved once, to where it was planned
        assert DRAINED not in nodes.replicas[move.region]
        assert move.to_node in nodes.replicas[move.region]


async def test_a_drain_among_many_regions_records_its_plan_not_the_cluster(
    client: Client,
) -> None:
    nodes = cluster(2)
    crowd = {r: {n: Replica() for n in (202, 203, 204)} for r in range(20_000, 23_000)}
    nodes.replicas.update(crowd)
    nodes.peers.update({r: [202, 203, 204] for r in crowd})
    async with versioned_worker(
        client, [DrainNodeWorkflow, RegionMigrationWorkflow], nodes.activities()
    ) as running:
        request = DrainInput(node=DRAINED)
        started = await start_operation(client, DrainNodeWorkflow.run, request, running.task_queue)
        result = await started.handle.result()
        history = await started.handle.fetch_history()

    assert len(result.moved) == 2 and not result.failed, result
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled == ["plan"], scheduled
    # 3,000 regions described would be over 100 KB of it, recorded in one activity result
    assert sum(e.ByteSize() for e in history.events) < 40_000
