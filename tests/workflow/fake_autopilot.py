"""The autopilot's activities faked in memory (registered under the real ones' names): nodes
1-4 answering the probe as a test sets them, what the autopilot started kept. And the real
autopilot workflow over them, on a versioned worker of its own."""

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
        return 0  # no locality known: every replica stands apart

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
