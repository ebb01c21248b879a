"""Repairing a dead node: each of its regions gets a new replica elsewhere, the dead peer goes."""

from __future__ import annotations

import signal

import pytest

from client.starter import RequestRefused
from contracts.ids import region_workflow_id
from contracts.models import Phase, RepairInput, RepairResult
from protos import air_node_pb2 as pb
from tests.support.chaos import restart
from tests.support.cluster import HELD
from tests.support.load import LoadWriter, missing_points
from tests.support.moves import awaits_snapshot, held_transfer
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.repair import RepairNodeWorkflow

REGIONS = list(range(731, 735))
LOADED = REGIONS[0]
OWN_WRITES = 5  # writes node 3 takes itself, replicated before it dies
UNREPLICATED = 3  # and writes it takes but never replicates: handed over when it is back


async def test_a_dead_nodes_regions_get_a_new_replica_despite_a_worker_kill(
    stack: Stack,
) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    for region in REGIONS:
        await cluster.create_region(region, [1, 2, 3])
    stack.start_worker()
    with pytest.raises(RequestRefused, match="node 3 answers: a repair is for a node that is gone"):
        await stack.operation(RepairNodeWorkflow.run, RepairInput(node=3))

    for t in range(OWN_WRITES):
        point = pb.Point(series="own", timestamp=t, value=t)
        await cluster.stub(3).Write(pb.WriteRequest(region=LOADED, points=[point]))
    await cluster.converged(LOADED, [1, 2, 3], count=OWN_WRITES)
    await cluster.throttle([3], HELD)  # what node 3 takes from now on, it never replicates
    for t in range(OWN_WRITES, OWN_WRITES + UNREPLICATED):
        point = pb.Point(series="own", timestamp=t, value=t)
        await cluster.stub(3).Write(pb.WriteRequest(region=LOADED, points=[point]))
    load = LoadWriter(cluster, LOADED, [1, 2]).start()  # through the survivors only
    await load.wait_acked(100)
    cluster.nodes[3].kill()  # for now

    handle = await stack.operation(RepairNodeWorkflow.run, RepairInput(node=3))
    await eventually(
        lambda: handle.query(RepairNodeWorkflow.moves_progress),
        lambda s: len(s.done) >= 1,
        timeout=90,
        what="a first region repaired",
    )
    # held: a move not yet done stays in its transfer until the worker's kill has landed
    await cluster.throttle([1, 2], HELD)
    region, destination = await held_transfer(stack, handle)
    stack.workers["worker"].kill()
    assert await awaits_snapshot(cluster, destination, region), "installed before the kill"
    await restart(stack.workers["worker"])
    await cluster.throttle([1, 2], 0)
    await load.wait_acked(len(load.acked) + 100)
    acked = await load.stop()

    result: RepairResult = await stack.client.get_workflow_handle(
        handle.id, result_type=RepairResult
    ).result()
    assert result.failed == {}, result
    assert sorted((r.region, r.to_node) for r in result.repaired) == [(r, 4) for r in REGIONS]
    account = next(r.account for r in result.repaired if r.region == LOADED)
    assert f"hold its writes up to seq {OWN_WRITES}" in account, account
    held = await cluster.regions_of(4)
    for region in REGIONS:
        peers = sorted(p.node_id for p in held[region].peers)
        assert peers == [1, 2, 4], (region, peers)  # the replication factor is back, without 3
    await cluster.converged(LOADED, [1, 2, 4], count=OWN_WRITES + len(acked))
    for i in (1, 2, 4):
        assert await missing_points(cluster, i, LOADED, acked) == [], i

    # back, node 3 may not drain the writes it never replicated into nodes 1 and 2 alone
    # (node 4 would never get them): written off, it hands them to all three, then deletes
    # its stale replicas
    await restart(cluster.nodes[3])
    await eventually(
        lambda: cluster.regions_of(3), lambda held: held == {}, what="node 3's replicas gone"
    )
    await cluster.converged(LOADED, [1, 2, 4], count=OWN_WRITES + UNREPLICATED + len(acked))


DIVERGED = 736


async def test_survivors_that_applied_different_prefixes_of_the_dead_nodes_writes_end_equal(
    stack: Stack,
) -> None:
    """Node 2 frozen while node 3's writes reach node 1 only; node 3 dies for good. The repair
    first brings node 2 to node 1's prefix of node 3's writes (a channel carries only its
    sender's own), with the worker killed while that catch-up is held; then every final
    replica holds every point node 3 acknowledged, node 4's copy included."""
    cluster = stack.cluster
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    await cluster.create_region(DIVERGED, [1, 2, 3])
    await LoadWriter(cluster, DIVERGED, [1], series="before").run(count=500)
    await cluster.converged(DIVERGED, [1, 2, 3], count=500)

    cluster.nodes[2].send_signal(signal.SIGSTOP)
    through_3 = LoadWriter(cluster, DIVERGED, [3], series="through-3", batch=100)
    await through_3.run(count=2_000)
    await eventually(
        lambda: cluster.progress(1, DIVERGED),
        lambda p: p.applied[3] == len(through_3.acked) // 100,
        what="node 1 holding every write node 3 took",
    )
    cluster.nodes[3].kill()  # for good
    await cluster.throttle([1], HELD)  # the catch-up from node 1 waits for the worker's kill
    cluster.nodes[2].send_signal(signal.SIGCONT)
    assert (await cluster.progress(2, DIVERGED)).applied[3] < len(through_3.acked) // 100

    stack.start_worker()
    handle = await stack.operation(RepairNodeWorkflow.run, RepairInput(node=3))
    move = stack.client.get_workflow_handle(region_workflow_id(DIVERGED))
    stack.handles.append(move)  # its history, with the catch-up, for the replay test
    await eventually(
        lambda: stack.progress(move),
        lambda p: p.phase == Phase.CATCHING_UP,
        what="the move catching up",
    )
    behind = (await cluster.progress(2, DIVERGED)).applied[3]
    assert behind < (await cluster.progress(1, DIVERGED)).applied[3], "caught up before the kill"
    stack.workers["worker"].kill()
    await restart(stack.workers["worker"])
    await cluster.throttle([1], 0)

    result: RepairResult = await stack.client.get_workflow_handle(
        handle.id, result_type=RepairResult
    ).result()
    assert result.failed == {}, result
    assert [(r.region, r.to_node) for r in result.repaired] == [(DIVERGED, 4)]
    await cluster.converged(DIVERGED, [1, 2, 4], count=500 + len(through_3.acked))
    for i in (1, 2, 4):
        assert await missing_points(cluster, i, DIVERGED, through_3.acked) == [], i
