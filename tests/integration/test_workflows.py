"""The membership workflows on a real Temporal dev server, real nodes and a real worker."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import signal
from typing import Any

import grpc
import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, is_cancelled_exception

from client.starter import RegionBusy, RequestRefused
from contracts.ids import region_workflow_id
from contracts.models import (
    AddPeerInput,
    AddPeerResult,
    MigrationInput,
    MigrationResult,
    Phase,
    Progress,
    RemovePeerInput,
    RemovePeerResult,
)
from protos import air_node_pb2 as pb
from stack.processes import temporal_binary
from tests.support.checks import assert_gone
from tests.support.cluster import HELD, Cluster, status_of
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.add_peer import AddPeerWorkflow
from workflows.migration import RegionMigrationWorkflow
from workflows.remove_peer import RemovePeerWorkflow

_regions = itertools.count(100)


@pytest.fixture
def region() -> int:
    """A region id no other test used: workflow ids derive from it, and histories must not mix."""
    return next(_regions)


async def test_migration_under_load(stack: Stack, region: int) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    await cluster.create_region(region, [1, 2, 3])
    stack.start_worker()
    load = LoadWriter(cluster, region, [1, 2, 3, 4]).start()
    await load.wait_acked(200)

    handle = await stack.start(
        RegionMigrationWorkflow.run, MigrationInput(region=region, from_node=1, to_node=4)
    )
    result = await handle.result()
    assert isinstance(result, MigrationResult)
    assert result.remove is not None and result.remove.clean, result
    await load.wait_acked(len(load.acked) + 200)
    acked = await load.stop()

    await cluster.converged(region, [2, 3, 4], count=len(acked))
    for i in (2, 3, 4):
        assert await missing_points(cluster, i, region, acked) == []
    await assert_gone(cluster, 1, region, [2, 3, 4])


async def test_remove_peer_alone(stack: Stack, region: int) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(region, [1, 2, 3])
    stack.start_worker()
    load = LoadWriter(cluster, region, [1, 2, 3]).start()
    await load.wait_acked(200)

    handle = await stack.start(RemovePeerWorkflow.run, RemovePeerInput(region=region, peer=2))
    result = await handle.result()
    assert isinstance(result, RemovePeerResult)
    assert result.clean and result.peers == [1, 3], result
    assert result.applied_from_leaving == result.leaving_max_assigned
    acked = await load.stop()

    await cluster.converged(region, [1, 3], count=len(acked))
    for i in (1, 3):
        assert await missing_points(cluster, i, region, acked) == []
    await assert_gone(cluster, 2, region, [1, 3])


async def test_add_peer_alone(stack: Stack, region: int) -> None:
    cluster = stack.cluster
    for i in (1, 2):
        cluster.add_node(i)
    await cluster.create_region(region, [1])
    stack.start_worker()
    load = LoadWriter(cluster, region, [1, 2]).start()
    await load.wait_acked(200)

    handle = await stack.start(AddPeerWorkflow.run, AddPeerInput(region=region, new_peer=2))
    result = await handle.result()
    assert isinstance(result, AddPeerResult)
    assert (result.peers, result.coordinator) == ([1, 2], 1)
    await load.wait_acked(len(load.acked) + 200)
    acked = await load.stop()

    await cluster.converged(region, [1, 2], count=len(acked))
    for i in (1, 2):
        assert await missing_points(cluster, i, region, acked) == []
    assert (await cluster.progress(2, region)).max_assigned > 0, "node 2 took no user write"


BAD_MIGRATIONS = {  # (from, to), what the error says
    "unknown region": ((1, 4), "does not exist"),
    "from not a peer": ((4, 3), "not a peer"),
    "to already a peer": ((1, 2), "already a peer"),
    "from equals to": ((1, 1), "same node"),
    "unknown node": ((1, 9), "not in the cluster"),
    "destination down": ((1, 5), "cannot be reached"),
}


async def scheduled_activities(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The activity types the workflow ran, local activities (history markers) included."""
    names = []
    for e in (await handle.fetch_history()).events:
        if e.HasField("activity_task_scheduled_event_attributes"):
            names.append(e.activity_task_scheduled_event_attributes.activity_type.name)
        elif e.marker_recorded_event_attributes.marker_name == "core_local_activity":
            data = e.marker_recorded_event_attributes.details["data"].payloads[0].data
            names.append(json.loads(data)["activity_type"])
    return names


async def peer_lists(cluster: Cluster, ids: list[int]) -> dict[int, list[tuple[int, list[int]]]]:
    """Each node's regions, each with its peer list."""
    lists = {}
    for i in ids:
        regions = await cluster.regions_of(i)
        lists[i] = sorted((r, sorted(p.node_id for p in info.peers)) for r, info in regions.items())
    return lists


async def cluster_state(cluster: Cluster, ids: list[int], region: int) -> list[object]:
    """The peer lists, and the digest of each replica of `region`."""
    lists = await peer_lists(cluster, ids)
    digests = [(await cluster.digest(i, region)).hash for i in ids if region in dict(lists[i])]
    return [lists, digests]


async def test_bad_input_fails_fast_and_changes_nothing(stack: Stack, region: int) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    cluster.add_node(5, start=False)  # in the cluster file, never started
    await cluster.create_region(region, [1, 2, 3])
    await cluster.stub(1).Write(pb.WriteRequest(region=region, points=[pb.Point(series="a")]))
    await cluster.converged(region, [1, 2, 3], count=1)
    stack.start_worker()
    before = await cluster_state(cluster, [1, 2, 3, 4], region)

    for case, ((source, destination), message) in BAD_MIGRATIONS.items():
        target = region + 1000 if case == "unknown region" else region
        request = MigrationInput(region=target, from_node=source, to_node=destination)
        with pytest.raises(RequestRefused) as refused:  # to the starter's face
            await stack.start(RegionMigrationWorkflow.run, request)
        assert message in str(refused.value), (case, refused.value)
        handle = stack.client.get_workflow_handle(region_workflow_id(target))
        stack.handles.append(handle)
        with pytest.raises(WorkflowFailureError) as failed:  # and the workflow failed
            await handle.result()
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError), case
        assert cause.type == "InvalidRequest", (case, cause)
        assert message in cause.message, (case, cause.message)
        assert await scheduled_activities(handle) == ["describe_region"], case

    assert await cluster_state(cluster, [1, 2, 3, 4], region) == before


async def test_second_change_of_a_busy_region_is_refused(stack: Stack, region: int) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(region, [1, 2])
    # no worker yet: the first migration stays running, unvalidated
    request = MigrationInput(region=region, from_node=1, to_node=3)
    first = await stack.start(RegionMigrationWorkflow.run, request, validate_within=None)
    unread: list[str] = []  # an error left in a future no one reads is logged when it is freed
    asyncio.get_running_loop().set_exception_handler(lambda _, c: unread.append(c["message"]))
    with pytest.raises(RegionBusy) as refused:
        await stack.start(RemovePeerWorkflow.run, RemovePeerInput(region=region, peer=2))
    text = str(refused.value)
    assert f"region {region} already has a membership change running" in text
    assert "RegionMigrationWorkflow" in text and first.id in text
    del refused
    gc.collect()
    await asyncio.sleep(0)
    assert unread == []


async def fill(cluster: Cluster, region: int, node_id: int, points: int, batch: int = 5000) -> None:
    for start in range(0, points, batch):
        rows = [
            pb.Point(series=f"f{t % 10}", timestamp=t, value=t) for t in range(start, start + batch)
        ]
        await cluster.stub(node_id).Write(pb.WriteRequest(region=region, points=rows))


FILLED = 60_000  # points in a held region


async def held_region(stack: Stack, region: int) -> Cluster:
    """Nodes 1-3, a region on 1 and 2 holding a few MB whose transfers are held (nodes 1 and 2
    throttled to `HELD`) until the test lifts the throttle, and a worker."""
    cluster = stack.cluster
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(region, [1, 2])
    await fill(cluster, region, 1, FILLED)
    await cluster.converged(region, [1, 2], count=FILLED, timeout=120)
    await cluster.throttle([1, 2], HELD)
    stack.start_worker()
    return cluster


async def wait_for_phase(stack: Stack, handle: WorkflowHandle[Any, Any], phase: Phase) -> Progress:
    return await eventually(
        lambda: stack.progress(handle), lambda p: p.phase == phase, what=f"phase {phase}"
    )


async def test_cancel_mid_transfer_leaves_the_cluster_as_before(stack: Stack, region: int) -> None:
    cluster = await held_region(stack, region)
    before = await peer_lists(cluster, [1, 2, 3])
    # writes to the replicas that stay, through the transfer, the cancel and the rollback
    load = LoadWriter(cluster, region, [1, 2]).start(rate=500)
    await load.wait_acked(100)

    handle = await stack.start(
        RegionMigrationWorkflow.run, MigrationInput(region=region, from_node=1, to_node=3)
    )
    await wait_for_phase(stack, handle, Phase.TRANSFERRING)
    await load.wait_acked(len(load.acked) + 100)  # mid-transfer
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert is_cancelled_exception(failed.value.cause), failed.value.cause
    assert (await stack.progress(handle)).phase == Phase.ROLLED_BACK
    await load.wait_acked(len(load.acked) + 100)  # after the rollback
    acked = await load.stop()

    assert await peer_lists(cluster, [1, 2, 3]) == before
    assert not cluster.region_dir(3, region).exists()
    for i in (1, 2):
        progress = await cluster.progress(i, region)
        assert 3 not in {c.receiver.node_id for c in progress.channels}
    await cluster.throttle([1, 2], 0)  # the writes held between the two go through
    await cluster.converged(region, [1, 2], count=FILLED + len(acked))
    for i in (1, 2):
        assert await missing_points(cluster, i, region, acked) == [], i


async def test_remove_a_peer_that_is_down_then_it_comes_back(stack: Stack, region: int) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(region, [1, 2, 3])
    for i in (1, 2, 3):
        await cluster.stub(i).Write(
            pb.WriteRequest(region=region, points=[pb.Point(series=f"n{i}")])
        )
    await cluster.converged(region, [1, 2, 3], count=3)
    stack.start_worker()
    cluster.nodes[3].kill()

    handle = await stack.start(
        RemovePeerWorkflow.run, RemovePeerInput(region=region, peer=3, down_timeout_s=1)
    )
    result = await handle.result()
    assert isinstance(result, RemovePeerResult)
    assert not result.clean and "inactivate" in result.skipped_steps
    assert result.applied_from_leaving == 1 and "lost" in result.message

    cluster.nodes[3].start()
    write = pb.WriteRequest(region=region, points=[pb.Point(series="late")])

    async def refused_until_gone() -> bool:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await cluster.stub(3).Write(write)
        # confirming, retiring (leaving) or gone: never a write taken
        assert status_of(refused.value) in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.NOT_FOUND,
        )
        return (
            region not in await cluster.regions_of(3) and not cluster.region_dir(3, region).exists()
        )

    await eventually(refused_until_gone, what="node 3 deleting its stale replica")
    await cluster.converged(region, [1, 2], count=3)


async def test_progress_is_visible_as_it_moves(stack: Stack, region: int) -> None:
    cluster = await held_region(stack, region)

    handle = await stack.start(
        RegionMigrationWorkflow.run, MigrationInput(region=region, from_node=1, to_node=3)
    )
    seen: list[Phase] = []

    async def watch() -> Phase:
        phase = (await stack.progress(handle)).phase
        if not seen or seen[-1] != phase:
            seen.append(phase)
        return phase

    transferring = await eventually(
        lambda: stack.progress(handle),
        lambda p: p.phase == Phase.TRANSFERRING and p.lag is not None,
        what="a lag while transferring",
    )
    assert transferring.lag is not None and transferring.lag > 0, transferring  # a snapshot's
    details = await current_details(handle)
    assert "phase: **TRANSFERRING**" in details and "lag: " in details, details
    region_query = f"AirRegion = {region} AND AirPhase = 'TRANSFERRING'"
    await eventually(
        lambda: _ids(stack, region_query), lambda ids: handle.id in ids, what="search by phase"
    )
    await cluster.throttle([1, 2], 0)
    await eventually(watch, lambda p: p == Phase.DONE, timeout=120, what="migration done")
    await handle.result()

    assert seen[0] in (Phase.VALIDATING, Phase.TRANSFERRING) and seen[-1] == Phase.DONE
    done = await stack.progress(handle)
    assert {Phase.TRANSFERRING, Phase.DELETING} <= set(done.phase_seconds), done.phase_seconds
    held = done.phase_seconds[Phase.TRANSFERRING]  # the longest: held until the lift
    assert held == max(done.phase_seconds.values()) and Phase.DONE not in done.phase_seconds
    activated = done.steps_done.index("activate node 3")
    assert activated < done.steps_done.index(f"delete region {region} on node 1"), done.steps_done
    summaries = await activity_summaries(handle)
    assert any(s.startswith("wait until nodes [3] applied") for s in summaries), summaries
    assert any(s.startswith(f"create region {region} on node 3") for s in summaries), summaries
    touching_3 = await _ids(stack, f"AirNodes = '3' AND AirRegion = {region}")
    assert handle.id in touching_3


async def activity_summaries(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The summaries the UI shows beside activities (local ones are markers)."""
    kinds = {"activity_task_scheduled_event_attributes", "marker_recorded_event_attributes"}
    return [
        json.loads(e.user_metadata.summary.data)
        for e in (await handle.fetch_history()).events
        if e.WhichOneof("attributes") in kinds and e.user_metadata.HasField("summary")
    ]


async def _ids(stack: Stack, query: str) -> set[str]:
    return {w.id async for w in stack.client.list_workflows(query)}


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


async def test_the_stock_temporal_cli_starts_a_migration(stack: Stack, region: int) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(region, [1, 2])
    stack.start_worker()
    request = {"region": region, "from_node": 1, "to_node": 3}
    started = await asyncio.create_subprocess_exec(
        temporal_binary(), "workflow", "start",
        "--address", stack.temporal_address,
        "--type", "RegionMigrationWorkflow",
        "--task-queue", stack.task_queue,
        "--workflow-id", region_workflow_id(region),
        "--input", json.dumps(request),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await started.communicate()
    assert started.returncode == 0, stderr.decode()
    handle = stack.client.get_workflow_handle(
        region_workflow_id(region), result_type=MigrationResult
    )
    result = await handle.result()
    assert result.remove is not None and result.remove.peers == [2, 3]


async def test_cancel_during_the_removal_finishes_it(stack: Stack, region: int) -> None:
    cluster = await held_region(stack, region)
    # writes through the replicas that stay, never the frozen one (node 3 refuses them until
    # it is active: they go to node 2)
    load = LoadWriter(cluster, region, [2, 3]).start(rate=500)
    await load.wait_acked(100)
    request = MigrationInput(region=region, from_node=1, to_node=3, coordinator=2)
    handle = await stack.start(RegionMigrationWorkflow.run, request)
    leaving = cluster.nodes[1]
    # node 1 frozen while the snapshot comes from node 2: the addition needs nothing more of
    # it, and the removal's inactivation waits for it
    await wait_for_phase(stack, handle, Phase.TRANSFERRING)
    leaving.send_signal(signal.SIGSTOP)
    try:
        await cluster.throttle([2], 0)
        await wait_for_phase(stack, handle, Phase.INACTIVATING_LEAVING_PEER)
        await handle.cancel()
        progress = await stack.progress(handle)
        assert progress.phase == Phase.INACTIVATING_LEAVING_PEER, progress  # mid-removal
        await load.wait_acked(len(load.acked) + 100)  # while it waits for the frozen node
    finally:
        leaving.send_signal(signal.SIGCONT)
    result = await handle.result()
    assert isinstance(result, MigrationResult)
    assert result.cancelled and "the removal was finished" in result.message
    assert result.remove is not None and result.remove.clean
    await load.wait_acked(len(load.acked) + 100)  # after the removal
    acked = await load.stop()
    await assert_gone(cluster, 1, region, [2, 3])
    await cluster.converged(region, [2, 3], count=FILLED + len(acked))
    for i in (2, 3):
        assert await missing_points(cluster, i, region, acked) == [], i


async def test_a_transfer_that_stops_moving_is_reported_stalled(stack: Stack, region: int) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(region, [1, 2])
    await fill(cluster, region, 1, 60_000)
    await cluster.converged(region, [1, 2], count=60_000, timeout=120)
    await cluster.throttle([1, 2], 10_000)  # the snapshot of a few MB would take minutes
    stack.start_worker()

    handle = await stack.start(
        AddPeerWorkflow.run, AddPeerInput(region=region, new_peer=3, stall_after_s=1)
    )
    stalled = await eventually(lambda: stack.progress(handle), lambda p: p.stalled, timeout=60)
    assert "STALLED" in stalled.message and "has not shrunk" in stalled.message, stalled
    assert "nodes [3] await their snapshot" in stalled.message, stalled  # what it waits for
    assert "STALLED" in await current_details(handle)

    await cluster.throttle([1, 2], 0)  # the throttle lifted, it moves again and completes
    await handle.result()
    done = await stack.progress(handle)
    assert not done.stalled and done.phase == Phase.DONE
