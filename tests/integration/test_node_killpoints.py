"""Each node-side kill point fires when armed, once; the restarted node recovers and serves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import pytest

from contracts.killpoints import EXIT_CODE, NODE_POINTS, KillPoint
from protos import air_node_pb2 as pb
from tests.support.cluster import Cluster

REGION = 3
Step = Callable[[Cluster], Awaitable[pb.MembershipReply]]


def _create(active: bool = True) -> Step:
    def step(c: Cluster) -> Awaitable[pb.MembershipReply]:
        request = pb.CreateLocalPeerRequest(region=REGION, peers=c.peers([1]), active=active)
        return c.stub(1).CreateLocalPeer(request)

    return step


def _set_active(active: bool, for_deletion: bool = False) -> Step:
    def step(c: Cluster) -> Awaitable[pb.MembershipReply]:
        request = pb.SetActiveRequest(region=REGION, active=active, for_deletion=for_deletion)
        return c.stub(1).SetActive(request)

    return step


def _create_channel(c: Cluster) -> Awaitable[pb.MembershipReply]:
    receiver = pb.Peer(node_id=9, address="127.0.0.1:9")  # need not be up
    return c.stub(1).CreateChannel(pb.CreateChannelRequest(region=REGION, receiver=receiver))


def _delete(c: Cluster) -> Awaitable[pb.MembershipReply]:
    return c.stub(1).DeleteLocalPeer(pb.RegionRequest(region=REGION))


@dataclass
class Case:
    setup: list[Step]
    action: Step
    retry_changes: bool  # whether the step's effect was durable before the point was reached
    region_after: bool


CASES = {
    KillPoint.DESTINATION_CREATE_LOCAL_PEER: Case([], _create(False), False, True),
    KillPoint.DESTINATION_ADD_PEER_DONE: Case([_create(False)], _set_active(True), False, True),
    KillPoint.ORIGINAL_ADD_PEER_DONE: Case([_create()], _create_channel, False, True),
    KillPoint.BEFORE_INACTIVATE: Case([_create()], _set_active(False, True), True, True),
    KillPoint.AFTER_INACTIVATE: Case([_create()], _set_active(False, True), False, True),
    KillPoint.BEFORE_DELETE: Case([_create()], _delete, True, False),
    KillPoint.AFTER_DELETE: Case([_create()], _delete, False, False),
}


def test_every_node_point_has_a_case() -> None:
    assert set(CASES) == NODE_POINTS


@pytest.mark.parametrize("point", sorted(CASES), ids=str)
async def test_node_kill_point_fires_once_and_node_recovers(
    cluster: Cluster, point: KillPoint
) -> None:
    case = CASES[point]
    node = cluster.add_node(1, env={"AIR_KILL_POINTS": point.value})
    for step in case.setup:
        await step(cluster)

    with pytest.raises(grpc.aio.AioRpcError):
        await case.action(cluster)
    assert node.wait_exit(timeout=30) == EXIT_CODE
    assert f"[KILL POINT] {point.value}" in node.output()

    node.start()  # same environment: the point has fired and does not fire again
    retried = await case.action(cluster)
    assert retried.changed == case.retry_changes, retried.message
    assert node.alive()
    assert (REGION in await cluster.regions_of(1)) == case.region_after
    assert cluster.region_dir(1, REGION).exists() == case.region_after
