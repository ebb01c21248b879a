"""The autopilot: a node gone for good is repaired; one back in time, or two down at once, not."""

from __future__ import annotations

import signal
from typing import Any

from temporalio.client import WorkflowHandle

from contracts.models import AutopilotInput, AutopilotState
from tests.support.chaos import restart
from tests.support.cluster import HELD
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.autopilot import AutopilotWorkflow

REGIONS = list(range(741, 744))
LOADED = REGIONS[0]


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
