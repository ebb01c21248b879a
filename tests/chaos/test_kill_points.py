"""The kill-point matrix: a migration under load survives a crash at every kill point.

For each of IoTDB's kill points, the process that reaches it (the worker for the
coordinator's steps, the destination, an existing peer or the leaving node for the node's) is
started armed, dies there (`[KILL POINT] NAME`, exit 137), and is restarted with the same
environment (the point has fired and does not fire again). Nothing else is touched: the
migration 1 -> 4 must complete by itself, leave the region on 2, 3 and 4 only, with equal
digests and every acknowledged write on each, node 1's replica and channels gone, and no
workflow running. A point that never fires fails its test (IoTDB's badKillPoint).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

from client.load import LoadWriter as Writer
from contracts.killpoints import ENV_POINTS, NODE_POINTS, WORKER_POINTS, KillPoint
from contracts.models import MigrationInput, MigrationResult
from stack.processes import ManagedProcess
from tests.support.chaos import died_at, restart
from tests.support.checks import assert_gone
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.migration import RegionMigrationWorkflow

pytestmark = pytest.mark.slow

K = KillPoint
WORKER = 0  # the victim is the worker process, not a node
LEAVING, COORDINATOR, PEER, DESTINATION = 1, 2, 3, 4  # the migration's roles, by node id
FINAL = [COORDINATOR, PEER, DESTINATION]
RECOVERY_S = 60.0  # after the restart, the workflow completes within this


@dataclass(frozen=True)
class Case:
    point: KillPoint
    victim: int  # a node id, or WORKER
    variant: str = ""

    @property
    def id(self) -> str:
        return f"{self.point}-{self.variant}" if self.variant else str(self.point)


CASES = [
    Case(K.DESTINATION_CREATE_LOCAL_PEER, DESTINATION),
    # reached by every existing peer: a plain one, and the coordinator (its snapshot channel)
    Case(K.ORIGINAL_ADD_PEER_DONE, PEER, "peer"),
    Case(K.ORIGINAL_ADD_PEER_DONE, COORDINATOR, "coordinator"),
    Case(K.COORDINATOR_ADD_PEER_TRANSITION, WORKER),
    Case(K.DESTINATION_ADD_PEER_DONE, DESTINATION),
    Case(K.COORDINATOR_ADD_PEER_DONE, WORKER),
    Case(K.REMOVE_PEER_COORDINATOR_INIT, WORKER),
    Case(K.AFTER_NOTIFY_PEERS_TO_REMOVE_REPLICATE_CHANNEL, WORKER),
    Case(K.BEFORE_INACTIVATE, LEAVING),
    Case(K.AFTER_INACTIVATE, LEAVING),
    Case(K.AFTER_INACTIVE_PEER, WORKER),
    Case(K.REMOVE_PEER_COORDINATOR_FINISH, WORKER),
    Case(K.BEFORE_DELETE, LEAVING),
    Case(K.AFTER_DELETE, LEAVING),
]

_regions = itertools.count(900)  # apart from the other tests' regions


@pytest.fixture
def region() -> int:
    """A region id no other test used: workflow ids derive from it."""
    return next(_regions)


def armed(point: KillPoint) -> dict[str, str]:
    return {ENV_POINTS: point.value}


async def start_migration(
    stack: Stack, region: int, node_env: dict[int, dict[str, str]], worker_env: dict[str, str]
) -> tuple[WorkflowHandle[Any, Any], Writer]:
    """Nodes 1-4 (with their environments), the region on 1-3 under load, migration 1 -> 4."""
    cluster = stack.cluster
    for i in (LEAVING, COORDINATOR, PEER, DESTINATION):
        cluster.add_node(i, env=node_env.get(i))
    await cluster.create_region(region, [LEAVING, COORDINATOR, PEER])
    stack.start_worker(env=worker_env)
    load = LoadWriter(cluster, region, [LEAVING, COORDINATOR, PEER, DESTINATION]).start()
    await load.wait_acked(100)
    handle = await stack.start(
        RegionMigrationWorkflow.run,
        MigrationInput(
            region=region, from_node=LEAVING, to_node=DESTINATION, coordinator=COORDINATOR
        ),
    )
    return handle, load


async def assert_migrated(
    stack: Stack, region: int, handle: WorkflowHandle[Any, Any], result: object, load: Writer
) -> None:
    """The migration's end state, as docs/design.md section 7 asks of every chaos test."""
    cluster = stack.cluster
    assert isinstance(result, MigrationResult)
    assert result.remove is not None and result.remove.clean, result
    await load.wait_acked(len(load.acked) + 100)  # the region still takes writes
    acked = await load.stop()

    # membership: the region on 2, 3 and 4 only, each active, a channel to each other one
    for i in FINAL:
        info = (await cluster.regions_of(i)).get(region)
        assert info is not None, f"node {i} lost region {region}"
        assert sorted(p.node_id for p in info.peers) == FINAL, (i, info)
        assert info.active and info.installed and not info.leaving, (i, info)
        progress = await cluster.progress(i, region)
        channels = {c.receiver.node_id: c.status for c in progress.channels}
        assert channels == {j: "RUNNING" for j in FINAL if j != i}, (i, channels)
    # data: equal digests, every acknowledged write on every final replica
    await cluster.converged(region, FINAL, count=len(acked))
    for i in FINAL:
        assert await missing_points(cluster, i, region, acked) == [], f"node {i} lost writes"
    # the leaving replica: folder, channels and peer entries gone
    await assert_gone(cluster, LEAVING, region, FINAL)
    # no workflow left running: the migration completed
    status = (await handle.describe()).status
    assert status == WorkflowExecutionStatus.COMPLETED, (handle.id, status)


def test_the_matrix_covers_every_kill_point_in_its_process() -> None:
    assert {c.point for c in CASES} == set(KillPoint)
    assert len({c.id for c in CASES}) == len(CASES)
    for case in CASES:
        assert (case.victim == WORKER) == (case.point in WORKER_POINTS), case
        assert (case.victim != WORKER) == (case.point in NODE_POINTS), case


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_migration_survives_a_crash_at(stack: Stack, region: int, case: Case) -> None:
    env = armed(case.point)
    if case.victim == WORKER:
        handle, load = await start_migration(stack, region, {}, env)
    else:
        handle, load = await start_migration(stack, region, {case.victim: env}, {})
    victim: ManagedProcess = (
        stack.workers["worker"] if case.victim == WORKER else stack.cluster.nodes[case.victim]
    )

    outcome = asyncio.ensure_future(handle.result())
    try:
        await died_at(victim, case.point, outcome)
        await restart(victim)  # same environment: the point has fired, it goes on
        async with asyncio.timeout(RECOVERY_S):
            result = await outcome
    finally:
        outcome.cancel()
    await assert_migrated(stack, region, handle, result, load)
    assert victim.alive(), f"{victim.name} died again:\n{victim.output()[-4000:]}"


async def test_a_leaving_node_restarted_while_a_peer_is_down_keeps_its_writes_for_it(
    stack: Stack, region: int
) -> None:
    """Node 1 crashes mid-removal and restarts while node 3 is down. Its writes reach node 3
    only through its own channel, so it may delete its replica by itself (as a restarted
    removed node does) only once node 3 is back and holds them; the removal then finds it gone.
    """
    cluster = stack.cluster
    point = K.AFTER_NOTIFY_PEERS_TO_REMOVE_REPLICATE_CHANNEL
    handle, load = await start_migration(stack, region, {}, armed(point))
    worker, leaving, peer = stack.workers["worker"], cluster.nodes[LEAVING], cluster.nodes[PEER]

    outcome = asyncio.ensure_future(handle.result())
    try:
        # the others dropped their channels to node 1, which is still active, taking writes
        await died_at(worker, point, outcome)
        peer.kill()
        before = (await cluster.progress(LEAVING, region)).max_assigned
        await eventually(
            lambda: cluster.progress(LEAVING, region),
            lambda p: p.max_assigned > before,
            what="node 1 taking writes that node 3 misses",
        )
        leaving.kill()
        await restart(leaving)
        await eventually(
            lambda: asyncio.to_thread(leaving.output),
            lambda out: f"waiting for nodes [{PEER}]" in out,
            what="node 1 waiting for node 3 before deleting its replica",
        )
        assert cluster.region_dir(LEAVING, region).exists()
        await restart(peer)
        await restart(worker)
        async with asyncio.timeout(RECOVERY_S):
            result = await outcome
    finally:
        outcome.cancel()
    await assert_migrated(stack, region, handle, result, load)
