"""The airnode process: readiness, a clean stop on SIGTERM, Prometheus metrics."""

from __future__ import annotations

import asyncio

from protos import air_node_pb2 as pb
from stack.processes import free_port
from tests.support.cluster import Cluster

REGION = 9


async def scrape(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    body = (await reader.read()).decode()
    writer.close()
    return body


async def test_metrics_then_a_clean_stop(cluster: Cluster) -> None:
    port = free_port()
    cluster.add_node(1, extra_args=["--metrics-port", str(port)])
    cluster.add_node(2)
    await cluster.create_region(REGION, [1, 2])
    points = [pb.Point(series="m", timestamp=t) for t in range(7)]
    await cluster.stub(1).Write(pb.WriteRequest(region=REGION, points=points))
    await cluster.converged(REGION, [1, 2], count=7)

    metrics = await scrape(port)
    assert "HTTP/1.1 200 OK" in metrics
    assert f'air_written_points_total{{region="{REGION}"}} 7' in metrics, metrics
    assert f'air_writes_total{{region="{REGION}"}} 1' in metrics
    assert "air_transfer_bytes_total" in metrics and "air_sync_lag" in metrics

    node = cluster.nodes[1]
    assert node.terminate() == 0
    assert "airnode 1 stopping" in node.output()
