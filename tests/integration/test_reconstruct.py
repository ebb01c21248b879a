"""Reconstructing a replica: removed, then rebuilt by snapshot; elsewhere if it cannot return."""

from __future__ import annotations

import asyncio

import pytest

from client.starter import RequestRefused
from contracts.killpoints import ENV_POINTS, KillPoint
from contracts.models import ReconstructInput, ReconstructResult
from tests.support.chaos import died_at, rearm, restart
from tests.support.load import LoadWriter, missing_points
from tests.support.node_logs import replica_events
from tests.support.stack import Stack
from workflows.reconstruct import ReconstructRegionWorkflow


async def test_a_replica_is_rebuilt_from_the_others_under_load(stack: Stack) -> None:
    cluster, region = stack.cluster, 751
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    await cluster.create_region(region, [1, 2, 3])
    await cluster.create_region(752, [1])
    stack.start_worker()
    for request, refusal in [
        (ReconstructInput(region=region, node=4), "node 4 is not a peer of region 751"),
        (ReconstructInput(region=752, node=1), "node 1 holds the last replica of region 752"),
    ]:
        with pytest.raises(RequestRefused, match=refusal):
            await stack.start(ReconstructRegionWorkflow.run, request)
    load = LoadWriter(cluster, region, [1, 2, 3]).start()
    await load.wait_acked(200)

    handle = await stack.start(
        ReconstructRegionWorkflow.run, ReconstructInput(region=region, node=2)
    )
    result: ReconstructResult = await handle.result()
    assert result.rebuilt_on == 2 and result.remove.clean, result
    acked = await load.stop()
    on_2 = [e.what for e in replica_events(cluster) if e.node == 2 and e.region == region]
    assert on_2 == ["created active", "deleted", "created inactive", "activated"], on_2
    for i in (1, 2, 3):
        info = (await cluster.regions_of(i))[region]
        assert sorted(p.node_id for p in info.peers) == [1, 2, 3] and info.active, (i, info)
    await cluster.converged(region, [1, 2, 3], count=len(acked))
    for i in (1, 2, 3):
        assert await missing_points(cluster, i, region, acked) == [], i


async def test_a_replica_that_cannot_come_back_is_rebuilt_elsewhere(stack: Stack) -> None:
    cluster, region = stack.cluster, 753
    point = KillPoint.DESTINATION_CREATE_LOCAL_PEER  # node 2 dies as it takes the replica back
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    await cluster.create_region(region, [1, 2, 3])
    await rearm(cluster.nodes[2], {ENV_POINTS: point.value})  # past its first creation
    stack.start_worker()
    load = LoadWriter(cluster, region, [1, 3]).start()
    await load.wait_acked(100)

    handle = await stack.start(
        ReconstructRegionWorkflow.run, ReconstructInput(region=region, node=2, down_timeout_s=3)
    )
    outcome = asyncio.ensure_future(handle.result())
    await died_at(cluster.nodes[2], point, outcome)
    result: ReconstructResult = await outcome
    assert result.rebuilt_on == 4 and "node 2 could not take it back" in result.message, result
    acked = await load.stop()
    await cluster.converged(region, [1, 3, 4], count=len(acked))
    for i in (1, 3, 4):
        assert await missing_points(cluster, i, region, acked) == [], i
    await restart(cluster.nodes[2])  # back, it finds itself removed and drops its stale replica
    await cluster.gone(2, region, what="node 2's leftover gone")
