"""Bad requests get a clear status and change nothing; membership RPCs are idempotent."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import cast

import grpc
import pytest

from node.service import MAX_WRITE_BYTES
from protos import air_node_pb2 as pb
from runtime.clients import NodeStub
from tests.support.cluster import Cluster, status_of
from tests.support.streams import batch, hello, transfer

REGION = 5  # on node 1, its peers nodes 1 and 2 (node 2 never runs)
Call = Callable[[NodeStub, Cluster], Awaitable[object]]
LATER = cast(pb.ChunkDigest, 7)  # a snapshot chunk digest of a build after this one


def _hello(sender: int, region: int = REGION) -> pb.TransferRequest:
    return hello(sender, region)


def _oversized_write() -> pb.WriteRequest:
    series = "s" * 1000
    count = MAX_WRITE_BYTES // len(series) + 1
    return pb.WriteRequest(
        region=REGION, points=[pb.Point(series=series, timestamp=t) for t in range(count)]
    )


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
            pb.CreateLocalPeerRequest(region=REGION, peers=c.peers([1]), active=True)
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
    "write at an unknown acknowledgement level": (
        lambda s, c: s.Write(
            pb.WriteRequest(region=REGION, points=[pb.Point(series="a")], acks=7)  # type: ignore[arg-type]
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "acks 7 is not a level",
    ),
    "write with columns that do not pair up": (
        lambda s, c: s.Write(
            pb.WriteRequest(
                region=REGION, columns=pb.Columns(series=["a"], series_index=[0], timestamps=[1])
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed columns: columns of 1 series indexes, 1 timestamps and 0 values",
    ),
    "write with a column naming no series": (
        lambda s, c: s.Write(
            pb.WriteRequest(
                region=REGION,
                columns=pb.Columns(series=["a"], series_index=[1], timestamps=[1], values=[1.0]),
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "a series index past the 1 series named",
    ),
    "empty write": (
        lambda s, c: s.Write(pb.WriteRequest(region=REGION)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "at least one point",
    ),
    "oversized write": (
        lambda s, c: s.Write(_oversized_write()),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"over the {MAX_WRITE_BYTES} byte limit",
    ),
    "transfer from a non-peer": (
        lambda s, c: transfer(s, _hello(42)),
        grpc.StatusCode.PERMISSION_DENIED,
        "node 42 is not a peer",
    ),
    "transfer from the node itself": (
        lambda s, c: transfer(s, _hello(1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "node 1 cannot be sent its own writes of region 5",
    ),
    "its own writes forwarded to the node": (
        lambda s, c: transfer(
            s, pb.TransferRequest(hello=pb.TransferHello(region=REGION, sender=2, origin=1))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "node 1 cannot be sent its own writes of region 5",
    ),
    "forward the node's own writes": (
        lambda s, c: s.ForwardOrigin(
            pb.ForwardOriginRequest(region=REGION, origin=1, receiver=c.peer(2))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "its own go by its channels",
    ),
    "forward more of an origin than the node holds": (
        lambda s, c: s.ForwardOrigin(
            pb.ForwardOriginRequest(region=REGION, origin=3, receiver=c.peer(2), upto=10)
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "holds node 3's writes of region 5 up to seq 0, not 10",
    ),
    "transfer batch before a hello": (
        lambda s, c: transfer(s, batch(0, 1, [1])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "must start with a hello",
    ),
    "transfer switching region mid-stream": (
        lambda s, c: transfer(s, _hello(2), _hello(2, region=8)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "cannot switch to region 8",
    ),
    "transfer batch with seqs outside its range": (
        lambda s, c: transfer(s, _hello(2), batch(0, 1, [1, 3])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed batch: seqs 1..3 outside (0, 1]",
    ),
    "transfer batch with seqs and points apart": (
        lambda s, c: transfer(
            s, _hello(2), pb.TransferRequest(batch=pb.TransferBatch(upto=2, seqs=[1, 2]))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed batch: 2 seqs for 0 points",
    ),
    "transfer batch as Point messages (a sender below the floor)": (
        lambda s, c: transfer(
            s,
            _hello(2),
            pb.TransferRequest(
                batch=pb.TransferBatch(upto=1, seqs=[1], points=[pb.Point(series="z")])
            ),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed batch: a batch as Point messages: its sender runs a build below the floor",
    ),
    "snapshot sent whole (a sender below the floor)": (
        lambda s, c: s.InstallSnapshot(
            iter([pb.SnapshotChunk(region=9, sender=2, data=b"x", last=True, sha256="0" * 64)])
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed snapshot: node 2 sent its snapshot whole, without chunk digests",
    ),
    "snapshot chunk under a digest this build does not know (a later build's)": (
        lambda s, c: s.InstallSnapshot(
            iter([pb.SnapshotChunk(region=9, sender=2, data=b"x", digest=b"d", digest_kind=LATER)])
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed snapshot: snapshot chunk digest 7 is unknown to this build (it takes xxh3_128, "
        "sha256)",
    ),
    "transfer batch past a gap": (
        lambda s, c: transfer(s, _hello(2), batch(5, 6, [6])),
        grpc.StatusCode.FAILED_PRECONDITION,
        "starts after seq 5",
    ),
    "throttle both auto and a rate": (
        lambda s, c: s.SetThrottle(pb.ThrottleRequest(bytes_per_s=5e6, auto=True)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "either auto or a rate",
    ),
    "channel to itself": (
        lambda s, c: s.CreateChannel(pb.CreateChannelRequest(region=REGION, receiver=c.peer(1))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "cannot create a channel",
    ),
    "probe without a target": (
        lambda s, c: s.Probe(pb.ProbeRequest(timeout_s=1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "a probe needs a target: its node id and address",
    ),
    "probe of the node itself": (
        lambda s, c: s.Probe(pb.ProbeRequest(target=c.peer(1), timeout_s=1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "node 1 cannot probe itself",
    ),
    "probe with a timeout out of range": (
        lambda s, c: s.Probe(pb.ProbeRequest(target=c.peer(2), timeout_s=600)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "a probe's timeout must be above 0 and at most 60 s, not 600",
    ),
    "activate a replica awaiting its snapshot": (
        lambda s, c: s.SetActive(pb.SetActiveRequest(region=8, active=True)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "awaits its snapshot",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
async def test_bad_request_is_refused_clearly_and_changes_nothing(
    cluster: Cluster, case: str
) -> None:
    call, code, message = BAD[case]
    cluster.add_node(1)
    cluster.add_node(2, start=False)  # listed as a peer, never run
    await cluster.stub(1).CreateLocalPeer(
        pb.CreateLocalPeerRequest(region=REGION, peers=cluster.peers([1, 2]), active=True)
    )
    await cluster.stub(1).CreateLocalPeer(
        pb.CreateLocalPeerRequest(region=8, peers=cluster.peers([1]), await_snapshot=True)
    )
    await cluster.stub(1).CreateLocalPeer(
        pb.CreateLocalPeerRequest(region=9, peers=cluster.peers([1, 2]), await_snapshot=True)
    )
    await cluster.stub(1).Write(pb.WriteRequest(region=REGION, points=[pb.Point(series="a")]))
    before = await cluster.state(1, REGION)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(cluster.stub(1), cluster)
    assert status_of(refused.value) == code
    assert message in (refused.value.details() or "")

    assert await cluster.state(1, REGION) == before
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
