"""Draining a node: every region moves off it, a bounded number at once, pausable."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import is_cancelled_exception

from contracts.columns import Row
from contracts.ids import region_workflow_id
from contracts.models import DrainInput, DrainResult, MigrationInput, MovesProgress, Phase
from tests.support.chaos import restart
from tests.support.cluster import HELD
from tests.support.load import LoadWriter, missing_points
from tests.support.moves import awaits_snapshot, held_transfer
from tests.support.node_logs import most_at_once, most_at_once_into, move_spans, replica_events
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.drain import DrainNodeWorkflow
from workflows.migration import RegionMigrationWorkflow

ON_123 = [501, 502, 503]
ON_124 = [504, 505, 506]


async def drain_progress(handle: WorkflowHandle[Any, Any]) -> MovesProgress:
    progress = await handle.query(DrainNodeWorkflow.moves_progress)
    return progress


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

    handle = await stack.operation(DrainNodeWorkflow.run, DrainInput(node=1, max_concurrent=1))
    paused = await handle.execute_update(DrainNodeWorkflow.pause)
    assert paused.paused
    # a move that started before the pause goes on; once it is over, none starts
    still = await eventually(
        lambda: drain_progress(handle),
        lambda s: bool(s.planned) and s.running == [],
        what="the paused drain with no move running",
    )
    assert {(m.region, m.to_node) for m in still.planned} == {
        *((r, 4) for r in ON_123),
        *((r, 3) for r in ON_124),
    }
    assert still.left >= 5 and len(move_spans(cluster)) == len(still.done), still
    # still paused across more writes and a new bound (which re-checks every waiting move)
    await load.wait_acked(len(load.acked) + 500)
    later = await drain_progress(handle)
    await handle.execute_update(DrainNodeWorkflow.set_max_concurrent, 2)
    bounded = await drain_progress(handle)
    for s in (later, bounded):
        assert (s.running, s.done, s.left) == ([], still.done, still.left), s
    created = [e for e in replica_events(cluster) if e.what == "created inactive"]
    assert len(created) == len(still.done), created  # nor did any node see one start

    await handle.execute_update(DrainNodeWorkflow.resume)
    result = await stack.client.get_workflow_handle(handle.id, result_type=DrainResult).result()
    assert not result.failed and len(result.moved) == 6, result
    spans = move_spans(cluster)
    assert sorted(s.region for s in spans) == [*ON_123, *ON_124], spans
    assert most_at_once(spans) == 2, spans  # the new bound, reached and held, on the nodes

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


BULK = 2000  # points in each region of the bound test: small, a hold makes a transfer last


async def test_the_bound_holds_on_the_nodes_and_a_worker_kill_mid_drain(stack: Stack) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3, 4, 5):
        cluster.add_node(i)
    regions = list(range(511, 519))
    bulk: dict[int, list[Row]] = {}
    for region in regions:
        await cluster.create_region(region, [1, 2, 3])
        writer = LoadWriter(cluster, region, [1], series="bulk", batch=BULK)
        await writer.run(count=BULK)
        bulk[region] = writer.acked
    for region in regions:
        await cluster.converged(region, [1, 2, 3], count=BULK)
    stack.start_worker()

    handle = await stack.operation(
        DrainNodeWorkflow.run, DrainInput(node=1, max_concurrent=2, max_per_node=1)
    )
    await eventually(
        lambda: drain_progress(handle),
        lambda s: len(s.done) >= 2,
        timeout=60,
        what="two regions moved",
    )
    # the regions' holders hold their transfers: the kill lands mid-transfer every time
    await cluster.throttle([1, 2, 3], HELD)
    region, to_node = await held_transfer(stack, handle)
    stack.workers["worker"].kill()
    assert await awaits_snapshot(cluster, to_node, region), f"region {region} moved before the kill"
    await restart(stack.workers["worker"])
    await cluster.throttle([1, 2, 3], 0)
    result = await stack.client.get_workflow_handle(handle.id, result_type=DrainResult).result()
    assert not result.failed and len(result.moved) == len(regions), result

    assert await cluster.regions_of(1) == {}
    spans = move_spans(cluster)  # from the nodes' clocks, not the workflow's books
    assert sorted(s.region for s in spans) == regions, spans
    assert most_at_once(spans) <= 2, spans
    into = most_at_once_into(spans)
    assert set(into) == {4, 5} and max(into.values()) <= 1, (into, spans)  # max_per_node
    for region in regions:  # whole on each final replica
        holders = [i for i in (2, 3, 4, 5) if region in await cluster.regions_of(i)]
        assert len(holders) == 3, (region, holders)
        await cluster.converged(region, holders, count=BULK)
        for i in holders:
            assert await missing_points(cluster, i, region, bulk[region]) == [], (region, i)


async def stalled_ids(client: Client) -> set[str]:
    """The workflows whose AirStalled search attribute is true, from Temporal visibility."""
    return {w.id async for w in client.list_workflows("AirStalled = true")}


async def test_cancelling_a_drain_rolls_back_the_moves_in_flight(stack: Stack) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    small, regions = 521, list(range(521, 525))
    counts = {r: 200 if r == small else 20_000 for r in regions}
    for region in regions:
        await cluster.create_region(region, [1, 2, 3])
        bulk = LoadWriter(cluster, region, [1], series="bulk", batch=5000)
        await bulk.run(count=counts[region])
        await cluster.converged(region, [1, 2, 3], count=counts[region])
    # 50 kB/s: a region of 20,000 points takes over 8 s to move
    await cluster.throttle([1, 2, 3, 4], 50_000)
    stack.start_worker()

    # the small region moves first, alone (a coordinator's throttle is shared: it would queue
    # behind a large snapshot), then two large ones at once; a snapshot's lag does not shrink
    # until it is installed: stalled after a second
    handle = await stack.operation(
        DrainNodeWorkflow.run, DrainInput(node=1, max_concurrent=1, stall_after_s=1)
    )
    await eventually(
        lambda: drain_progress(handle), lambda s: s.done == [small], what="the small one moved"
    )
    # held: no large move can reach its activation before the cancel
    await cluster.throttle([1, 2, 3, 4], HELD)
    await handle.execute_update(DrainNodeWorkflow.set_max_concurrent, 2)

    async def progress_and_node_4() -> tuple[MovesProgress, set[int]]:
        return await drain_progress(handle), set(await cluster.regions_of(4))

    def ready(seen: tuple[MovesProgress, set[int]]) -> bool:
        s, on_4 = seen
        return (
            s.done == [small] and len(s.running) == 2 and set(s.running) <= on_4 and bool(s.stalled)
        )

    state, _ = await eventually(
        progress_and_node_4,
        ready,
        timeout=60,
        what="the small region moved, two in flight on node 4, a stalled one among them",
    )
    region, why = next(iter(state.stalled.items()))
    assert region in state.running and "has not shrunk" in why, state
    assert "nodes [4] await their snapshot" in why, state
    in_flight = {region_workflow_id(r) for r in state.running}
    # their histories too, for the replay test (the stall relayed through a migration)
    stack.handles += [stack.client.get_workflow_handle(i) for i in sorted(in_flight)]
    await eventually(  # the drain and a migration, both findable as stalled
        lambda: stalled_ids(stack.client),
        lambda ids: handle.id in ids and bool(ids & in_flight),
        what="AirStalled in visibility",
    )
    # what the drain and node 4 say right before the cancel decides where each region ends
    at_cancel = await drain_progress(handle)
    activated = {e.region for e in replica_events(cluster) if e.what == "activated"}
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failed:
        async with asyncio.timeout(120):  # the moves in flight roll back
            await handle.result()
    assert is_cancelled_exception(failed.value.cause)
    assert (await drain_progress(handle)).stalled == {}
    await eventually(  # each rolled back: none is stalled any more
        lambda: stalled_ids(stack.client),
        lambda ids: not ids & {handle.id, *in_flight},
        what="AirStalled cleared",
    )

    finished, running = set(at_cancel.done), set(at_cancel.running)
    unstarted = set(regions) - finished - running - set(at_cancel.failed)
    assert (finished, len(running), len(unstarted)) == ({small}, 2, 1), at_cancel
    assert not running & activated, (running, activated)  # in flight, before activation
    on_4 = [(e.region, e.what) for e in replica_events(cluster) if e.node == 4]
    for region in regions:
        holders = [i for i in (1, 2, 3, 4) if region in await cluster.regions_of(i)]
        seen_on_4 = [what for r, what in on_4 if r == region]
        if region in finished:  # moved: it stays moved
            assert holders == [2, 3, 4], (region, holders)
        elif region in running:  # rolled back: its new replica made, then removed
            assert holders == [1, 2, 3], (region, holders)
            assert seen_on_4 == ["created inactive", "deleted"], (region, seen_on_4)
        else:  # never started: node 4 never had it
            assert holders == [1, 2, 3] and seen_on_4 == [], (region, holders, seen_on_4)
        await cluster.converged(region, holders, count=counts[region], timeout=120)


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
    # writes to every region throughout, two calls a second each (twenty writers at a hundred
    # points a second saturated this machine: the test took 54 s against 15 s at twenty)
    loads = [LoadWriter(cluster, r, nodes, batch=10).start(rate=20) for r in regions]
    for load in loads:
        await load.wait_acked(20)

    handle = await stack.operation(
        DrainNodeWorkflow.run, DrainInput(node=1, max_concurrent=4, max_per_node=2)
    )
    result = await stack.client.get_workflow_handle(handle.id, result_type=DrainResult).result()
    assert not result.failed and sorted(m.region for m in result.moved) == regions, result

    assert await cluster.regions_of(1) == {}
    spans = move_spans(cluster)  # from the nodes' clocks, not the workflow's books
    assert sorted(s.region for s in spans) == regions, spans
    assert most_at_once(spans) <= 4, spans
    assert max(most_at_once_into(spans).values()) <= 2, spans  # max_per_node
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
    await cluster.throttle([3], HELD)
    own = await stack.start(
        RegionMigrationWorkflow.run,
        MigrationInput(region=busy, from_node=1, to_node=5, coordinator=3),
    )
    await eventually(
        lambda: stack.progress(own),
        lambda p: p.phase == Phase.TRANSFERRING,
        what="region 561's own migration transferring",
    )

    handle = await stack.operation(DrainNodeWorkflow.run, DrainInput(node=1, max_concurrent=3))
    result = await stack.client.get_workflow_handle(handle.id, result_type=DrainResult).result()
    assert sorted(m.region for m in result.moved) == others, result
    assert "another change of region 561 is running" in result.failed[busy], result

    progress = await drain_progress(handle)
    sizes = {m.region: m.store_bytes for m in progress.planned}
    assert all(size > 0 for size in sizes.values()), sizes
    assert progress.bytes_moved == sizes[562] + sizes[563] < progress.bytes_total
    assert progress.rate_bytes_per_s > 0 and progress.eta_s == 0
    found = [w.id async for w in stack.client.list_workflows("AirMovesDone = 2")]
    assert handle.id in found, found

    # the region's own migration was not disturbed: lifted, it finishes
    assert (await own.describe()).status == WorkflowExecutionStatus.RUNNING
    await cluster.throttle([3], 0)
    finished = await own.result()
    assert finished.remove is not None and finished.remove.clean, finished
