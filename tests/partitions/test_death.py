"""Death by more than one view, on test hosts: a node only the worker cannot reach is never
repaired; a node no one reaches is, and what it acknowledged behind the cut survives it."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from contracts.ids import repair_workflow_id
from contracts.models import (
    AutopilotInput,
    AutopilotState,
    MigrationInput,
    MigrationResult,
    Phase,
)
from stack.faults import Cut, Faults, Isolate
from stack.hosts import Network
from tests.support.cluster import HELD
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.autopilot import AutopilotWorkflow
from workflows.migration import RegionMigrationWorkflow

pytestmark = pytest.mark.slow

DEAD_AFTER_S = 6.0
PROBE_EVERY_S = 0.5
# Regions as the runs had them: every one with a replica on node 3.
REGIONS = {771: [1, 2, 3], 772: [2, 3, 4], 773: [3, 4, 5]}
MOVED = 774  # on nodes 1, 2, 4, moving from 4 onto node 3


async def five_nodes(stack: Stack) -> None:
    for i in (1, 2, 3, 4, 5):
        stack.cluster.add_node(i)
    for region, peers in REGIONS.items():
        await stack.cluster.create_region(region, peers)
    stack.start_worker()


async def status(autopilot: WorkflowHandle[Any, Any]) -> AutopilotState:
    state: AutopilotState = await autopilot.query(AutopilotWorkflow.status)
    return state


async def test_a_node_only_the_worker_cannot_reach_is_never_repaired(
    stack: Stack, network: Network
) -> None:
    """The worker cut from node 3 for three times dead_after, node 3 serving its peers and
    clients all along, a migration onto node 3 in its transfer: no repair starts; the migration
    waits, visibly, and finishes after the heal; every write acknowledged meanwhile is on every
    replica."""
    await five_nodes(stack)
    cluster, faults = stack.cluster, Faults(network)
    await cluster.create_region(MOVED, [1, 2, 4])
    autopilot = await stack.autopilot(
        AutopilotInput(dead_after_s=DEAD_AFTER_S, probe_every_s=PROBE_EVERY_S)
    )
    writers = {r: LoadWriter(cluster, r, peers).start() for r, peers in REGIONS.items()}
    for w in writers.values():
        await w.wait_acked(50)
    await cluster.throttle([1], HELD)  # the snapshot to node 3 waits in its sender
    migration = await stack.start(
        RegionMigrationWorkflow.run,
        MigrationInput(region=MOVED, from_node=4, to_node=3, coordinator=1, down_timeout_s=300),
    )
    await eventually(
        lambda: stack.progress(migration),
        lambda p: p.phase == Phase.TRANSFERRING,
        what="the migration in its transfer",
    )

    faults.apply(Cut("worker", "n3"))
    cut_at = time.monotonic()
    await cluster.throttle([1], 0)  # node 1 reaches node 3: only the worker is cut off
    unreachable = await eventually(
        lambda: status(autopilot),
        lambda s: 3 in s.unreachable,
        what="the autopilot to see node 3 reached by a peer only",
    )
    assert unreachable.down_since == {}, unreachable
    waiting = await eventually(
        lambda: stack.progress(migration),
        lambda p: "[3] do not answer the worker" in p.message,
        what="the migration to show it waits for node 3",
    )
    assert waiting.phase == Phase.TRANSFERRING, waiting
    three_times = await eventually(
        lambda: status(autopilot),
        lambda s: time.monotonic() - cut_at > 3 * DEAD_AFTER_S,
        timeout=120,
        what="three times dead_after with the worker cut from node 3",
    )
    held = await eventually(
        lambda: status(autopilot),
        lambda s: s.probes > three_times.probes,
        what="a probe after that",
    )
    assert held.repairing == [] and held.repaired == [], held
    assert not any("declared dead" in d.what for d in held.decisions), held.decisions
    for w in writers.values():  # node 3 took writes all along: its peers and clients reach it
        await w.wait_acked(len(w.acked) + 50)

    faults.heal()
    result = await migration.result()
    assert isinstance(result, MigrationResult) and result.remove is not None, result
    assert sorted(result.remove.peers) == [1, 2, 3], result
    after = await status(autopilot)
    assert after.repairing == [] and after.repaired == [], after
    assert not await running_or_ran(stack, repair_workflow_id(3))
    for region, writer in writers.items():
        acked = await writer.stop()
        await cluster.converged(region, REGIONS[region], count=len(acked))
        for i in REGIONS[region]:
            assert await missing_points(cluster, i, region, acked) == [], (region, i)


async def running_or_ran(stack: Stack, workflow_id: str) -> bool:
    """Whether this test's stack started `workflow_id` (another test's, on the same server,
    has another task queue)."""
    try:
        described = await stack.client.get_workflow_handle(workflow_id).describe()
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return described.task_queue == stack.task_queue


async def test_writes_a_node_took_behind_a_cut_survive_its_repair(
    stack: Stack, network: Network
) -> None:
    """Node 3 isolated past dead_after while a client writes through it at acks=one: the
    autopilot repairs it (no view reaches it); after the heal node 3 hands what it acknowledged
    to each region's members, the new replicas included, and deletes its stale replicas."""
    await five_nodes(stack)
    cluster, faults = stack.cluster, Faults(network)
    before = {r: LoadWriter(cluster, r, peers, series="before") for r, peers in REGIONS.items()}
    for w in before.values():
        await w.run(count=200)
    autopilot = await stack.autopilot(
        AutopilotInput(dead_after_s=DEAD_AFTER_S, probe_every_s=PROBE_EVERY_S)
    )

    faults.apply(Isolate("n3"))  # the operator's host, where this test writes from, reaches it
    behind = {r: LoadWriter(cluster, r, [3], series="behind-the-cut") for r in REGIONS}
    for w in behind.values():
        await w.run(count=200)
    repaired = await eventually(
        lambda: status(autopilot),
        lambda s: 3 in s.repaired,
        timeout=180,
        what="the autopilot to repair node 3",
    )
    assert any("node 3 declared dead" in d.what for d in repaired.decisions), repaired
    members = {
        region: sorted(p.node_id for p in (await cluster.progress(peers[0], region)).peers)
        for region, peers in ((r, [p for p in ps if p != 3]) for r, ps in REGIONS.items())
    }
    assert all(3 not in m and len(m) == 3 for m in members.values()), members
    for region, w in behind.items():  # the members hold none of it yet: only node 3 does
        node = members[region][0]
        assert await missing_points(cluster, node, region, w.acked) == w.acked, (region, node)
    shown = await airctl_json(stack, "regions")  # the operator's host reaches node 3
    assert all(shown[str(r)]["3"]["state"] == "stale" for r in REGIONS), shown

    faults.heal()
    await eventually(
        lambda: cluster.regions_of(3),
        lambda held: held == {},
        timeout=120,
        what="node 3 retiring its stale replicas",
    )
    for region, holders in members.items():
        acked = [*before[region].acked, *behind[region].acked]
        await cluster.converged(region, holders, count=len(acked))
        for i in holders:
            assert await missing_points(cluster, i, region, acked) == [], (region, i)


async def airctl_json(stack: Stack, *args: str) -> Any:
    """What `airctl --json ARGS` prints, run on the operator host (the machine itself)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "airctl", "--cluster", str(stack.cluster_file), "--json", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)
