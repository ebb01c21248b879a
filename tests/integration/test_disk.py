"""Disks: planners keep moves off a node a region would fill past the high watermark, and say
so; a node past its flood watermark refuses new replicas itself."""

from __future__ import annotations

import grpc
import pytest

from client.starter import RequestRefused
from contracts.models import DrainInput
from protos import air_node_pb2 as pb
from tests.support.cluster import status_of
from tests.support.load import LoadWriter
from tests.support.stack import Stack
from workflows.drain import DrainNodeWorkflow

REGION = 781
SMALL = 2_000_000  # bytes: node 4's disk, as it counts it


async def test_a_drain_that_would_fill_a_disk_is_refused_and_a_full_node_takes_nothing(
    stack: Stack,
) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3):
        cluster.add_node(i)
    cluster.add_node(4, extra_args=["--disk-capacity", str(SMALL)])
    await cluster.create_region(REGION, [1, 2, 3])
    await LoadWriter(cluster, REGION, [1], series="bulk", batch=5000).run(count=40_000)
    size = max(r.store_bytes for r in (await cluster.regions_of(1)).values())
    assert size > 0.9 * SMALL, size  # it would take node 4 past 90%
    listed = await cluster.stub(4).ListRegions(pb.ListRegionsRequest())
    assert listed.disk_capacity == SMALL and listed.disk_used < SMALL

    stack.start_worker()
    with pytest.raises(RequestRefused) as refused:
        await stack.operation(DrainNodeWorkflow.run, DrainInput(node=1))
    assert f"region {REGION} (" in str(refused.value)
    assert "fits on no live node under the 90% high watermark: node 4 would be" in str(
        refused.value
    )
    assert await cluster.regions_of(4) == {}  # nothing changed

    # past its flood watermark (95%), a node refuses a new replica, whoever asks
    await cluster.stub(4).CreateLocalPeer(
        pb.CreateLocalPeerRequest(region=1, peers=cluster.peers([4]), active=True)
    )
    await LoadWriter(cluster, 1, [4], series="fill", batch=5000).run(count=60_000)
    with pytest.raises(grpc.aio.AioRpcError) as full:
        await cluster.stub(4).CreateLocalPeer(
            pb.CreateLocalPeerRequest(region=2, peers=cluster.peers([4]), active=True)
        )
    assert status_of(full.value) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "past its flood watermark (95%): it takes no new replica" in (full.value.details() or "")
    assert sorted(await cluster.regions_of(4)) == [1]
