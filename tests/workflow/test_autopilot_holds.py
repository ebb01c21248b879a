"""The autopilot holds its repairs while more than one node is down (a partition is not a
death), however long; once at most one is, the one down past dead_after is repaired. The real
workflow in a WorkflowEnvironment on the session's dev server, its activities faked."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from temporalio import activity
from temporalio.client import Client

from contracts.activity_models import NodeView, Reach
from contracts.ids import REBALANCE_WORKFLOW_ID, repair_workflow_id
from contracts.models import AutopilotInput, AutopilotState
from tests.support.waiting import eventually
from tests.workflow.fake_nodes import versioned_worker
from workflows.autopilot import AutopilotWorkflow

DEAD_AFTER_S = 1.0
UP = NodeView(reach=Reach.UP)
DOWN = NodeView(reach=Reach.DOWN, asked=[1, 2])


@dataclass
class Probed:
    """The autopilot's activities: nodes 1-4 as the test sets them; repairs started kept."""

    views: dict[int, NodeView] = field(default_factory=lambda: {n: UP for n in (1, 2, 3, 4)})
    probed_at: list[float] = field(default_factory=list)
    repairs: list[int] = field(default_factory=list)
    rebalances: list[list[str]] = field(default_factory=list)
    placement_looks: list[float] = field(default_factory=list)

    @activity.defn(name="probe_views")
    async def probe_views(self) -> dict[int, NodeView]:
        self.probed_at.append(time.time())
        return dict(self.views)

    @activity.defn(name="draining")
    async def draining(self, nodes: list[int]) -> list[int]:
        return []

    @activity.defn(name="start_repair")
    async def start_repair(self, node: int) -> str:
        self.repairs.append(node)
        return repair_workflow_id(node)

    @activity.defn(name="repair_outcome")
    async def repair_outcome(self, node: int) -> str | None:
        return None  # it runs

    @activity.defn(name="under_diversified")
    async def under_diversified(self) -> int:
        self.placement_looks.append(time.time())
        return 0

    @activity.defn(name="start_rebalance")
    async def start_rebalance(self, zones: list[str]) -> str:
        self.rebalances.append(zones)
        return REBALANCE_WORKFLOW_ID

    def all(self) -> list[Callable[..., Awaitable[object]]]:
        return [
            self.probe_views,
            self.draining,
            self.start_repair,
            self.repair_outcome,
            self.under_diversified,
            self.start_rebalance,
        ]


Status = Callable[[], Awaitable[AutopilotState]]


@asynccontextmanager
async def autopilot(client: Client, probed: Probed) -> AsyncIterator[Status]:
    """The autopilot over `probed`'s fake activities, probing every 0.1 s; its status, to
    ask. Terminated after the block."""
    async with versioned_worker(client, [AutopilotWorkflow], probed.all()) as running:
        handle = await client.start_workflow(
            AutopilotWorkflow.run,
            AutopilotInput(dead_after_s=DEAD_AFTER_S, probe_every_s=0.1),
            id=f"air-autopilot-{uuid.uuid4().hex[:8]}",
            task_queue=running.task_queue,
        )

        async def status() -> AutopilotState:
            return await handle.query(AutopilotWorkflow.status)

        try:
            yield status
        finally:
            await handle.terminate("test over")


async def probes_past(probed: Probed, seconds: float, what: str) -> None:
    """Until the autopilot has probed for `seconds` from now."""
    since = time.time()

    async def last_probe() -> float:
        return probed.probed_at[-1]

    await eventually(last_probe, lambda last: last > since + seconds, what=what)


async def test_no_repair_while_two_nodes_are_down_then_the_one_still_down_is(
    client: Client,
) -> None:
    probed = Probed()
    probed.views[3] = probed.views[4] = DOWN
    async with autopilot(client, probed) as status:
        held = await eventually(status, lambda s: bool(s.paused), what="repairs held")
        await probes_past(
            probed, 3 * DEAD_AFTER_S, what="probes for three times dead_after with both down"
        )
        still = await status()
        assert probed.repairs == [] and still.repairing == [], still
        assert (
            held.paused
            == still.paused
            == (
                "nodes [3, 4] do not answer at once: a partition is not a death; "
                "no repair starts until at most one is down"
            )
        )

        probed.views[4] = UP  # back: node 3 alone is down, long past dead_after
        repairing = await eventually(
            status, lambda s: s.repairing == [3], what="node 3 repaired once alone down"
        )

    assert probed.repairs == [3], probed.repairs
    assert repairing.paused == "" and repairing.down_since.keys() == {3}, repairing
    decisions = [d.what for d in repairing.decisions]
    lifted = decisions.index("at most one node is down: repairs may start again")
    assert decisions[lifted + 1].startswith("node 3 declared dead after"), decisions


def in_zones(views: dict[int, NodeView]) -> dict[int, NodeView]:
    """Nodes 1 and 3 in zone a, 2 and 4 in zone b."""
    return {n: v.model_copy(update={"zone": f"zone={'ab'[(n - 1) % 2]}"}) for n, v in views.items()}


async def test_a_zone_down_is_held_as_a_partition_and_its_return_starts_a_rebalance(
    client: Client,
) -> None:
    """Both nodes of zone b silent past dead_after: no repair, and the autopilot says the
    zone does not answer; back, it starts one rebalance and says why. It looks at the
    placement at its first probe (the gauge)."""
    probed = Probed()
    probed.views = in_zones({1: UP, 2: DOWN, 3: UP, 4: DOWN})
    async with autopilot(client, probed) as status:
        held = await eventually(status, lambda s: bool(s.paused), what="repairs held")
        assert held.paused.startswith("zone b does not answer: a partition is not a death")
        await probes_past(probed, 3 * DEAD_AFTER_S, what="zone b down long")
        assert probed.repairs == [] and probed.rebalances == []
        probed.views = in_zones(dict.fromkeys((1, 2, 3, 4), UP))
        back = await eventually(
            status,
            lambda s: any("started air-rebalance" in d.what for d in s.decisions),
            what="a rebalance once zone b answers again",
        )

    assert probed.rebalances == [["zone=b"]] and probed.repairs == []
    assert probed.placement_looks, "the placement was never looked at"
    decisions = [d.what for d in back.decisions]
    assert "zone b does not answer: every node of it is down" in decisions
    assert "zone b answers again" in decisions
