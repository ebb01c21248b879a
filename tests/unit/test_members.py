"""A region's members, by what its holders list: a replica the region removed while its node
was cut off is no member, neither for airctl nor for the planners (contracts/members.py)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import grpc
import pytest

from contracts.activity_models import Peer
from contracts.errors import InvalidRequest
from contracts.members import stale_holders
from contracts.models import AddPeerInput
from planning.placement import plan_addition, region_peers
from protos import air_node_pb2 as pb
from runtime.reading import describe_cluster, describe_region

REGION = 3


def test_a_replica_no_other_holder_lists_is_stale() -> None:
    # node 1 was removed while cut off; the others went on to 2, 4, 5
    lists = {1: {1, 2, 5}, 2: {2, 4, 5}, 4: {2, 4, 5}, 5: {2, 4, 5}}
    assert stale_holders(lists, took_writes=[1, 2, 4, 5]) == {1}


def test_two_removed_replicas_listing_each_other_are_both_stale() -> None:
    # nemesis seed 107: nodes 1 and 3 were each removed while cut off, and still list each
    # other and the old members; 2 and 5 are the region now (4 does not answer)
    lists = {1: {1, 2, 3, 5}, 2: {2, 4, 5}, 3: {1, 2, 3, 5}, 5: {2, 4, 5}}
    assert stale_holders(lists, took_writes=[1, 2, 3, 5]) == {1, 3}


def test_a_member_mid_removal_is_stale_and_the_others_are_not() -> None:
    # the others dropped their channels to 3 first; 3 still takes writes until inactivated
    lists = {1: {1, 2}, 2: {1, 2}, 3: {1, 2, 3}}
    assert stale_holders(lists, took_writes=[1, 2, 3]) == {3}


def test_a_joining_replica_and_a_lone_holder_are_not_stale() -> None:
    # node 4 was just created; the others list it once their channels to it exist
    assert stale_holders({1: {1, 2}, 2: {1, 2}, 4: {1, 2, 4}}, took_writes=[1, 2]) == set()
    assert stale_holders({1: {1, 2, 3}}, took_writes=[1]) == set()  # nothing to judge by


def info(node: int, peers: set[int], active: bool = True) -> pb.RegionInfo:
    return pb.RegionInfo(
        region=REGION,
        peers=[pb.Peer(node_id=p, address=address(p)) for p in sorted(peers)],
        active=active,
        installed=True,
    )


def address(node: int) -> str:
    return f"127.0.0.1:{node}"


class FakeStub:
    """A node answering DescribeRegion and ListRegions from what it holds."""

    def __init__(self, held: pb.RegionInfo | None) -> None:
        self.held = held

    async def DescribeRegion(self, request: pb.RegionRequest, timeout: float) -> pb.RegionInfo:
        if self.held is None:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.NOT_FOUND,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                "no region",
                None,
            )
        return self.held

    async def ListRegions(self, request: pb.ListRegionsRequest, timeout: float) -> Any:
        held = [self.held] if self.held is not None and request.limit != 1 else []
        return pb.ListRegionsReply(regions=held)


class FakeClients:
    def __init__(self, stubs: dict[str, FakeStub]) -> None:
        self.stubs = stubs

    def stub(self, target: str) -> FakeStub:
        return self.stubs[target]


# node 1 still lists itself and the old members; 2, 4 and 5 are the region now; 3 has none
HELD = {
    1: info(1, {1, 2, 5}),
    2: info(2, {2, 4, 5}),
    3: None,
    4: info(4, {2, 4, 5}),
    5: info(5, {2, 4, 5}),
}
NODES = [Peer(node_id=n, address=address(n)) for n in HELD]
CLIENTS: Any = FakeClients({address(n): FakeStub(held) for n, held in HELD.items()})


def test_a_stale_replica_is_kept_out_of_a_regions_description_and_its_peer_list() -> None:
    described = asyncio.run(describe_region(REGION, NODES, CLIENTS))
    assert described.stale == [1]
    assert described.holders() == [2, 4, 5]
    assert [p.node_id for p in region_peers(described)] == [2, 4, 5]


def test_a_stale_replica_is_kept_out_of_the_clusters_holders_and_peers() -> None:
    cluster = asyncio.run(describe_cluster(NODES, CLIENTS))
    assert cluster.stale == {REGION: [1]}
    assert cluster.holders[REGION] == [2, 4, 5]
    assert cluster.peers[REGION] == [2, 4, 5]


def test_an_addition_to_a_node_still_holding_a_stale_replica_waits_for_it_to_retire() -> None:
    described = asyncio.run(describe_region(REGION, NODES, CLIENTS))
    with pytest.raises(InvalidRequest, match="node 1 still holds a replica of region 3"):
        plan_addition(described, AddPeerInput(region=REGION, new_peer=1), random.Random(0))
