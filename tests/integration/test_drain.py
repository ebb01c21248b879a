"""Draining a node: every region moves off it, a bounded number at once, pausable."""

from __future__ import annotations

from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.models import DrainInput, DrainProgress, DrainResult

ON_123 = [501, 502, 503]
ON_124 = [504, 505, 506]


async def test_drain_moves_every_region_off_the_node(stack: Stack) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    for region in ON_123:
        await cluster.create_region(region, [1, 2, 3])
    for region in ON_124:
        await cluster.create_region(region, [1, 2, 4])
    stack.start_worker()
    load = LoadWriter(cluster, ON_123[0], [1, 2, 3, 4]).start()
    await load.wait_acked(200)

    handle = await stack.drain(DrainInput(node=1, max_concurrent=1))
    paused = await handle.execute_update("pause", result_type=DrainProgress)
    assert paused.paused
    state = await eventually(
        lambda: handle.query("drain_progress", result_type=DrainProgress),
        lambda s: bool(s.planned),
        what="the drain's plan",
    )
    assert len(state.running) <= 1  # the bound: one at a time
    assert {(m.region, m.to_node) for m in state.planned} == {
        *((r, 4) for r in ON_123),
        *((r, 3) for r in ON_124),
    }
    await handle.execute_update("set_max_concurrent", 2)
    await handle.execute_update("resume", result_type=DrainProgress)
    result = await stack.client.get_workflow_handle(handle.id, result_type=DrainResult).result()
    assert not result.failed and len(result.moved) == 6, result

    assert await cluster.regions_of(1) == {}
    acked = await load.stop()
    await cluster.converged(ON_123[0], [2, 3, 4], count=len(acked))
    for i in (2, 3, 4):
        assert await missing_points(cluster, i, ON_123[0], acked) == []
    for region in ON_124:
        await eventually(
            lambda r=region: cluster.regions_of(3),  # type: ignore[misc]
            lambda regions, r=region: r in regions,  # type: ignore[misc]
        )
