"""The airnode process: readiness, a clean stop on SIGTERM, Prometheus metrics."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

from protos import air_node_pb2 as pb
from stack.processes import free_port
from tests.support.cluster import HELD, Cluster
from tests.support.waiting import eventually

REGION = 9


async def scrape(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    body = (await reader.read()).decode()
    writer.close()
    return body


async def bytes_sent(port: int) -> float:
    """The node's own count of bytes its channels sent for REGION (0 before the first)."""
    found = re.search(rf'air_transfer_bytes_total{{region="{REGION}"}} (\S+)', await scrape(port))
    return float(found[1]) if found else 0.0


async def test_metrics_then_a_clean_stop(cluster: Cluster) -> None:
    port = free_port()
    cluster.add_node(1, extra_args=["--metrics-port", str(port)])
    cluster.add_node(2)
    await cluster.create_region(REGION, [1, 2])
    points = [pb.Point(series="m", timestamp=t) for t in range(7)]
    await cluster.stub(1).Write(pb.WriteRequest(region=REGION, points=points))
    await cluster.converged(REGION, [1, 2], count=7)

    metrics = await scrape(port)
    assert " 200 OK" in metrics.splitlines()[0]
    assert f'air_written_points_total{{region="{REGION}"}} 7' in metrics, metrics
    assert f'air_writes_total{{region="{REGION}"}} 1' in metrics
    assert "air_transfer_bytes_total" in metrics and "air_sync_lag" in metrics
    assert "air_write_latency_seconds_count 1.0" in metrics, metrics  # a histogram
    assert 'air_rpc_duration_seconds_count{method="Write"} 1.0' in metrics, metrics
    assert 'air_replicas{state="active"} 1.0' in metrics, metrics
    assert "air_snapshot_rate_limit_auto 1.0" in metrics, metrics  # auto: the default
    assert "process_cpu_seconds_total" in metrics  # the process collector's

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
    await cluster.stub(1).SetThrottle(pb.ThrottleRequest(bytes_per_s=limit))

    began = time.monotonic()
    await cluster.stub(1).CreateChannel(
        pb.CreateChannelRequest(region=REGION, receiver=cluster.peer(2), snapshot=True)
    )
    # under way, the receiver says what its sender's limit is, for the progress to show
    underway = await eventually(
        lambda: cluster.stub(2).CheckTransferComplete(check),
        lambda reply: reply.snapshot_received > 0 or reply.complete,
        timeout=120,
        max_delay=0.05,
    )
    assert not underway.complete, "the snapshot was whole before it was seen under way"
    assert (underway.snapshot_limit_bytes_per_s, underway.snapshot_limit_auto) == (limit, False)
    assert f"air_snapshot_rate_limit_bytes_per_second {limit:.1f}" in await scrape(port)
    await eventually(
        lambda: cluster.stub(2).CheckTransferComplete(check),
        lambda reply: reply.complete,
        timeout=120,
        max_delay=0.05,
    )
    elapsed = time.monotonic() - began
    sent = await bytes_sent(port)
    assert sent > 3 * limit, "too small a transfer to measure a rate over"
    # never above the limit (the bucket allows one second of burst), and close to it: the
    # throttle, not the machine, set the pace
    assert sent <= limit * (elapsed + 1), (sent, elapsed)
    assert sent / elapsed >= 0.6 * limit, (sent, elapsed)


async def test_a_throttled_stream_runs_at_the_limit(cluster: Cluster) -> None:
    limit = 200_000  # bytes/s; unthrottled, the stream keeps up with the writes (~1 MB/s)
    port = free_port()
    throttled = ["--transfer-rate-limit", str(limit / 1e6), "--transfer-batch-points", "1000"]
    cluster.add_node(1, extra_args=["--metrics-port", str(port), *throttled])
    cluster.add_node(2)
    await cluster.create_region(REGION, [1, 2])
    # held while the backlog is written (a busy machine writes slowly, and the stream would
    # send much of it meanwhile); the flag's limit was in force until then
    held = await cluster.stub(1).SetThrottle(pb.ThrottleRequest(bytes_per_s=HELD))
    assert held.previous == limit, held
    # ~2 MB as a channel sends it (columns, about 13 bytes a point): a backlog
    for start in range(0, 150_000, 1000):
        points = [
            pb.Point(series=f"s{t % 10}", timestamp=t, value=t) for t in range(start, start + 1000)
        ]
        await cluster.stub(1).Write(pb.WriteRequest(region=REGION, points=points))
    target = (await cluster.progress(1, REGION)).applied
    check = pb.CheckTransferCompleteRequest(region=REGION, target=target)
    await cluster.stub(1).SetThrottle(pb.ThrottleRequest(bytes_per_s=limit))

    async def sent_at() -> tuple[float, float]:
        return time.monotonic(), await bytes_sent(port)

    # from past the bucket's one second of burst, over four seconds' worth at the limit
    t0, b0 = await eventually(
        sent_at, lambda s: s[1] >= 1.5 * limit, max_delay=0.05, what="the burst sent"
    )
    t1, b1 = await eventually(
        sent_at, lambda s: s[1] >= b0 + 4 * limit, max_delay=0.05, what="4 s worth sent"
    )
    assert not (await cluster.stub(2).CheckTransferComplete(check)).complete  # it never idled
    rate = (b1 - b0) / (t1 - t0)
    assert 0.9 * limit <= rate <= 1.1 * limit, (rate, limit)

    # lifted at run time, the rest goes much faster: the throttle, not the machine, set the pace
    await cluster.stub(1).SetThrottle(pb.ThrottleRequest(bytes_per_s=0))
    await eventually(
        lambda: cluster.stub(2).CheckTransferComplete(check),
        lambda reply: reply.complete,
        max_delay=0.05,
        what="the rest sent",
    )
    t2, b2 = await sent_at()
    assert b2 - b1 > limit, "too little left to measure the lifted rate on"
    assert (b2 - b1) / (t2 - t1) > 2 * limit, (b2 - b1, t2 - t1)


async def test_a_node_says_where_it_stands_and_counts_snapshot_bytes_between_zones(
    cluster: Cluster,
) -> None:
    port = free_port()
    cluster.add_node(1, extra_args=["--metrics-port", str(port)], locality=["zone=a", "rack=r1"])
    cluster.add_node(2, locality=["zone=b"])
    reply = await cluster.stub(1).ListRegions(pb.ListRegionsRequest(limit=1))
    assert list(reply.locality) == ["zone=a", "rack=r1"]
    await cluster.create_region(REGION, [1])
    points = [pb.Point(series="z", timestamp=t) for t in range(500)]
    await cluster.stub(1).Write(pb.WriteRequest(region=REGION, points=points))
    await cluster.stub(2).CreateLocalPeer(
        pb.CreateLocalPeerRequest(region=REGION, peers=cluster.peers([1, 2]), await_snapshot=True)
    )
    await cluster.stub(1).CreateChannel(
        pb.CreateChannelRequest(region=REGION, receiver=cluster.peer(2), snapshot=True)
    )
    await cluster.converged(REGION, [1, 2], count=500)
    metrics = await scrape(port)
    assert 'air_node_info{locality="zone=a,rack=r1",zone="a"} 1.0' in metrics, metrics
    sent = re.search(r'air_snapshot_bytes_sent_total{from_zone="a",to_zone="b"} (\S+)', metrics)
    assert sent and float(sent[1]) > 0, metrics


def test_a_bad_locality_stops_the_node_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "node", "--id", "1", "--data-dir", str(tmp_path), "--locality",
         "zone"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip() == (
        "airnode: --locality: 'zone' is not key=value (e.g. zone=eu-1a,rack=r7)"
    ), done.stderr
