"""Bad requests get a clear status and change nothing; membership RPCs are idempotent."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from protos import air_node_pb2 as pb
from protos import air_node_pb2_grpc as rpc
from tests.support.cluster import Cluster, status_of

REGION = 5
Call = Callable[[rpc.AirNodeStub, Cluster], Awaitable[object]]


async def _transfer_from(sender: int, stub: rpc.AirNodeStub) -> None:
    async def requests() -> AsyncIterator[pb.TransferRequest]:
        yield pb.TransferRequest(hello=pb.TransferHello(region=REGION, sender=sender))

    async for _ in stub.Transfer(requests()):
        pass


BAD: dict[str, tuple[Call, grpc.StatusCode, str]] = {
    "write to unknown region": (
        lambda s, c: s.Write(pb.WriteRequest(region=99, points=[pb.Point(series="a")])),
        grpc.StatusCode.NOT_FOUND,
        "region 99 has no replica",
    ),
    "read unknown region": (
        lambda s, c: s.Read(pb.ReadRequest(region=99, series="a")),
        grpc.StatusCode.NOT_FOUND,
        "region 99",
    ),
    "peer list without this node": (
        lambda s, c: s.CreateLocalPeer(
            pb.CreateLocalPeerRequest(region=6, peers=[pb.Peer(node_id=2, address="x:1")])
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "does not contain this node",
    ),
    "empty peer list": (
        lambda s, c: s.CreateLocalPeer(pb.CreateLocalPeerRequest(region=6)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "peer list is empty",
    ),
    "this node at a wrong address": (
        lambda s, c: s.CreateLocalPeer(
            pb.CreateLocalPeerRequest(region=6, peers=[pb.Peer(node_id=1, address="h:1")])
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "this node serves",
    ),
    "existing region, other peers": (
        lambda s, c: s.CreateLocalPeer(
            pb.CreateLocalPeerRequest(region=REGION, peers=c.peers([1, 2]), active=True)
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "already exists",
    ),
    "point without series": (
        lambda s, c: s.Write(pb.WriteRequest(region=REGION, points=[pb.Point(timestamp=1)])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed point",
    ),
    "point with a NaN value": (
        lambda s, c: s.Write(
            pb.WriteRequest(region=REGION, points=[pb.Point(series="a", value=math.nan)])
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed point",
    ),
    "empty write": (
        lambda s, c: s.Write(pb.WriteRequest(region=REGION)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "at least one point",
    ),
    "transfer from a non-peer": (
        lambda s, c: _transfer_from(42, s),
        grpc.StatusCode.PERMISSION_DENIED,
        "node 42 is not a peer",
    ),
    "channel to itself": (
        lambda s, c: s.CreateChannel(pb.CreateChannelRequest(region=REGION, receiver=c.peer(1))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "cannot create a channel",
    ),
    "activate a replica awaiting its snapshot": (
        lambda s, c: s.SetActive(pb.SetActiveRequest(region=8, active=True)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "awaits its snapshot",
    ),
}


async def _state(cluster: Cluster) -> tuple[object, ...]:
    regions = await cluster.regions_of(1)
    files = sorted(str(p.relative_to(cluster.root)) for p in cluster.root.rglob("region_*"))
    digest = await cluster.digest(1, REGION)
    return (sorted(r.SerializeToString() for r in regions.values()), files, digest.hash)


@pytest.mark.parametrize("case", sorted(BAD))
async def test_bad_request_is_refused_clearly_and_changes_nothing(
    cluster: Cluster, case: str
) -> None:
    call, code, message = BAD[case]
    cluster.add_node(1)
    cluster.add_node(2, start=False)  # listed as a peer, never run
    await cluster.create_region(REGION, [1])
    await cluster.stub(1).CreateLocalPeer(
        pb.CreateLocalPeerRequest(region=8, peers=cluster.peers([1]), await_snapshot=True)
    )
    await cluster.stub(1).Write(pb.WriteRequest(region=REGION, points=[pb.Point(series="a")]))
    before = await _state(cluster)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(cluster.stub(1), cluster)
    assert status_of(refused.value) == code
    assert message in (refused.value.details() or "")

    assert await _state(cluster) == before
    assert cluster.nodes[1].alive()


async def test_membership_rpcs_are_idempotent(cluster: Cluster) -> None:
    cluster.add_node(1)
    cluster.add_node(2)
    stub = cluster.stub(1)
    calls: list[Callable[[], Awaitable[pb.MembershipReply]]] = [
        lambda: stub.CreateLocalPeer(
            pb.CreateLocalPeerRequest(region=REGION, peers=cluster.peers([1]), active=True)
        ),
        lambda: stub.CreateChannel(
            pb.CreateChannelRequest(region=REGION, receiver=cluster.peer(2))
        ),
        lambda: stub.SetActive(pb.SetActiveRequest(region=REGION, active=False)),
        lambda: stub.SetActive(pb.SetActiveRequest(region=REGION, active=True)),
        lambda: stub.ResetPeerList(
            pb.ResetPeerListRequest(region=REGION, peers=cluster.peers([1]))
        ),
        lambda: stub.CreateChannel(
            pb.CreateChannelRequest(region=REGION, receiver=cluster.peer(2))
        ),
        lambda: stub.DropChannel(pb.DropChannelRequest(region=REGION, receiver_id=2)),
        lambda: stub.SetActive(pb.SetActiveRequest(region=REGION, for_deletion=True)),
        lambda: stub.DeleteLocalPeer(pb.RegionRequest(region=REGION)),
    ]
    for call in calls:
        first, second = await call(), await call()
        assert first.changed, first.message
        assert not second.changed, second.message
        assert "already" in second.message or "no " in second.message, second.message
