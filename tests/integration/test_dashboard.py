"""Every metric the Grafana dashboard queries is one the nodes or the worker really export."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from client.starter import start_check
from contracts.check import CheckInput
from contracts.models import AutopilotInput, DrainInput, DrainResult
from stack.processes import free_port
from tests.support.load import LoadWriter
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.drain import DrainNodeWorkflow

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana-dashboard.json"


async def scrape(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    body = (await reader.read()).decode()
    writer.close()
    return body


def queried() -> set[str]:
    """The metric names in the dashboard's queries."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    return {name for e in exprs for name in re.findall(r"\b(air_\w+|process_\w+)", e)}


def exported(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1].isalpha()}


async def test_every_metric_the_dashboard_queries_is_exported(stack: Stack) -> None:
    cluster = stack.cluster
    ports = {i: free_port() for i in (1, 2, 3, 4)}
    for i, port in ports.items():  # in two zones: snapshots counted between them
        zone = ["--locality", f"zone={'ab'[i % 2]}"]
        cluster.add_node(i, extra_args=["--metrics-port", str(port), *zone])
    worker_port = free_port()
    stack.start_worker(extra_args=["--metrics-port", str(worker_port)])
    # its first probe looks at the placement: the under-diversified gauge
    await stack.autopilot(AutopilotInput())
    for region in (1201, 1202):  # apart from the other tests' regions
        await cluster.create_region(region, [1, 2, 3])
        await LoadWriter(cluster, region, [1, 2], series="bulk", batch=100).run(count=500)

    drain = await stack.operation(
        DrainNodeWorkflow.run, DrainInput(node=1)
    )  # moves, transfers, stall gauges, moves left
    result = await stack.client.get_workflow_handle(drain.id, result_type=DrainResult).result()
    assert len(result.moved) == 2, result
    check = await start_check(stack.client, CheckInput(), "air-check-dashboard", stack.task_queue)
    assert (await check.result()).equal == 2  # the check's counters and last-checked gauges

    async def found() -> set[str]:
        return set().union(*[exported(await scrape(p)) for p in [*ports.values(), worker_port]])

    assert queried(), "the dashboard queries nothing"
    await eventually(found, lambda f: queried() <= f, what="every metric the dashboard queries")
