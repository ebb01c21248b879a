"""Failure domains end to end, on real nodes started with --locality: six nodes in three zones,
regions placed by `airctl region create --replicas 3`; a drain, a death the autopilot repairs,
two nodes in a fourth zone and a rebalance: every region spans three zones at each step's end,
and every acknowledged write is on every final replica. A migration refused for diversity
changes nothing; a whole zone frozen past dead_after starts no repair, and its return starts a
rebalance."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from client.load import LoadWriter as Writer
from client.starter import RequestRefused
from contracts.activity_models import ClusterDescription, Peer
from contracts.ids import REBALANCE_WORKFLOW_ID
from contracts.models import (
    AutopilotInput,
    AutopilotState,
    DrainInput,
    MigrationInput,
    RebalanceInput,
    RebalanceResult,
)
from planning.diversity import Places
from planning.placement import members, place_region
from runtime.reading import describe_cluster
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.autopilot import AutopilotWorkflow
from workflows.drain import DrainNodeWorkflow
from workflows.migration import RegionMigrationWorkflow
from workflows.rebalance import RebalanceWorkflow

pytestmark = pytest.mark.slow

ZONE = {1: "a", 2: "b", 3: "c", 4: "a", 5: "b", 6: "c", 7: "d", 8: "d"}
REGIONS = [761, 762, 763]
DEAD_AFTER_S = 2.0


async def described(stack: Stack) -> ClusterDescription:
    nodes = [Peer(node_id=i, address=n.address) for i, n in sorted(stack.cluster.nodes.items())]
    return await describe_cluster(nodes, stack.cluster.clients, stack.cluster.localities)


async def spans_three_zones(stack: Stack) -> dict[int, list[int]]:
    """Every region's replicas (as its live holders list them) in three zones; each region's."""
    cluster = await described(stack)
    placed = {r: members(cluster, r) for r in REGIONS}
    for region, on in placed.items():
        assert len(on) == 3 and len({ZONE[n] for n in on}) == 3, (region, on)
    return placed


async def decided(
    handle: WorkflowHandle[Any, Any], text: str, timeout: float = 60
) -> AutopilotState:
    return await eventually(
        lambda: handle.query(AutopilotWorkflow.status),
        lambda s: any(text in d.what for d in s.decisions),
        timeout=timeout,
        what=f"the autopilot to decide {text!r}",
    )


def aim(writers: dict[int, Writer], placed: dict[int, list[int]]) -> None:
    """Each region's writes to its replicas now (a node frozen or gone is not among them)."""
    for region, writer in writers.items():
        writer.targets[:] = placed[region]


async def test_regions_span_three_zones_through_a_drain_a_death_new_nodes_and_a_zone_down(
    stack: Stack,
) -> None:
    cluster = stack.cluster
    for i in range(1, 7):
        cluster.add_node(i, locality=[f"zone={ZONE[i]}"])
    stack.start_worker()  # and the cluster file, with each node's locality
    airctl = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "airctl", "--cluster", str(stack.cluster_file)),
        *("region", "create", str(REGIONS[0]), "--replicas", "3"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(airctl.communicate(), 60)
    assert airctl.returncode == 0, err.decode()
    assert "zone a, zone b, zone c; diversity 1.00" in out.decode(), out.decode()
    for region in REGIONS[1:]:  # as the command does
        await cluster.create_region(region, place_region(await described(stack), region, 3))
    placed = await spans_three_zones(stack)
    writers = {r: LoadWriter(cluster, r, list(placed[r])).start(rate=200) for r in REGIONS}
    for writer in writers.values():
        await writer.wait_acked(20)

    # a drain: each region off node 1 (zone a) to node 4, the other node of zone a
    drain = await stack.operation(DrainNodeWorkflow.run, DrainInput(node=1))
    drained = await drain.result()
    assert drained.moved and not drained.failed and not drained.kept, drained
    assert {m.to_node for m in drained.moved} == {4}, drained.moved
    aim(writers, placed := await spans_three_zones(stack))

    # a death: node 2 (zone b) killed for good; the autopilot repairs it onto node 5
    autopilot = await stack.autopilot(AutopilotInput(dead_after_s=DEAD_AFTER_S, probe_every_s=0.5))
    aim(writers, {r: [n for n in on if n != 2] for r, on in placed.items()})
    on_two = [r for r, on in placed.items() if 2 in on]
    cluster.nodes[2].kill()
    repaired = await decided(autopilot, "the repair of node 2 ended")
    assert "under-diversified" not in repaired.decisions[-1].what, repaired.decisions
    aim(writers, placed := await spans_three_zones(stack))
    assert on_two and all(5 in placed[r] for r in on_two), (on_two, placed)  # zone b

    # node 2 forgotten (airctl node forget), nodes 7 and 8 in zone d; a rebalance
    del cluster.nodes[2]
    for i in (7, 8):
        cluster.add_node(i, locality=[f"zone={ZONE[i]}"])
    stack.write_cluster_file()
    rebalance = await stack.operation(RebalanceWorkflow.run, RebalanceInput())
    balanced = await rebalance.result()
    assert not balanced.failed and not balanced.kept, balanced
    aim(writers, placed := await spans_three_zones(stack))

    # a migration to a node that shares a zone with another replica, while one in a zone the
    # region lacks fits: refused, naming it, and nothing changes
    cluster_now = await described(stack)
    places = Places(cluster_now.localities)
    region, on = REGIONS[0], placed[REGIONS[0]]
    leaving = on[0]
    to = next(
        n
        for n in sorted(cluster.nodes)
        if n not in on and any(ZONE[n] == ZONE[m] for m in on if m != leaving)
    )

    async def unchanged() -> list[object]:
        """The region's peer lists and active flags, the node it would go to (writes go on)."""
        replicas = [(await cluster.regions_of(n))[region] for n in on]
        listed = [(sorted(p.node_id for p in r.peers), r.active) for r in replicas]
        return [
            *listed,
            region in await cluster.regions_of(to),
            cluster.region_dir(to, region).exists(),
        ]

    before = await unchanged()
    with pytest.raises(RequestRefused, match="would leave it more diverse") as refused:
        await stack.start(
            RegionMigrationWorkflow.run,
            MigrationInput(region=region, from_node=leaving, to_node=to),
        )
    assert f"shares zone {ZONE[to]} with node" in str(refused.value), refused.value
    assert await unchanged() == before
    assert places.diversity(on) == 1.0

    # zone d frozen past dead_after: a partition, no repair; back, a rebalance
    aim(writers, {r: [n for n in on if ZONE[n] != "d"] for r, on in placed.items()})
    for i in (7, 8):
        cluster.nodes[i].send_signal(signal.SIGSTOP)
    held = await decided(autopilot, "zone d does not answer")
    await eventually(
        lambda: autopilot.query(AutopilotWorkflow.status),
        lambda s: s.probes >= held.probes + 4 and s.paused.startswith("zone d does not answer"),
        timeout=90,
        what="four more probes with zone d silent, past dead_after",
    )
    later = await autopilot.query(AutopilotWorkflow.status)
    assert later.repairing == [] and later.repaired == [], later
    dead = [d.what for d in later.decisions if "declared dead" in d.what]
    assert dead == [d.what for d in held.decisions if "declared dead" in d.what], dead  # node 2
    for i in (7, 8):
        cluster.nodes[i].send_signal(signal.SIGCONT)
    await decided(autopilot, "zone d answers again: started air-rebalance")
    after_zone = stack.client.get_workflow_handle(
        REBALANCE_WORKFLOW_ID, result_type=RebalanceResult
    )
    assert not (await after_zone.result()).failed
    aim(writers, placed := await spans_three_zones(stack))

    for region, writer in writers.items():
        acked = await writer.stop()
        await cluster.converged(region, placed[region], count=len(acked))
        for n in placed[region]:
            assert await missing_points(cluster, n, region, acked) == [], (region, n)
