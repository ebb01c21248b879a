"""The autopilot's decisions from the probe's views, in a WorkflowEnvironment on the real dev
server with mocked activities (registered under the real ones' names): a node that a live node
reaches is never repaired, however long; one that no view reaches is."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.common import WorkerDeploymentVersion
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker, WorkerDeploymentConfig

from airctl.operations import autopilot_text
from client import connection, versions
from contracts.activity_models import NodeView, Reach
from contracts.ids import repair_workflow_id
from contracts.models import AutopilotInput, AutopilotState
from stack.processes import TemporalServer, free_port
from tests.support.waiting import eventually
from worker import WORKFLOW_RUNNER
from workflows.autopilot import UNREACHABLE_GAUGE, AutopilotWorkflow

DEAD_AFTER_S = 1.0
UP = NodeView(reach=Reach.UP)
REACHED = NodeView(reach=Reach.UNREACHABLE, reached_by=[1, 2], asked=[1, 2, 4])
DOWN = NodeView(reach=Reach.DOWN, asked=[1, 2, 4])


@dataclass
class FakeCluster:
    """The autopilot's activities, answering as the test says; each probe's wall time kept."""

    node3: NodeView = UP
    probed_at: list[float] = field(default_factory=list)
    repairs: list[int] = field(default_factory=list)

    @activity.defn(name="probe_views")
    async def probe_views(self) -> dict[int, NodeView]:
        self.probed_at.append(time.time())
        return {1: UP, 2: UP, 3: self.node3, 4: UP}

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
        return 0  # no locality known: every replica stands apart


@dataclass
class Autopilot:
    handle: WorkflowHandle[Any, Any]
    cluster: FakeCluster
    metrics_port: int

    async def status(self) -> AutopilotState:
        state: AutopilotState = await self.handle.query(AutopilotWorkflow.status)
        return state

    async def scrape(self) -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.metrics_port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        body = (await reader.read()).decode()
        writer.close()
        return body


@pytest.fixture
async def autopilot(temporal_server: TemporalServer) -> AsyncIterator[Autopilot]:
    """An autopilot of a cluster of four, with the worker's metrics served on a port."""
    port = free_port()
    runtime = Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{port}"))
    )
    client = await connection.connect(connection.local(temporal_server.address), runtime)
    env = WorkflowEnvironment.from_client(client)
    cluster = FakeCluster()
    task_queue = f"air-test-{uuid.uuid4().hex[:8]}"
    # a deployment of its own: the autopilot is AUTO_UPGRADE, so only a versioned worker runs it
    version = WorkerDeploymentVersion(deployment_name=task_queue, build_id="test")
    async with Worker(
        env.client,
        deployment_config=WorkerDeploymentConfig(version=version, use_worker_versioning=True),
        task_queue=task_queue,
        workflows=[AutopilotWorkflow],
        activities=[
            cluster.probe_views,
            cluster.draining,
            cluster.start_repair,
            cluster.repair_outcome,
            cluster.under_diversified,
        ],
        workflow_runner=WORKFLOW_RUNNER,
    ):
        await versions.make_current(env.client, version.deployment_name, version.build_id)
        handle = await env.client.start_workflow(
            AutopilotWorkflow.run,
            AutopilotInput(dead_after_s=DEAD_AFTER_S, probe_every_s=0.1),
            id=f"air-autopilot-{task_queue}",
            task_queue=task_queue,
        )
        try:
            yield Autopilot(handle, cluster, port)
        finally:
            await handle.terminate("test over")


async def test_a_node_a_live_node_reaches_gets_no_repair_and_one_no_view_reaches_does(
    autopilot: Autopilot,
) -> None:
    cluster = autopilot.cluster
    cluster.node3 = REACHED
    seen = await eventually(
        autopilot.status,
        lambda s: 3 in s.unreachable,
        what="the autopilot to see node 3 unreachable from the worker",
    )
    since = time.time()

    async def last_probe() -> float:
        return cluster.probed_at[-1]

    await eventually(
        last_probe,
        lambda last: last > since + 3 * DEAD_AFTER_S,
        what="probes for three times dead_after since",
    )
    state = await autopilot.status()
    assert cluster.repairs == [] and state.repairing == [] and state.down_since == {}, state
    assert state.unreachable[3].reached_by == [1, 2] and state.unreachable[3].since == (
        seen.unreachable[3].since
    )
    assert [d.what for d in state.decisions] == [
        "node 3 does not answer the worker, but nodes 1, 2 reach it: not repaired"
    ]
    shown = f"node 3 since {seen.unreachable[3].since:%H:%M:%S} (reached by 1, 2)"
    assert f"unreachable from the worker, not repaired: {shown}" in autopilot_text(state)
    metrics = await autopilot.scrape()
    (line,) = [m for m in metrics.splitlines() if m.startswith(UNREACHABLE_GAUGE + "{")]
    assert line.endswith(" 1"), line

    cluster.node3 = DOWN  # now no view reaches it
    repairing = await eventually(
        autopilot.status,
        lambda s: s.repairing == [3],
        what="the autopilot to repair node 3 once no view reaches it",
    )
    assert cluster.repairs == [3], cluster.repairs
    whats = [d.what for d in repairing.decisions]
    assert whats[1] == "node 3 does not answer, nor does any node asked reach it (nodes 1, 2, 4)"
    assert whats[2].startswith("node 3 declared dead after"), whats
    down_for = repairing.decisions[2].at - repairing.decisions[1].at
    assert down_for.total_seconds() >= DEAD_AFTER_S, repairing.decisions  # counted from down
    assert repairing.unreachable == {}, repairing
