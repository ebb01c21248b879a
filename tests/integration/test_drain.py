"""Draining a node: every region moves off it, a bounded number at once, pausable."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import is_cancelled_exception

from protos import air_node_pb2 as pb
from tests.support.chaos import restart
from tests.support.cluster import Cluster
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.common import region_workflow_id
from workflows.models import DrainInput, DrainProgress, DrainResult, MigrationInput, Phase

ON_123 = [501, 502, 503]
ON_124 = [504, 505, 506]


async def test_drain_moves_every_region_off_the_node(stack: Stack) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    for region in ON_123:
        await cluster.create_region(region, [1, 2, 3])
    for region in ON_124:
        await cluster.create_region(region, [1, 2, 4])
    stack.start_worker()
    load = LoadWriter(cluster, ON_123[0], [1, 2, 3, 4]).start()
    await load.wait_acked(200)

    handle = await stack.drain(DrainInput(node=1, max_concurrent=1))
    paused = await handle.execute_update("pause", result_type=DrainProgress)
    assert paused.paused
    state = await eventually(
        lambda: handle.query("drain_progress", result_type=DrainProgress),
        lambda s: bool(s.planned),
        what="the drain's plan",
    )
    assert len(state.running) <= 1  # the bound: one at a time
    assert {(m.region, m.to_node) for m in state.planned} == {
        *((r, 4) for r in ON_123),
        *((r, 3) for r in ON_124),
    }
    await handle.execute_update("set_max_concurrent", 2)
    await handle.execute_update("resume", result_type=DrainProgress)
    result = await stack.client.get_workflow_handle(handle.id, result_type=DrainResult).result()
    assert not result.failed and len(result.moved) == 6, result

    assert await cluster.regions_of(1) == {}
    acked = await load.stop()
    await cluster.converged(ON_123[0], [2, 3, 4], count=len(acked))
    for i in (2, 3, 4):
        assert await missing_points(cluster, i, ON_123[0], acked) == []
    for region in ON_124:
        await eventually(
            lambda r=region: cluster.regions_of(3),  # type: ignore[misc]
            lambda regions, r=region: r in regions,  # type: ignore[misc]
        )


def joining_intervals(cluster: Cluster) -> list[tuple[datetime, datetime]]:
    """From the nodes' own logs: when each new replica was created, until it was activated."""
    stamp = re.compile(r"^(\S+ \S+) node\d+ INFO node.node: (created region|region) (\d+)(.*)$")
    intervals = []
    for node in cluster.nodes.values():
        opened: dict[str, datetime] = {}
        for line in node.log_path.read_text().splitlines():
            if not (m := stamp.match(line)):
                continue
            at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
            if m.group(2) == "created region" and "active=False" in m.group(4):
                opened[m.group(3)] = at
            elif m.group(4).strip() == "is now active" and m.group(3) in opened:
                intervals.append((opened.pop(m.group(3)), at))
    return intervals


def most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


async def test_the_bound_holds_on_the_nodes_and_a_worker_kill_mid_drain(stack: Stack) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3, 4, 5):
        cluster.add_node(i)
    regions = list(range(511, 519))
    for region in regions:
        await cluster.create_region(region, [1, 2, 3])
    stack.start_worker()

    handle = await stack.drain(DrainInput(node=1, max_concurrent=2, max_per_node=1))
    await eventually(
        lambda: handle.query("drain_progress", result_type=DrainProgress),
        lambda s: len(s.done) >= 2,
        timeout=60,
        what="two regions moved",
    )
    stack.workers["worker"].kill()
    await restart(stack.workers["worker"])
    result = await stack.client.get_workflow_handle(handle.id, result_type=DrainResult).result()
    assert not result.failed and len(result.moved) == len(regions), result

    assert await cluster.regions_of(1) == {}
    intervals = joining_intervals(cluster)
    assert len(intervals) == len(regions), intervals
    assert most_at_once(intervals) <= 2  # from the nodes' clocks, not the workflow's books


async def stalled_ids(client: Client) -> set[str]:
    """The workflows whose AirStalled search attribute is true, from Temporal visibility."""
    return {w.id async for w in client.list_workflows("AirStalled = true")}


async def test_cancelling_a_drain_rolls_back_the_moves_in_flight(stack: Stack) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3, 4):  # 0.2 MB/s: each region's snapshot takes seconds
        cluster.add_node(i, extra_args=["--transfer-rate-limit", "0.2"])
    regions = list(range(521, 525))
    for region in regions:
        await cluster.create_region(region, [1, 2, 3])
        bulk = LoadWriter(cluster, region, [1], series="bulk", batch=5000)
        await bulk.run(count=20_000)
    stack.start_worker()

    # a snapshot's lag does not shrink until it is installed: stalled after a second
    handle = await stack.drain(DrainInput(node=1, max_concurrent=2, stall_after_s=1))
    state = await eventually(
        lambda: handle.query("drain_progress", result_type=DrainProgress),
        lambda s: len(s.running) == 2 and bool(s.stalled),
        what="two moves in flight, a stalled one among them",
    )
    region, why = next(iter(state.stalled.items()))
    assert region in state.running and "has not shrunk" in why, state
    in_flight = {region_workflow_id(r) for r in state.running}
    # their histories too, for the replay test (the stall relayed through a migration)
    stack.handles += [stack.client.get_workflow_handle(i) for i in sorted(in_flight)]
    await eventually(  # the drain, a migration and its addition, all findable as stalled
        lambda: stalled_ids(stack.client),
        lambda ids: (
            handle.id in ids and any(f"{i}/add-peer" in ids and i in ids for i in in_flight)
        ),
        what="AirStalled in visibility",
    )
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert is_cancelled_exception(failed.value.cause)
    assert (await handle.query("drain_progress", result_type=DrainProgress)).stalled == {}
    await eventually(  # each rolled back: none is stalled any more
        lambda: stalled_ids(stack.client),
        lambda ids: not ids & {handle.id, *in_flight, *(f"{i}/add-peer" for i in in_flight)},
        what="AirStalled cleared",
    )

    for region in regions:  # every region whole, on 1-3 (rolled back) or 2-4 (finished)
        holders = [i for i in (1, 2, 3, 4) if region in await cluster.regions_of(i)]
        assert holders in ([1, 2, 3], [2, 3, 4]), (region, holders)
        await cluster.converged(region, holders, count=20_000, timeout=120)


@pytest.mark.slow
async def test_a_node_holding_20_regions_drains_under_write_load(stack: Stack) -> None:
    cluster = stack.cluster
    nodes = [1, 2, 3, 4, 5]
    for i in nodes:
        cluster.add_node(i)
    regions = list(range(531, 551))
    for k, region in enumerate(regions):  # node 1 and two of the others, spread evenly
        await cluster.create_region(region, [1, 2 + k % 4, 2 + (k + 1) % 4])
    stack.start_worker()
    loads = [LoadWriter(cluster, r, nodes, batch=10).start(rate=100) for r in regions]
    for load in loads:
        await load.wait_acked(50)

    handle = await stack.drain(DrainInput(node=1, max_concurrent=4, max_per_node=2))
    result = await stack.client.get_workflow_handle(handle.id, result_type=DrainResult).result()
    assert not result.failed and sorted(m.region for m in result.moved) == regions, result

    assert await cluster.regions_of(1) == {}
    intervals = joining_intervals(cluster)
    assert len(intervals) == len(regions), intervals
    assert most_at_once(intervals) <= 4  # from the nodes' clocks, not the workflow's books
    for region, load in zip(regions, loads, strict=True):  # every acknowledged write, everywhere
        acked = await load.stop()
        holders = [i for i in nodes if region in await cluster.regions_of(i)]
        assert len(holders) == 3 and 1 not in holders, (region, holders)
        await cluster.converged(region, holders, count=len(acked))
        for i in holders:
            assert await missing_points(cluster, i, region, acked) == [], (region, i)


async def test_a_busy_region_is_left_alone_and_the_drain_reports_bytes_moved(
    stack: Stack,
) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3, 4, 5):
        cluster.add_node(i)
    busy, others = 561, [562, 563]
    await cluster.create_region(busy, [1, 2, 3])
    for region in others:  # coordinators 2 or 4: never the throttled node 3
        await cluster.create_region(region, [1, 2, 4])
    for region in (busy, *others):
        await LoadWriter(cluster, region, [1], batch=500).run(count=2000)
    stack.start_worker()
    # region 561's own migration, held in its transfer by a 1 byte/s coordinator
    await cluster.stub(3).SetThrottle(pb.ThrottleRequest(bytes_per_s=1))
    own = await stack.start(MigrationInput(region=busy, from_node=1, to_node=5, coordinator=3))
    await eventually(
        lambda: stack.progress(stack.client.get_workflow_handle(f"{own.id}/add-peer")),
        lambda p: p.phase == Phase.TRANSFERRING,
        what="region 561's own migration transferring",
    )

    handle = await stack.drain(DrainInput(node=1, max_concurrent=3))
    result = await stack.client.get_workflow_handle(handle.id, result_type=DrainResult).result()
    assert sorted(m.region for m in result.moved) == others, result
    assert "another change of region 561 is running" in result.failed[busy], result

    progress = await handle.query("drain_progress", result_type=DrainProgress)
    sizes = {m.region: m.store_bytes for m in progress.planned}
    assert all(size > 0 for size in sizes.values()), sizes
    assert progress.bytes_moved == sizes[562] + sizes[563] < progress.bytes_total
    assert progress.rate_bytes_per_s > 0 and progress.eta_s == 0
    found = [w.id async for w in stack.client.list_workflows("AirMovesDone = 2")]
    assert handle.id in found, found

    # the region's own migration was not disturbed: lifted, it finishes
    assert (await own.describe()).status == WorkflowExecutionStatus.RUNNING
    await cluster.stub(3).SetThrottle(pb.ThrottleRequest(bytes_per_s=0))
    finished = await own.result()
    assert finished.remove is not None and finished.remove.clean, finished
