"""Rebalancing: replicas move from the fullest nodes onto empty ones until the nodes are even."""

from __future__ import annotations

import pytest

from client.starter import RequestRefused
from contracts.activity_models import Peer
from contracts.ids import REBALANCE_WORKFLOW_ID
from contracts.models import Move, RebalanceInput, RebalanceResult
from planning.balance import plan_rebalance
from runtime.reading import describe_cluster
from tests.support.chaos import restart
from tests.support.cluster import HELD, Cluster
from tests.support.load import LoadWriter, missing_points
from tests.support.moves import awaits_snapshot, held_transfer
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.rebalance import RebalanceWorkflow

REGIONS = list(range(711, 717))  # six regions on nodes 1-3; nodes 4 and 5 join empty
LOADED = REGIONS[0]


async def result_of(stack: Stack) -> RebalanceResult:
    handle = stack.client.get_workflow_handle(REBALANCE_WORKFLOW_ID, result_type=RebalanceResult)
    result: RebalanceResult = await handle.result()
    return result


async def planned(cluster: Cluster) -> list[Move]:
    """What a rebalance would move now, planned as the workflow plans (changing nothing)."""
    return plan_rebalance(
        await describe_cluster(
            [Peer(node_id=i, address=n.address) for i, n in cluster.nodes.items()], cluster.clients
        )
    ).moves


async def test_a_rebalance_onto_two_empty_nodes_survives_worker_and_destination_kills(
    stack: Stack,
) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3, 4, 5):
        cluster.add_node(i)
    for region in REGIONS:
        await cluster.create_region(region, [1, 2, 3])
    stack.start_worker()
    load = LoadWriter(cluster, LOADED, [1, 2, 3, 4, 5]).start()
    await load.wait_acked(200)

    handle = await stack.operation(RebalanceWorkflow.run, RebalanceInput(max_concurrent=2))
    await eventually(
        lambda: handle.query(RebalanceWorkflow.moves_progress),
        lambda s: len(s.done) >= 1,
        timeout=60,
        what="a first replica moved",
    )
    # held: the moves running now stay in their transfer until both kills have landed
    await cluster.throttle([1, 2, 3], HELD)
    region, destination = await held_transfer(stack, handle)
    stack.workers["worker"].kill()  # mid-rebalance: the moves running resume under the next
    assert await awaits_snapshot(cluster, destination, region), "installed before the kills"
    cluster.nodes[destination].kill()  # the destination of a transfer under way
    await restart(cluster.nodes[destination])
    await restart(stack.workers["worker"])
    await cluster.throttle([1, 2, 3], 0)
    await load.wait_acked(len(load.acked) + 200)
    acked = await load.stop()

    result = await result_of(stack)
    assert not result.failed and result.moved, result
    assert region in {m.region for m in result.moved}, result  # the held move, finished
    counts = {i: len(await cluster.regions_of(i)) for i in (1, 2, 3, 4, 5)}
    assert sum(counts.values()) == 3 * len(REGIONS), counts  # the replication factor kept
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    holders = [i for i in counts if LOADED in await cluster.regions_of(i)]
    await cluster.converged(LOADED, holders, count=len(acked))
    for i in holders:
        assert await missing_points(cluster, i, LOADED, acked) == [], i

    assert await planned(cluster) == []  # balanced, by the planner's own measure


async def test_a_balanced_cluster_moves_nothing_and_a_bad_destination_is_refused(
    stack: Stack,
) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(721, [1, 2, 3])
    stack.start_worker()

    with pytest.raises(RequestRefused, match=r"destination node\(s\) \[9\] are not live"):
        await stack.operation(RebalanceWorkflow.run, RebalanceInput(nodes=[9]))
    await stack.operation(RebalanceWorkflow.run, RebalanceInput())
    result = await result_of(stack)
    assert (result.moved, result.message) == ([], "the cluster is balanced: nothing to move")
