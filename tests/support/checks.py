"""Checks of the cluster's final state that the workflow and chaos tests share."""

from __future__ import annotations

from tests.support.cluster import Cluster


async def assert_gone(cluster: Cluster, node_id: int, region: int, others: list[int]) -> None:
    """The replica's folder is gone and no channel to or from it remains."""
    assert not cluster.region_dir(node_id, region).exists()
    assert region not in await cluster.regions_of(node_id)
    for other in others:
        progress = await cluster.progress(other, region)
        assert node_id not in {c.receiver.node_id for c in progress.channels}
        assert node_id not in {p.node_id for p in progress.peers}
