"""Kills outside the kill points: the worker at random moments, the destination mid-transfer or
for good, one of several workers. Each run ends with every acknowledged write on every replica."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.history.v1 import (
    ActivityTaskCompletedEventAttributes,
    ActivityTaskStartedEventAttributes,
)
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import WorkflowFailureError, WorkflowHandle

from client.load import LoadWriter as Writer
from contracts.errors import root_cause
from contracts.models import MigrationInput, MigrationResult, Phase
from stack.processes import WorkerProcess
from tests.support.chaos import restart
from tests.support.checks import assert_gone
from tests.support.cluster import HELD, Cluster
from tests.support.load import LoadWriter, missing_points
from tests.support.moves import awaits_snapshot
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.migration import RegionMigrationWorkflow

pytestmark = pytest.mark.slow
_regions = itertools.count(300)
THROTTLE = ["--transfer-rate-limit", "0.5"]  # MB/s: a snapshot of a few MB takes seconds
THROTTLE_BYTES_PER_S = 0.5e6
HOLDERS = [1, 2, 3]  # the region's replicas: a snapshot or channel to node 4 starts here


async def setup(stack: Stack, nodes: int = 4, preload: int = 40_000) -> tuple[int, Writer]:
    """Nodes 1..n (throttled), a region on 1-3 holding `preload` points (a few MB, so its
    snapshot takes seconds), and a writer that goes on, slower than the throttle."""
    for i in range(1, nodes + 1):
        stack.cluster.add_node(i, extra_args=THROTTLE)
    region = next(_regions)
    await stack.cluster.create_region(region, [1, 2, 3])
    bulk = LoadWriter(stack.cluster, region, [1], series="bulk", batch=5000)
    await bulk.run(count=preload)
    await stack.cluster.converged(region, [1, 2, 3], count=preload, timeout=120)
    load = LoadWriter(stack.cluster, region, [1, 2, 3, 4]).start(rate=1000)
    await load.wait_acked(200)
    load.acked[:0] = bulk.acked  # every acknowledged point, the bulk ones too
    return region, load


async def transferring(stack: Stack, handle: WorkflowHandle[Any, Any]) -> None:
    await eventually(
        lambda: stack.progress(handle), lambda p: p.phase == Phase.TRANSFERRING, timeout=60
    )


async def all_acked_on(cluster: Cluster, region: int, load: Writer, final: list[int]) -> None:
    acked = await load.stop()
    await cluster.converged(region, final, count=len(acked), timeout=120)
    for i in final:
        assert await missing_points(cluster, i, region, acked) == [], f"node {i} lost writes"


async def migrated(cluster: Cluster, handle: WorkflowHandle[Any, Any], region: int) -> None:
    result = await handle.result()
    assert isinstance(result, MigrationResult) and result.remove is not None, result
    assert result.remove.clean, result
    await assert_gone(cluster, 1, region, [2, 3, 4])


async def test_worker_killed_at_random_moments(stack: Stack) -> None:
    seed = int(os.environ.get("AIR_CHAOS_SEED") or random.randrange(1 << 32))
    print(f"AIR_CHAOS_SEED={seed}")  # replay a failure with this seed
    rng = random.Random(seed)
    region, load = await setup(stack)
    stack.start_worker()
    handle = await stack.start(
        RegionMigrationWorkflow.run, MigrationInput(region=region, from_node=1, to_node=4)
    )
    for _ in range(3):
        await asyncio.sleep(rng.uniform(0.0, 1.5))  # a random moment: the point of the test
        stack.workers["worker"].kill()
        await restart(stack.workers["worker"])
    await migrated(stack.cluster, handle, region)
    await all_acked_on(stack.cluster, region, load, [2, 3, 4])


async def test_destination_killed_mid_transfer_and_restarted(stack: Stack) -> None:
    region, load = await setup(stack, preload=5_000)  # held, it needs no volume to be slow
    # the holders' transfers held (1 byte/s): the snapshot to node 4 waits until it is killed
    await stack.cluster.throttle(HOLDERS, HELD)
    stack.start_worker()
    handle = await stack.start(
        RegionMigrationWorkflow.run, MigrationInput(region=region, from_node=1, to_node=4)
    )
    await transferring(stack, handle)
    assert await awaits_snapshot(stack.cluster, 4, region), "not mid-transfer: installed"
    stack.cluster.nodes[4].kill()
    await restart(stack.cluster.nodes[4])
    await stack.cluster.throttle(HOLDERS, THROTTLE_BYTES_PER_S)
    await migrated(stack.cluster, handle, region)
    await all_acked_on(stack.cluster, region, load, [2, 3, 4])


async def identities(stack: Stack, workflow_ids: list[str]) -> dict[str, set[str]]:
    """Per workflow id, the workers that ran its tasks, from its history."""
    ran: dict[str, set[str]] = {}
    for workflow_id in workflow_ids:
        history = await stack.client.get_workflow_handle(workflow_id).fetch_history()
        ran[workflow_id] = {
            e.workflow_task_started_event_attributes.identity
            or e.activity_task_started_event_attributes.identity
            for e in history.events
        } - {""}
    return ran


async def running_activity(stack: Stack, workflow_id: str) -> PendingActivityInfo | None:
    """The activity of `workflow_id` a worker is running right now, if any."""
    description = await stack.client.get_workflow_handle(workflow_id).describe()
    started = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    running = [a for a in description.raw_description.pending_activities if a.state == started]
    return running[0] if running else None


async def finished_attempt(
    stack: Stack, workflow_id: str, activity_id: str
) -> tuple[ActivityTaskStartedEventAttributes, ActivityTaskCompletedEventAttributes]:
    """From `workflow_id`'s history: the attempt of activity `activity_id` that completed it
    (the started event records the last attempt, as the activity ends), and its completion."""
    events = (await stack.client.get_workflow_handle(workflow_id).fetch_history()).events
    scheduled = next(
        e.event_id
        for e in events
        if e.activity_task_scheduled_event_attributes.activity_id == activity_id
    )
    started = [
        e.activity_task_started_event_attributes
        for e in events
        if e.activity_task_started_event_attributes.scheduled_event_id == scheduled
    ]
    completed = [
        e.activity_task_completed_event_attributes
        for e in events
        if e.activity_task_completed_event_attributes.scheduled_event_id == scheduled
    ]
    assert len(started) == len(completed) == 1, (activity_id, started, completed)
    return started[0], completed[0]


@contextlib.contextmanager
def frozen(workers: list[WorkerProcess]) -> Iterator[None]:
    """SIGSTOP the workers, SIGCONT them after: what Temporal says they run holds meanwhile."""
    for w in workers:
        w.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for w in workers:
            if w.alive():
                w.send_signal(signal.SIGCONT)


async def kill_the_waiter(stack: Stack, workflow_id: str) -> tuple[str, PendingActivityInfo]:
    """SIGKILL the worker running `workflow_id`'s transfer wait right now; return it and the
    attempt. The workers are frozen while it is found, so the attempt cannot end in between."""
    workers = list(stack.workers.values())
    while True:
        await eventually(  # without freezing: the wait is running, or its next slice will be
            lambda: running_activity(stack, workflow_id),
            lambda a: a is not None and a.activity_type.name == "wait_transfer_complete",
            what="a worker running the transfer wait",
        )
        with frozen(workers):
            wait = await running_activity(stack, workflow_id)
            if wait is not None and wait.activity_type.name == "wait_transfer_complete":
                victim = wait.last_worker_identity
                stack.workers[victim].kill()
                return victim, wait
        # the slice ended between the two looks: look again


async def test_several_workers_share_many_regions_and_one_dies(stack: Stack) -> None:
    region, load = await setup(stack)
    others = [next(_regions) for _ in range(7)]
    for r in others:
        await stack.cluster.create_region(r, [1, 2, 3])
        await LoadWriter(stack.cluster, r, [1], series="bulk", batch=1000).run(count=3000)
    names = ["worker-a", "worker-b", "worker-c"]
    for name in names:
        stack.start_worker(name)
    # region's snapshot comes from node 2, held there (1 byte/s) until the worker is killed:
    # its transfer wait is running when the test looks, however fast this machine
    await stack.cluster.throttle([2], HELD)
    handles = [
        await stack.start(
            RegionMigrationWorkflow.run,
            MigrationInput(region=region, from_node=1, to_node=4, coordinator=2),
        )
    ]
    handles += [
        await stack.start(
            RegionMigrationWorkflow.run, MigrationInput(region=r, from_node=1, to_node=4)
        )
        for r in others
    ]
    ids = [h.id for h in handles]

    # mid-flight: several workers have run tasks, and region's transfer is being awaited
    await transferring(stack, handles[0])
    ran = await eventually(
        lambda: identities(stack, ids),
        lambda r: len(set().union(*r.values())) >= 2,
        timeout=60,
        what="tasks run by at least two workers",
    )
    assert set().union(*ran.values()) <= set(names), ran
    victim, wait = await kill_the_waiter(stack, handles[0].id)
    assert victim in names, wait
    await stack.cluster.throttle([2], THROTTLE_BYTES_PER_S)

    for r, handle in zip((region, *others), handles, strict=True):
        await migrated(stack.cluster, handle, r)
    for r in others:
        await stack.cluster.converged(r, [2, 3, 4], count=3000)
    await all_acked_on(stack.cluster, region, load, [2, 3, 4])
    # the wait the victim was running when it died: another attempt, by a survivor, ended it
    survivors = set(names) - {victim}
    started, completed = await finished_attempt(stack, handles[0].id, wait.activity_id)
    assert started.attempt > wait.attempt and started.identity in survivors, (victim, started)
    assert completed.identity == started.identity, (victim, completed)


async def test_destination_dead_for_good_rolls_back_in_bounded_time(stack: Stack) -> None:
    region, load = await setup(stack)
    stack.start_worker()
    request = MigrationInput(region=region, from_node=1, to_node=4, down_timeout_s=5)
    handle = await stack.start(RegionMigrationWorkflow.run, request)
    await transferring(stack, handle)
    stack.cluster.nodes[4].kill()
    with pytest.raises(WorkflowFailureError) as failed:
        async with asyncio.timeout(90):  # the bound: down_timeout_s, then the rollback
            await handle.result()
    assert "unreachable" in root_cause(failed.value), failed.value
    for i in (1, 2, 3):  # the original cluster, and nothing of node 4 on it
        progress = await stack.cluster.progress(i, region)
        assert sorted(p.node_id for p in progress.peers) == [1, 2, 3]
        assert 4 not in {c.receiver.node_id for c in progress.channels}
    await all_acked_on(stack.cluster, region, load, [1, 2, 3])
    # node 4 comes back: it learns it is no peer and deletes its half-made replica
    await restart(stack.cluster.nodes[4])
    await eventually(
        lambda: stack.cluster.regions_of(4), lambda regions: region not in regions, timeout=60
    )
