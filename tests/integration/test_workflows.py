"""The membership workflows on a real Temporal dev server, real nodes and a real worker."""

from __future__ import annotations

from tests.support.cluster import Cluster
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from workflows.models import MigrationInput, MigrationResult

REGION = 7


async def assert_gone(cluster: Cluster, node_id: int, region: int, others: list[int]) -> None:
    """The replica's folder is gone and no channel to or from it remains."""
    assert not cluster.region_dir(node_id, region).exists()
    assert region not in await cluster.regions_of(node_id)
    for other in others:
        progress = await cluster.progress(other, region)
        assert node_id not in {c.receiver.node_id for c in progress.channels}
        assert node_id not in {p.node_id for p in progress.peers}


async def test_migration_under_load(stack: Stack) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    await cluster.create_region(REGION, [1, 2, 3])
    stack.start_worker()
    load = LoadWriter(cluster, REGION, [1, 2, 3, 4]).start()
    await load.wait_acked(200)

    handle = await stack.start(MigrationInput(region=REGION, from_node=1, to_node=4))
    result = await handle.result()
    assert isinstance(result, MigrationResult)
    assert result.remove is not None and result.remove.clean, result
    await load.wait_acked(len(load.acked) + 200)
    acked = await load.stop()

    await cluster.converged(REGION, [2, 3, 4], count=len(acked))
    for i in (2, 3, 4):
        assert await missing_points(cluster, i, REGION, acked) == []
    await assert_gone(cluster, 1, REGION, [2, 3, 4])
