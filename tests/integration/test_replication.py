"""Replication between real node processes: convergence, add and remove by hand, crashes."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from protos import air_node_pb2 as pb
from tests.support.chaos import restart
from tests.support.cluster import HELD, Cluster, status_of
from tests.support.load import LoadWriter, missing_points
from tests.support.waiting import eventually

REGION = 7


def points(series: str, start: int, count: int) -> list[pb.Point]:
    return [
        pb.Point(series=series, timestamp=t, value=t * 0.5) for t in range(start, start + count)
    ]


async def test_writes_to_every_replica_converge(cluster: Cluster) -> None:
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(REGION, [1, 2, 3])
    for i in (1, 2, 3):
        for b in range(5):
            request = pb.WriteRequest(region=REGION, points=points(f"s{i}", b * 10, 10))
            await cluster.stub(i).Write(request)
    digest = await cluster.converged(REGION, [1, 2, 3], count=150)
    assert digest == (await cluster.digest(1, REGION)).hash
    progress = await cluster.progress(2, REGION)
    assert dict(progress.applied) == {1: 5, 2: 5, 3: 5}


async def test_conflicting_writes_resolve_the_same_everywhere(cluster: Cluster) -> None:
    for i in (1, 2):
        cluster.add_node(i)
    await cluster.create_region(REGION, [1, 2])
    same_key = [pb.Point(series="k", timestamp=1, value=1.0)]
    await cluster.stub(1).Write(pb.WriteRequest(region=REGION, points=same_key))
    same_key[0].value = 2.0
    await cluster.stub(2).Write(pb.WriteRequest(region=REGION, points=same_key))
    await cluster.converged(REGION, [1, 2], count=1)
    for i in (1, 2):  # (origin 2, seq 1) > (origin 1, seq 1): node 2's value wins everywhere
        reply = await cluster.stub(i).Read(pb.ReadRequest(region=REGION, series="k"))
        assert [p.value for p in reply.points] == [2.0]


async def test_inactive_replica_rejects_user_writes_but_applies_replicated(
    cluster: Cluster,
) -> None:
    for i in (1, 2):
        cluster.add_node(i)
    await cluster.create_region(REGION, [1, 2])
    await cluster.stub(2).SetActive(pb.SetActiveRequest(region=REGION, active=False))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await cluster.stub(2).Write(pb.WriteRequest(region=REGION, points=points("x", 0, 1)))
    assert status_of(refused.value) == grpc.StatusCode.FAILED_PRECONDITION
    assert "WRITE_PROCESS_REJECT" in (refused.value.details() or "")
    await cluster.stub(1).Write(pb.WriteRequest(region=REGION, points=points("x", 0, 5)))
    await cluster.converged(REGION, [1, 2], count=5)


async def test_add_a_fourth_replica_by_hand_under_load(cluster: Cluster) -> None:
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    await cluster.create_region(REGION, [1, 2, 3])
    load = LoadWriter(cluster, REGION, [1, 2, 3]).start()
    await load.wait_acked(300)
    new, coordinator = 4, 1

    # 1. create the new replica, inactive, awaiting the coordinator's snapshot
    created = await cluster.stub(new).CreateLocalPeer(
        pb.CreateLocalPeerRequest(
            region=REGION, peers=cluster.peers([1, 2, 3, 4]), active=False, await_snapshot=True
        )
    )
    assert created.changed
    # 2. inactivate it: already so
    inactivated = await cluster.stub(new).SetActive(pb.SetActiveRequest(region=REGION))
    assert not inactivated.changed
    # 3. the other peers create channels to it; the coordinator's channel sends a snapshot
    for peer in (2, 3):
        await cluster.stub(peer).CreateChannel(
            pb.CreateChannelRequest(region=REGION, receiver=cluster.peer(new))
        )
    await cluster.stub(coordinator).CreateChannel(
        pb.CreateChannelRequest(region=REGION, receiver=cluster.peer(new), snapshot=True)
    )
    # 4. capture the target once, then wait until the new replica reaches it
    target: dict[int, int] = {}
    for peer in (1, 2, 3):
        for origin, seq in (await cluster.progress(peer, REGION)).applied.items():
            target[origin] = max(target.get(origin, 0), seq)
    check = pb.CheckTransferCompleteRequest(region=REGION, target=target)
    await eventually(
        lambda: cluster.stub(new).CheckTransferComplete(check),
        lambda reply: reply.complete,
        what="the new replica reaching the target",
    )
    # 5. activate it; it takes user writes from now on
    activated = await cluster.stub(new).SetActive(pb.SetActiveRequest(region=REGION, active=True))
    assert activated.changed
    load.targets.append(new)
    await load.wait_acked(len(load.acked) + 300)
    acked = await load.stop()

    await cluster.converged(REGION, [1, 2, 3, 4], count=len(acked))
    for i in (1, 2, 3, 4):
        assert await missing_points(cluster, i, REGION, acked) == []
    assert (await cluster.progress(new, REGION)).max_assigned > 0, "node 4 took no user write"


async def test_remove_a_replica_by_hand_under_load(cluster: Cluster) -> None:
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(REGION, [1, 2, 3])
    load = LoadWriter(cluster, REGION, [1, 2, 3]).start()
    await load.wait_acked(300)
    leaving = 1

    # 1. the others drop their channels to the leaving peer
    for peer in (2, 3):
        dropped = await cluster.stub(peer).DropChannel(
            pb.DropChannelRequest(region=REGION, receiver_id=leaving)
        )
        assert dropped.changed
    # 2. it stops taking user writes
    await cluster.stub(leaving).SetActive(
        pb.SetActiveRequest(region=REGION, active=False, for_deletion=True)
    )
    load.targets.remove(leaving)
    # 3. its channels drain: the others reach its last seq
    last = (await cluster.progress(leaving, REGION)).max_assigned
    check = pb.CheckTransferCompleteRequest(region=REGION, target={leaving: last})
    for peer in (2, 3):
        await eventually(
            lambda peer=peer: cluster.stub(peer).CheckTransferComplete(check),  # type: ignore[misc]
            lambda reply: reply.complete,
            what=f"node {peer} applying all of node {leaving}'s writes",
        )
    # 4. it releases everything
    await eventually(
        lambda: cluster.stub(leaving).GetReleaseStatus(pb.RegionRequest(region=REGION)),
        lambda reply: reply.released,
        what="release",
    )
    # 5. its replica is deleted
    deleted = await cluster.stub(leaving).DeleteLocalPeer(pb.RegionRequest(region=REGION))
    assert deleted.changed

    await load.wait_acked(len(load.acked) + 200)
    acked = await load.stop()
    assert not cluster.region_dir(leaving, REGION).exists()
    assert REGION not in await cluster.regions_of(leaving)
    await cluster.converged(REGION, [2, 3], count=len(acked))
    for peer in (2, 3):
        assert await missing_points(cluster, peer, REGION, acked) == []
        progress = await cluster.progress(peer, REGION)
        assert leaving not in {c.receiver.node_id for c in progress.channels}
        assert leaving not in {p.node_id for p in progress.peers}


async def test_kill_sender_and_receiver_mid_transfer(cluster: Cluster) -> None:
    """Node 1's channel to node 2 held (1 byte/s) with writes it has not sent: the receiver,
    then the sender, is killed mid-transfer however fast the machine; lifted, all arrives."""
    # one seq per exchange: a part is a hundred exchanges, the stream breaks between two
    for i in (1, 2):
        cluster.add_node(i, extra_args=["--transfer-batch-points", "1"])
    await cluster.create_region(REGION, [1, 2])
    sender, receiver = cluster.nodes[1], cluster.nodes[2]
    part, size = 100, 40  # batches (seqs) a part, points a batch
    written = 0

    async def write_part() -> int:
        """A part more on node 1; the seqs it holds now."""
        nonlocal written
        await asyncio.gather(
            *(
                cluster.stub(1).Write(
                    pb.WriteRequest(region=REGION, points=points("p", b * size, size))
                )
                for b in range(written, written + part)
            )
        )
        written += part
        return written

    async def applied_on_receiver() -> int:
        return (await cluster.progress(2, REGION)).applied.get(1, 0)

    # the channel has carried a first part; the second waits at the held sender
    await write_part()
    await eventually(applied_on_receiver, lambda a: a == part, what="the first part on node 2")
    await cluster.throttle([1], HELD)
    expected = await write_part()
    assert await applied_on_receiver() < expected, "the transfer was not held"
    receiver.kill()
    await restart(receiver)
    assert await applied_on_receiver() < expected, "the transfer finished across the kill"
    await cluster.throttle([1], 0)
    await eventually(applied_on_receiver, lambda a: a == expected, what="the transfer resumed")

    # held again with a third part unsent, and the sender killed
    await cluster.throttle([1], HELD)
    expected = await write_part()
    sender.kill()
    assert await applied_on_receiver() < expected, "the transfer finished before the sender died"
    await restart(sender)  # a node keeps no throttle across a restart: the hold is lifted

    await cluster.converged(REGION, [1, 2], count=expected * size, timeout=120)
    assert await applied_on_receiver() == expected
