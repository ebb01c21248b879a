"""Acknowledgement levels: a write at `quorum` survives the permanent loss of the node that took
it; one at `one` may not; a level that cannot be met fails the write and says how far it got."""

from __future__ import annotations

import signal

import grpc
import pytest

from contracts.models import RepairInput, RepairResult
from protos import air_node_pb2 as pb
from tests.support.cluster import HELD, Cluster, status_of
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack

REGION = 771


async def refused_write(cluster: Cluster, node: int, acks: pb.Acks) -> grpc.aio.AioRpcError:
    point = pb.Point(series="refused", timestamp=int(acks), value=1.0)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        request = pb.WriteRequest(region=REGION, points=[point], acks=acks)
        # the node answers at 90% of the deadline: 0.5 s to spare for a busy machine
        await cluster.stub(node).Write(request, timeout=5)
    assert status_of(refused.value) == grpc.StatusCode.DEADLINE_EXCEEDED, refused.value
    return refused.value


async def test_quorum_writes_survive_the_loss_of_the_node_that_took_them(stack: Stack) -> None:
    cluster = await stack.four_nodes(REGION)
    quorum = LoadWriter(cluster, REGION, [3], series="quorum", acks=pb.ACKS_QUORUM)
    await quorum.run(count=200)
    cluster.nodes[2].send_signal(signal.SIGSTOP)
    await quorum.run(count=200)  # node 3 and node 1 are a majority
    assert len(quorum.acked) == 400 and quorum.refusals == 0
    refused = await refused_write(cluster, 3, pb.ACKS_ALL)  # node 2 is away
    assert "applied by 2 of the 3 replicas all needs (nodes [1, 3])" in (refused.details() or "")

    await cluster.throttle([3], HELD)  # from now on node 3's writes reach no other node
    one = LoadWriter(cluster, REGION, [3], series="one")
    await one.run(count=50)
    assert len(one.acked) == 50  # acknowledged by node 3 alone
    refused = await refused_write(cluster, 3, pb.ACKS_QUORUM)
    assert "applied by 1 of the 2 replicas quorum needs (nodes [3])" in (refused.details() or "")

    cluster.nodes[3].kill()  # for good, with what it never replicated
    cluster.nodes[2].send_signal(signal.SIGCONT)
    handle = await stack.operation(RepairInput(node=3))
    result: RepairResult = await stack.client.get_workflow_handle(
        handle.id, result_type=RepairResult
    ).result()
    assert result.failed == {}, result
    for i in (1, 2, 4):
        assert await missing_points(cluster, i, REGION, quorum.acked) == [], i
        # what `one` risks: acknowledged, and gone with the node that took it
        assert len(await missing_points(cluster, i, REGION, one.acked)) == 50, i
