"""Links that drop packets, on test hosts: a snapshot's link cut mid-transfer is noticed in
seconds and resumed where it stopped; quorum writes behind a partition fail clearly."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import datetime

import grpc
import pytest

from contracts.models import MigrationInput, MigrationResult
from protos import air_node_pb2 as pb
from runtime.cluster_file import ClusterFile, NodeEntry
from stack.faults import Cut, Faults, Partition
from stack.hosts import Network
from tests.support.cluster import Cluster, status_of
from tests.support.hosts import run_on
from tests.support.load import LoadWriter, missing_points
from tests.support.node_logs import stream_breaks
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.migration import RegionMigrationWorkflow

pytestmark = pytest.mark.slow

REGION = 791
POINTS = 400_000  # a store of some MB: its snapshot takes seconds at the rate below
RATE = 2_000_000  # bytes/s the snapshot's sender sends: the cut lands mid-transfer
CUT_S = 60.0


async def fill(cluster: Cluster, node: int, points: int) -> None:
    for start in range(0, points, 20_000):
        rows = [
            pb.Point(series=f"s{t % 50}", timestamp=t, value=float(t))
            for t in range(start, start + 20_000)
        ]
        await cluster.stub(node).Write(pb.WriteRequest(region=REGION, points=rows), timeout=60)


async def test_a_snapshot_cut_mid_transfer_is_noticed_in_seconds_and_resumes_where_it_stopped(
    stack: Stack, network: Network
) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    await cluster.create_region(REGION, [1, 2, 3])
    await fill(cluster, 1, POINTS)
    await cluster.converged(REGION, [1, 2, 3], count=POINTS)
    store = (await cluster.regions_of(1))[REGION].store_bytes
    stack.start_worker()
    await cluster.throttle([1], RATE)
    migration = await stack.start(
        RegionMigrationWorkflow.run,
        MigrationInput(region=REGION, from_node=3, to_node=4, coordinator=1, down_timeout_s=300),
    )
    receiving = await eventually(
        lambda: cluster.progress(4, REGION),
        lambda p: p.snapshot_received > store // 4,
        timeout=60,
        what="a quarter of the snapshot on node 4",
    )
    assert not receiving.installed

    cut_at = datetime.now()
    cut = Faults(network).apply(Cut("n1", "n4"))
    broken = await eventually(
        lambda: sender_breaks(cluster, since=cut_at),
        lambda found: bool(found),
        timeout=30,
        what="node 1 to report the snapshot stream broken",
    )
    noticed_s = (broken[0] - cut_at).total_seconds()
    print(f"snapshot stream cut: broken stream noticed after {noticed_s:.1f} s")
    assert noticed_s <= 10, (cut_at, broken)
    held = (await cluster.progress(4, REGION)).snapshot_received
    assert held < store, "the snapshot was whole before the cut"
    # the fault's duration: a minute from when it was made, however soon it was noticed
    await asyncio.sleep(max(0.0, CUT_S - (datetime.now() - cut_at).total_seconds()))
    Faults(network).heal(cut.id)
    await cluster.throttle([1], 0)

    result = await migration.result()
    assert isinstance(result, MigrationResult), result
    channel = next(
        c for c in (await cluster.progress(1, REGION)).channels if c.receiver.node_id == 4
    )
    # the store once, and what was in flight at the cut: resumed, not started over
    print(f"resumed: {channel.snapshot_bytes_sent / store:.2f}x the store's bytes sent")
    assert channel.snapshot_bytes_sent <= 1.15 * store, (channel.snapshot_bytes_sent, store)
    await cluster.converged(REGION, [1, 2, 4], count=POINTS)


async def sender_breaks(cluster: Cluster, since: datetime) -> list[datetime]:
    return [
        b.at
        for b in stream_breaks(cluster)
        if b.node == 1 and b.kind == "snapshot" and b.end == "sender" and b.at >= since
    ]


async def test_quorum_writes_behind_a_partition_fail_clearly_and_converge_after_the_heal(
    stack: Stack, network: Network
) -> None:
    """Partition {1} | {2, 3}: a quorum write through node 1 fails within its deadline saying
    how many replicas applied it, and `airctl write` (from the client host) prints the node's
    reason and exits non-zero within 30 s; through node 2 it succeeds; healed, every replica
    holds every point, the refused ones node 1 applied included."""
    cluster = stack.cluster
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(REGION, [1, 2, 3])
    nodes = [NodeEntry(id=i, address=n.address) for i, n in sorted(cluster.nodes.items())]
    cluster_file = cluster.root / "cluster.json"
    ClusterFile(nodes=nodes).save(cluster_file)
    faults = Faults(network)
    faults.apply(Partition((("n1",), ("n2", "n3"))))

    behind = pb.WriteRequest(
        region=REGION, points=[pb.Point(series="behind", timestamp=1, value=1.0)],
        acks=pb.ACKS_QUORUM,
    )  # fmt: skip
    began = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await cluster.stub(1).Write(behind, timeout=20)
    assert time.monotonic() - began < 20  # the node's answer, before the call's deadline
    assert status_of(refused.value) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "applied by 1 of the 2 replicas quorum needs" in (refused.value.details() or "")

    airctl = [sys.executable, "-m", "airctl", "--cluster", str(cluster_file)]
    began = time.monotonic()
    status, output = await run_on(
        network.client, [*airctl, "write", str(REGION), "--count", "5", "--acks", "quorum",
                         "--via", "1"],
    )  # fmt: skip
    assert status != 0 and time.monotonic() - began < 30, output
    assert "quorum needs" in output and "Traceback" not in output, output
    status, output = await run_on(
        network.client, [*airctl, "write", str(REGION), "--count", "5", "--acks", "quorum",
                         "--via", "2"],
    )  # fmt: skip
    assert status == 0, output
    through_2 = LoadWriter(cluster, REGION, [2], series="through-2", acks=pb.ACKS_QUORUM)
    await through_2.run(count=100)

    faults.heal()
    # one point refused behind the cut, five refused by airctl through node 1 (node 1 applied
    # them all), five acknowledged through node 2, and the load's
    await cluster.converged(REGION, [1, 2, 3], count=1 + 5 + 5 + len(through_2.acked))
    for i in (1, 2, 3):
        assert await missing_points(cluster, i, REGION, through_2.acked) == [], i
    read = await cluster.stub(3).Read(pb.ReadRequest(region=REGION, series="behind"))
    assert [p.timestamp for p in read.points] == [1]  # refused, not lost: it replicated
