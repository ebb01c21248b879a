"""The load writer, bound to a test cluster."""

from __future__ import annotations

from client.load import LoadWriter as _LoadWriter
from client.load import Row
from client.load import missing_points as _missing_points
from protos import air_node_pb2 as pb
from tests.support.cluster import Cluster


def LoadWriter(
    cluster: Cluster,
    region: int,
    targets: list[int],
    series: str = "load",
    batch: int = 20,
    acks: pb.Acks = pb.ACKS_ONE,
) -> _LoadWriter:
    return _LoadWriter(cluster.stub, region, targets, series=series, batch=batch, acks=acks)


async def missing_points(
    cluster: Cluster, node_id: int, region: int, acked: list[Row]
) -> list[Row]:
    return await _missing_points(cluster.stub(node_id), region, acked)
