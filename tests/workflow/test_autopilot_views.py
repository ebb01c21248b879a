"""The autopilot's decisions from the probe's views, in a WorkflowEnvironment on the real dev
server with mocked activities (registered under the real ones' names): a node that a live node
reaches is never repaired, however long; one that no view reaches is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from airctl.operations import autopilot_text
from client import connection
from contracts.activity_models import NodeView, Reach
from stack.processes import TemporalServer, free_port
from tests.support.waiting import eventually
from tests.workflow.fake_autopilot import DEAD_AFTER_S, Probed, Status, autopilot, probes_past
from workflows.autopilot import UNREACHABLE_GAUGE

REACHED = NodeView(reach=Reach.UNREACHABLE, reached_by=[1, 2], asked=[1, 2, 4])
DOWN = NodeView(reach=Reach.DOWN, asked=[1, 2, 4])


@dataclass
class Watched:
    """The autopilot over a fake cluster, and the port its worker serves metrics on."""

    status: Status
    probed: Probed
    metrics_port: int

    async def scrape(self) -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.metrics_port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        body = (await reader.read()).decode()
        writer.close()
        return body


@pytest.fixture
async def watched(temporal_server: TemporalServer) -> AsyncIterator[Watched]:
    """An autopilot of a cluster of four, with the worker's metrics served on a port."""
    port = free_port()
    runtime = Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{port}"))
    )
    client = await connection.connect(connection.local(temporal_server.address), runtime)
    probed = Probed()
    async with autopilot(client, probed) as status:
        yield Watched(status, probed, port)


async def test_a_node_a_live_node_reaches_gets_no_repair_and_one_no_view_reaches_does(
    watched: Watched,
) -> None:
    probed = watched.probed
    probed.views[3] = REACHED
    seen = await eventually(
        watched.status,
        lambda s: 3 in s.unreachable,
        what="the autopilot to see node 3 unreachable from the worker",
    )
    await probes_past(probed, 3 * DEAD_AFTER_S, what="probes for three times dead_after since")
    state = await watched.status()
    assert probed.repairs == [] and state.repairing == [] and state.down_since == {}, state
    assert state.unreachable[3].reached_by == [1, 2] and state.unreachable[3].since == (
        seen.unreachable[3].since
    )
    assert [d.what for d in state.decisions] == [
        "node 3 does not answer the worker, but nodes 1, 2 reach it: not repaired"
    ]
    shown = f"node 3 since {seen.unreachable[3].since:%H:%M:%S} (reached by 1, 2)"
    assert f"unreachable from the worker, not repaired: {shown}" in autopilot_text(state)
    metrics = await watched.scrape()
    (line,) = [m for m in metrics.splitlines() if m.startswith(UNREACHABLE_GAUGE + "{")]
    assert line.endswith(" 1"), line

    probed.views[3] = DOWN  # now no view reaches it
    repairing = await eventually(
        watched.status,
        lambda s: s.repairing == [3],
        what="the autopilot to repair node 3 once no view reaches it",
    )
    assert probed.repairs == [3], probed.repairs
    whats = [d.what for d in repairing.decisions]
    assert whats[1] == "node 3 does not answer, nor does any node asked reach it (nodes 1, 2, 4)"
    assert whats[2].startswith("node 3 declared dead after"), whats
    down_for = repairing.decisions[2].at - repairing.decisions[1].at
    assert down_for.total_seconds() >= DEAD_AFTER_S, repairing.decisions  # counted from down
    assert repairing.unreachable == {}, repairing
