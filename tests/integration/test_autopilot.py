"""The autopilot: a node gone for good is repaired; one back in time, or two down at once, not."""

from __future__ import annotations

import itertools
import signal
from typing import Any

from temporalio.client import WorkflowHandle

from contracts.models import AutopilotInput, AutopilotState
from protos import air_node_pb2 as pb
from tests.support.chaos import restart
from tests.support.cluster import HELD
from tests.support.divergence import CHANGED, corrupt
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.autopilot import AutopilotWorkflow

REGIONS = list(range(741, 744))
LOADED = REGIONS[0]
CHECKED = 745


async def decided(handle: WorkflowHandle[Any, Any], text: str) -> AutopilotState:
    """The autopilot's state once one of its decisions says `text`."""
    return await eventually(
        lambda: handle.query(AutopilotWorkflow.status),
        lambda s: any(text in d.what for d in s.decisions),
        timeout=60,
        what=f"the autopilot to decide {text!r}",
    )


async def test_the_autopilot_repairs_a_dead_node_and_only_that(stack: Stack) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    for region in REGIONS:
        await cluster.create_region(region, [1, 2, 3])
    stack.start_worker()
    load = LoadWriter(cluster, LOADED, [1]).start()
    await load.wait_acked(100)
    # dead only after ten minutes, for now: a node back in time costs nothing
    autopilot = await stack.autopilot(AutopilotInput(dead_after_s=600, probe_every_s=0.5))
    node2, node3 = cluster.nodes[2], cluster.nodes[3]

    node2.send_signal(signal.SIGSTOP)  # it stops answering
    await decided(autopilot, "node 2 does not answer")
    node2.send_signal(signal.SIGCONT)
    await decided(autopilot, "node 2 answers again after")
    assert "nothing to do" in (await autopilot.query(AutopilotWorkflow.status)).decisions[-1].what

    await cluster.throttle([1, 2], HELD)  # the repair's copies wait until the worker is killed
    node2.send_signal(signal.SIGSTOP)
    node3.send_signal(signal.SIGSTOP)
    paused = await decided(autopilot, "nodes [2, 3] do not answer at once")
    await stack.autopilot(AutopilotInput(dead_after_s=1, probe_every_s=0.5))  # now: dead at 1 s
    later = await eventually(
        lambda: autopilot.query(AutopilotWorkflow.status),
        lambda s: s.probes >= paused.probes + 2,
        what="two more probes with both down",
    )
    assert later.dead_after_s == 1 and later.repairing == [] and later.paused, later

    node3.kill()  # for good (a stopped process dies of SIGKILL too)
    node2.send_signal(signal.SIGCONT)
    repairing = await decided(autopilot, "node 3 declared dead after")
    assert repairing.repairing == [3], repairing
    stack.workers["worker"].kill()  # mid-repair: no copy can have finished
    await restart(stack.workers["worker"])
    await cluster.throttle([1, 2], 0)
    ended = await eventually(
        lambda: autopilot.query(AutopilotWorkflow.status),
        lambda s: any("the repair of node 3 ended" in d.what for d in s.decisions),
        timeout=120,
        what="the repair of node 3 to end",
    )
    assert ended.repaired == [3] and ended.repairing == [], ended
    assert "3 region(s) back to full replication" in ended.decisions[-1].what, ended.decisions

    held = await cluster.regions_of(4)
    for region in REGIONS:
        assert sorted(p.node_id for p in held[region].peers) == [1, 2, 4], region
    acked = await load.stop()
    await cluster.converged(LOADED, [1, 2, 4], count=len(acked))
    for i in (1, 2, 4):
        assert await missing_points(cluster, i, LOADED, acked) == [], i


async def test_the_autopilot_checks_the_replicas_one_check_at_a_time_and_mends_a_minority(
    stack: Stack,
) -> None:
    region = CHECKED
    cluster = await stack.four_nodes(region)
    kept = [pb.Point(series="kept", timestamp=t, value=float(t)) for t in range(20)]
    await cluster.stub(1).Write(pb.WriteRequest(region=region, points=kept), timeout=10)
    await cluster.converged(region, [1, 2, 3], count=len(kept))
    corrupt(cluster, 2, region, CHANGED)

    autopilot = await stack.autopilot(
        AutopilotInput(dead_after_s=600, probe_every_s=0.5, check_every_s=1, check_repair=True)
    )
    diverged = "DIVERGED, node 2 differs from the others"
    found = await decided(autopilot, diverged)
    (finding,) = [d.what for d in found.decisions if diverged in d.what]
    assert "reconstructed" in finding, finding
    mended = await decided(autopilot, "1 of 1 region(s) equal")
    # one check at a time: each started only once the one before had ended
    checks = [d.what for d in mended.decisions if "check air-check-autopilot-" in d.what]
    assert len(checks) >= 4, checks
    assert all(
        first.startswith("started") != second.startswith("started")
        for first, second in itertools.pairwise(checks)
    ), checks
    await cluster.converged(region, [1, 2, 3], count=len(kept))
    reply = await cluster.stub(2).Read(
        pb.ReadRequest(region=region, series="kept", start=0), timeout=10
    )
    assert [p.value for p in reply.points] == [p.value for p in kept]  # node 2 rebuilt
