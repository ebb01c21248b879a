"""A drain survives what single migrations survive: a node and the Temporal server killed
mid-drain and started again. Every region ends off the drained node, whole, with every
acknowledged write."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from airctl.load import LoadWriter as Writer
from tests.support.chaos import restart
from tests.support.cluster import Cluster
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from tests.support.temporal_container import TemporalContainer
from tests.support.waiting import eventually
from workflows import connection
from workflows.drain import DrainNodeWorkflow
from workflows.ids import region_workflow_id
from workflows.migration import RegionMigrationWorkflow
from workflows.models import DrainInput, DrainResult, Phase

pytestmark = pytest.mark.slow
REGIONS = [571, 572, 573, 574]
PRELOAD = 20_000  # a few MB each: at 0.5 MB/s a move's snapshot takes seconds


async def regions_under_load(cluster: Cluster) -> Writer:
    """Nodes 1-4 (throttled), the regions on 1-3 preloaded, and a writer on the first."""
    for i in (1, 2, 3, 4):
        cluster.add_node(i, extra_args=["--transfer-rate-limit", "0.5"])
    for region in REGIONS:
        await cluster.create_region(region, [1, 2, 3])
        await LoadWriter(cluster, region, [1], series="bulk", batch=5000).run(count=PRELOAD)
    load = LoadWriter(cluster, REGIONS[0], [1, 2, 3, 4]).start(rate=500)
    await load.wait_acked(100)
    return load


async def mid_transfer(client: Client, drain: WorkflowHandle[Any, Any]) -> None:
    """Until a move of the drain is transferring its snapshot."""

    async def phases() -> list[Phase]:
        state = await drain.query(DrainNodeWorkflow.drain_progress)
        found = []
        for region in state.running:
            move = client.get_workflow_handle(region_workflow_id(region))
            try:
                found.append((await move.query(RegionMigrationWorkflow.progress)).phase)
            except RPCError:  # not started yet
                continue
        return found

    await eventually(phases, lambda p: Phase.TRANSFERRING in p, timeout=60, what="a transfer")


async def all_moved(cluster: Cluster, result: DrainResult, load: Writer) -> None:
    assert not result.failed and sorted(m.region for m in result.moved) == REGIONS, result
    assert await cluster.regions_of(1) == {}
    acked = await load.stop()
    await cluster.converged(REGIONS[0], [2, 3, 4], count=PRELOAD + len(acked), timeout=120)
    for i in (2, 3, 4):
        assert await missing_points(cluster, i, REGIONS[0], acked) == [], i
    for region in REGIONS[1:]:
        await cluster.converged(region, [2, 3, 4], count=PRELOAD, timeout=120)


async def test_destination_killed_mid_drain_and_restarted(stack: Stack) -> None:
    load = await regions_under_load(stack.cluster)
    stack.start_worker()
    drain = await stack.operation(DrainInput(node=1, max_concurrent=2))
    await mid_transfer(stack.client, drain)
    stack.cluster.nodes[4].kill()
    await restart(stack.cluster.nodes[4])
    result = await stack.client.get_workflow_handle(drain.id, result_type=DrainResult).result()
    await all_moved(stack.cluster, result, load)


async def test_temporal_killed_mid_drain_and_restarted(
    cluster: Cluster, server: TemporalContainer
) -> None:
    load = await regions_under_load(cluster)
    client = await connection.connect(connection.local(server.address))
    stack = Stack(cluster, client, server.address)
    stack.start_worker()
    try:
        drain = await stack.operation(DrainInput(node=1, max_concurrent=2))
        await mid_transfer(client, drain)
        server.kill()
        await load.wait_acked(len(load.acked) + 100)  # the nodes go on without Temporal
        server.start()
        client = await connection.connect(connection.local(server.address))
        result = await client.get_workflow_handle(drain.id, result_type=DrainResult).result()
        await all_moved(cluster, result, load)
    finally:
        await stack.close()
