"""The airnode process: readiness, a clean stop on SIGTERM, Prometheus metrics."""

from __future__ import annotations

import asyncio
import re
import time

from protos import air_node_pb2 as pb
from stack.processes import free_port
from tests.support.cluster import Cluster
from tests.support.waiting import eventually

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


async def test_a_throttled_snapshot_runs_at_the_limit(cluster: Cluster) -> None:
    limit = 500_000  # bytes/s
    port = free_port()
    cluster.add_node(1, extra_args=["--metrics-port", str(port)])
    cluster.add_node(2)
    await cluster.create_region(REGION, [1])
    for start in range(0, 60_000, 5000):
        points = [pb.Point(series=f"s{t % 10}", timestamp=t) for t in range(start, start + 5000)]
        await cluster.stub(1).Write(pb.WriteRequest(region=REGION, points=points))
    await cluster.stub(1).SetThrottle(pb.ThrottleRequest(bytes_per_s=limit))
    await cluster.stub(2).CreateLocalPeer(
        pb.CreateLocalPeerRequest(region=REGION, peers=cluster.peers([1, 2]), await_snapshot=True)
    )
    target = (await cluster.progress(1, REGION)).applied
    check = pb.CheckTransferCompleteRequest(region=REGION, target=target)

    began = time.monotonic()
    await cluster.stub(1).CreateChannel(
        pb.CreateChannelRequest(region=REGION, receiver=cluster.peer(2), snapshot=True)
    )
    await eventually(
        lambda: cluster.stub(2).CheckTransferComplete(check),
        lambda reply: reply.complete,
        timeout=120,
        max_delay=0.05,
    )
    elapsed = time.monotonic() - began
    sent = float(
        re.search(rf'air_transfer_bytes_total{{region="{REGION}"}} (\S+)', await scrape(port))[1]  # type: ignore[index]
    )
    assert sent > 3 * limit, "too small a transfer to measure a rate over"
    # never above the limit (the bucket allows one second of burst), and close to it: the
    # throttle, not the machine, set the pace
    assert sent <= limit * (elapsed + 1), (sent, elapsed)
    assert sent / elapsed >= 0.6 * limit, (sent, elapsed)
