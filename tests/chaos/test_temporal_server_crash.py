"""The Temporal server itself killed mid-migration (in a container), then started again."""

from __future__ import annotations

import pytest

from client import connection
from contracts.models import MigrationInput, MigrationResult, Phase
from tests.support.checks import assert_gone
from tests.support.cluster import HELD, Cluster
from tests.support.load import LoadWriter, missing_points
from tests.support.moves import awaits_snapshot
from tests.support.stack import Stack
from tests.support.temporal_container import (
    TemporalContainer,
)
from tests.support.waiting import eventually
from workflows.migration import RegionMigrationWorkflow

pytestmark = pytest.mark.slow
REGION = 31
PRELOAD = 5_000  # points: held, the snapshot needs no volume to last
HOLDERS = [1, 2, 3]  # the region's replicas: a snapshot or channel to node 4 starts here


async def test_server_killed_mid_migration_and_restarted(
    cluster: Cluster, server: TemporalContainer
) -> None:
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    await cluster.create_region(REGION, [1, 2, 3])
    bulk = LoadWriter(cluster, REGION, [1], series="bulk", batch=5000)
    await bulk.run(count=PRELOAD)
    await cluster.converged(REGION, [1, 2, 3], count=PRELOAD, timeout=120)
    client = await connection.connect(connection.local(server.address))
    stack = Stack(cluster, client, server.address)
    stack.start_worker()
    load = LoadWriter(cluster, REGION, [1, 2, 3, 4]).start(rate=1000)
    await load.wait_acked(200)
    load.acked[:0] = bulk.acked

    # the holders' transfers held (1 byte/s): the snapshot to node 4 waits for the kill
    await cluster.throttle(HOLDERS, HELD)
    handle = await stack.start(
        RegionMigrationWorkflow.run, MigrationInput(region=REGION, from_node=1, to_node=4)
    )
    await eventually(
        lambda: stack.progress(handle), lambda p: p.phase == Phase.TRANSFERRING, timeout=60
    )
    assert await awaits_snapshot(cluster, 4, REGION), "not mid-transfer: installed"
    server.kill()
    await load.wait_acked(len(load.acked) + 200)  # the nodes go on without Temporal
    server.start()
    await cluster.throttle(HOLDERS, 0)

    client = await connection.connect(connection.local(server.address))
    result = await client.get_workflow_handle(handle.id, result_type=MigrationResult).result()
    assert result.remove is not None and result.remove.clean, result
    acked = await load.stop()
    await cluster.converged(REGION, [2, 3, 4], count=len(acked), timeout=120)
    for i in (2, 3, 4):
        assert await missing_points(cluster, i, REGION, acked) == []
    await assert_gone(cluster, 1, REGION, [2, 3, 4])
    await stack.close()
