"""A replica removed while its node could not be told: the node hands its own writes to the
region's members, a member added meanwhile included, then deletes the replica by itself."""

from __future__ import annotations

import signal

import grpc
import pytest

from contracts.columns import to_columns
from contracts.models import AddPeerInput, RemovePeerInput, RemovePeerResult
from protos import air_node_pb2 as pb
from tests.support.chaos import restart
from tests.support.cluster import HELD
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.add_peer import AddPeerWorkflow
from workflows.remove_peer import RemovePeerWorkflow

REGION = 761


async def test_a_node_removed_while_frozen_hands_over_what_it_acknowledged_then_retires(
    stack: Stack,
) -> None:
    """Node 3 acknowledges writes that it never replicates (its channels held), then freezes
    (silent, as behind a cut) and is removed as unreachable; node 4 joins from the survivors.
    Thawed, node 3 is told by its channels that it was written off: every write it
    acknowledged reaches nodes 1, 2 and 4, and its replica is gone."""
    cluster = stack.cluster
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    await cluster.create_region(REGION, [1, 2, 3])
    stack.start_worker()
    before = LoadWriter(cluster, REGION, [1, 2, 3], series="before")
    await before.run(count=300)
    await cluster.throttle([3], HELD)  # what node 3 takes from now on, it never replicates
    behind_the_cut = LoadWriter(cluster, REGION, [3], series="behind-the-cut", batch=10)
    await behind_the_cut.run(count=200)
    assert (await cluster.progress(1, REGION)).applied.get(3, 0) < len(behind_the_cut.acked) // 10
    cluster.nodes[3].send_signal(signal.SIGSTOP)

    removal = await stack.start(
        RemovePeerWorkflow.run, RemovePeerInput(region=REGION, peer=3, down_timeout_s=1)
    )
    removed = await removal.result()
    assert isinstance(removed, RemovePeerResult)
    assert not removed.clean and "inactivate" in removed.skipped_steps, removed
    addition = await stack.start(
        AddPeerWorkflow.run, AddPeerInput(region=REGION, new_peer=4, coordinator=1)
    )
    await addition.result()
    assert 3 not in {p.node_id for p in (await cluster.progress(4, REGION)).peers}

    cluster.nodes[3].send_signal(signal.SIGCONT)
    await cluster.throttle([3], 0)
    await cluster.gone(3, REGION, timeout=60, what="node 3 retiring its replica")
    acked = [*before.acked, *behind_the_cut.acked]
    await cluster.converged(REGION, [1, 2, 4], count=len(acked))
    for i in (1, 2, 4):
        assert await missing_points(cluster, i, REGION, acked) == [], i


async def test_a_retiring_nodes_writes_are_taken_from_it_by_any_holder(stack: Stack) -> None:
    """A hand-over is a transfer marked `retiring`: a holder that never knew the sender takes
    it (a member added after the removal), and applies each write at most once."""
    cluster = stack.cluster
    for i in (1, 2):
        cluster.add_node(i)
    await cluster.create_region(REGION, [1])
    await cluster.create_region(REGION + 1, [2])
    hello = pb.TransferHello(region=REGION, sender=2, origin=2, retiring=True)
    batch = pb.TransferBatch(after=0, upto=1, seqs=[1], columns=to_columns([("handed", 1, 1.0)]))
    for _ in range(2):  # a repeat applies nothing twice
        call = cluster.stub(1).Transfer(None)
        await call.write(pb.TransferRequest(hello=hello))
        first = await call.read()
        assert isinstance(first, pb.TransferReply) and first.standing == pb.SENDER_PEER
        await call.write(pb.TransferRequest(batch=batch))
        reply = await call.read()
        assert isinstance(reply, pb.TransferReply) and reply.applied[2] == 1
        call.cancel()
    assert (await cluster.digest(1, REGION)).count == 1


async def test_an_idle_replica_removed_behind_a_cut_is_found_and_retired(stack: Stack) -> None:
    """Node 3, frozen, is removed as unreachable; thawed, it has nothing to send, so no channel
    of its tells it: the comparison of its peers' listings does (a dozen guardian intervals),
    and it retires its replica."""
    cluster = stack.cluster
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(REGION, [1, 2, 3])
    stack.start_worker()
    writes = LoadWriter(cluster, REGION, [1, 2, 3])
    await writes.run(count=100)
    await cluster.converged(REGION, [1, 2, 3], count=100)
    cluster.nodes[3].send_signal(signal.SIGSTOP)
    removal = await stack.start(
        RemovePeerWorkflow.run, RemovePeerInput(region=REGION, peer=3, down_timeout_s=1)
    )
    assert not (await removal.result()).clean
    cluster.nodes[3].send_signal(signal.SIGCONT)

    await cluster.gone(
        3, REGION, timeout=90, what="node 3 finding itself removed and retiring its replica"
    )
    await cluster.converged(REGION, [1, 2], count=100)
    assert "deleting its replica" in cluster.nodes[3].output()  # retired, not deleted by hand


async def test_a_replica_created_again_while_its_old_one_retires_waits_for_it_to_go(
    stack: Stack,
) -> None:
    """A reconstruct's shape: node 2 is removed (nodes 1 and 3 keep it as departed), its
    replica is created again, and node 2 restarts before the peers list it: it hears of the
    removal and retires the new replica (node 3 frozen, the retirement waits for it). The
    addition's retried creation meanwhile is told to retry, not that the replica exists (its
    next step would have found it gone); once it is gone, the creation makes it anew."""
    cluster = stack.cluster
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(REGION, [1, 2, 3])
    stack.start_worker()
    await LoadWriter(cluster, REGION, [1, 3]).run(count=50)
    removal = await stack.start(RemovePeerWorkflow.run, RemovePeerInput(region=REGION, peer=2))
    assert (await removal.result()).clean
    joining = pb.CreateLocalPeerRequest(
        region=REGION, peers=cluster.peers([1, 2, 3]), await_snapshot=True
    )
    await cluster.stub(2).CreateLocalPeer(joining)

    cluster.nodes[3].send_signal(signal.SIGSTOP)
    try:
        cluster.nodes[2].kill()
        await restart(cluster.nodes[2])
        await eventually(
            lambda: cluster.progress(2, REGION),
            lambda progress: progress.leaving,
            what="node 2 retiring its replica",
        )
        with pytest.raises(grpc.aio.AioRpcError) as retry:
            await cluster.stub(2).CreateLocalPeer(joining)
        assert retry.value.code() == grpc.StatusCode.UNAVAILABLE, retry.value
        assert "is leaving" in (retry.value.details() or "")
    finally:
        cluster.nodes[3].send_signal(signal.SIGCONT)

    await cluster.gone(2, REGION, timeout=60, what="node 2's retired replica gone")
    created = await cluster.stub(2).CreateLocalPeer(joining)
    assert created.changed, created
    assert not (await cluster.progress(2, REGION)).leaving
