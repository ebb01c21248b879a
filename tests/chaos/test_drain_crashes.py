"""A drain survives what single migrations survive: a node and the Temporal server killed
mid-drain and started again. Every region ends off the drained node, whole, with every
acknowledged write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from client import connection
from client.load import LoadWriter as Writer
from contracts.ids import region_workflow_id
from contracts.models import DrainInput, DrainResult, MovesProgress, Phase
from tests.support.chaos import restart
from tests.support.cluster import HELD, Cluster
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from tests.support.temporal_container import TemporalContainer
from tests.support.waiting import eventually
from workflows.drain import DrainNodeWorkflow
from workflows.migration import RegionMigrationWorkflow

pytestmark = pytest.mark.slow
REGIONS = [571, 572, 573, 574]
PRELOAD = 20_000  # points in each region
SENDERS = [1, 2, 3]  # the regions' holders: every snapshot and channel of a move starts here


async def regions_under_load(
    cluster: Cluster, nodes: int = 4, regions: list[int] = REGIONS
) -> Writer:
    """Nodes 1-4 (or more), the regions on 1-3 preloaded, and a writer on the first."""
    for i in range(1, nodes + 1):
        cluster.add_node(i)
    for region in regions:
        await cluster.create_region(region, [1, 2, 3])
        await LoadWriter(cluster, region, [1], series="bulk", batch=5000).run(count=PRELOAD)
    load = LoadWriter(cluster, REGIONS[0], [1, 2, 3, 4]).start(rate=500)
    await load.wait_acked(100)
    return load


async def held_mid_transfer(
    cluster: Cluster, client: Client, drain: WorkflowHandle[Any, Any], to_node: int | None = None
) -> None:
    """Until a move of the drain (to `to_node`, if given) is transferring its snapshot, where
    it stays: the senders' transfers are held (lift them with `cluster.throttle(SENDERS, 0)`).
    A kill then lands mid-transfer every time, however fast or busy the machine."""
    await cluster.throttle(SENDERS, HELD)

    async def phases() -> list[Phase]:
        state = await drain.query(DrainNodeWorkflow.moves_progress)
        found = []
        moving_to = {m.region: m.to_node for m in state.planned}
        for region in state.running:
            if to_node is not None and moving_to[region] != to_node:
                continue
            move = client.get_workflow_handle(region_workflow_id(region))
            try:
                found.append((await move.query(RegionMigrationWorkflow.progress)).phase)
            except RPCError:  # not started yet
                continue
        return found

    await eventually(phases, lambda p: Phase.TRANSFERRING in p, timeout=60, what="a transfer")
    new = (await cluster.regions_of(to_node or 4)).values()
    assert any(not r.installed for r in new), "no new replica awaits its snapshot: not mid-transfer"


async def all_moved(
    cluster: Cluster,
    result: DrainResult,
    load: Writer,
    destination: int = 4,
    regions: list[int] = REGIONS,
) -> None:
    assert not result.failed and sorted(m.region for m in result.moved) == regions, result
    assert await cluster.regions_of(1) == {}
    acked = await load.stop()
    final = [2, 3, destination]
    await cluster.converged(REGIONS[0], final, count=PRELOAD + len(acked), timeout=120)
    for i in final:
        assert await missing_points(cluster, i, REGIONS[0], acked) == [], i
    for region in regions[1:]:
        await cluster.converged(region, final, count=PRELOAD, timeout=120)


async def test_destination_killed_mid_drain_and_restarted(stack: Stack) -> None:
    load = await regions_under_load(stack.cluster)
    stack.start_worker()
    drain = await stack.operation(DrainNodeWorkflow.run, DrainInput(node=1, max_concurrent=2))
    await held_mid_transfer(stack.cluster, stack.client, drain)
    stack.cluster.nodes[4].kill()
    await restart(stack.cluster.nodes[4])
    await stack.cluster.throttle(SENDERS, 0)
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
        drain = await stack.operation(DrainNodeWorkflow.run, DrainInput(node=1, max_concurrent=2))
        await held_mid_transfer(cluster, client, drain)
        server.kill()
        await load.wait_acked(len(load.acked) + 100)  # the nodes go on without Temporal
        await cluster.throttle(SENDERS, 0)
        server.start()
        client = await connection.connect(connection.local(server.address))
        result = await client.get_workflow_handle(drain.id, result_type=DrainResult).result()
        await all_moved(cluster, result, load)
    finally:
        await stack.close()


async def test_every_node_restarted_one_after_another_mid_drain(stack: Stack) -> None:
    """A rolling restart of the whole cluster, the drained node and the snapshot sources
    included, under write load: each node is killed while the drain is paused, so the next
    move starts while it is away. A move refused for a node that does not answer waits for it
    (the destination's and the drained node's moves show so), and the drain ends with every
    region moved and every acknowledged write on every final replica."""
    regions = [*REGIONS, 575]  # the first move may start before the drain is paused
    load = await regions_under_load(stack.cluster, regions=regions)
    stack.start_worker()
    drain = await stack.operation(DrainNodeWorkflow.run, DrainInput(node=1, max_concurrent=1))

    async def drain_state(check: Callable[[MovesProgress], bool], what: str) -> MovesProgress:
        return await eventually(
            lambda: drain.query(DrainNodeWorkflow.moves_progress), check, timeout=60, what=what
        )

    await drain.execute_update(DrainNodeWorkflow.pause)
    for i in (4, 2, 3, 1):  # one move starts while each is away
        await drain_state(lambda s: not s.running, "the running move to end")
        node = stack.cluster.nodes[i]
        node.kill()
        await drain.execute_update(DrainNodeWorkflow.resume)
        if i in (4, 1):  # the destination, the drained node: no move can go on without them
            state = await drain_state(lambda s: bool(s.waiting), f"a move waiting for node {i}")
            assert f"waiting for node {i}" in " ".join(state.waiting.values()), state
        else:
            await drain_state(lambda s: bool(s.running), f"a move started without node {i}")
        await drain.execute_update(DrainNodeWorkflow.pause)  # no other move starts meanwhile
        await restart(node)
        await load.wait_acked(len(load.acked) + 50)  # the cluster serves again
    await drain.execute_update(DrainNodeWorkflow.resume)
    result = await stack.client.get_workflow_handle(drain.id, result_type=DrainResult).result()
    await all_moved(stack.cluster, result, load, regions=regions)


async def test_a_destination_killed_for_good_mid_drain_gets_no_region(stack: Stack) -> None:
    """Node 4 dies for good while it receives a drain's move: that move rolls back and goes
    to node 5, as do the moves planned to node 4 that had not started."""
    load = await regions_under_load(stack.cluster, nodes=5)
    stack.start_worker()
    drain = await stack.operation(
        DrainNodeWorkflow.run, DrainInput(node=1, max_concurrent=2, down_timeout_s=5)
    )
    planned = (  # the drain plans in its first activity, after the start returned
        await eventually(
            lambda: drain.query(DrainNodeWorkflow.moves_progress),
            lambda s: bool(s.planned),
            what="the drain's plan",
        )
    ).planned
    assert {m.to_node for m in planned} == {4, 5}, planned
    await held_mid_transfer(stack.cluster, stack.client, drain, to_node=4)
    stack.cluster.nodes[4].kill()  # for good
    await stack.cluster.throttle(SENDERS, 0)

    result = await stack.client.get_workflow_handle(drain.id, result_type=DrainResult).result()
    assert {m.to_node for m in result.moved} == {5}, result
    state = await drain.query(DrainNodeWorkflow.moves_progress)
    assert state.rerouted, state
    await all_moved(stack.cluster, result, load, destination=5)
