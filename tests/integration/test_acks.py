"""Acknowledgement levels: a write at `quorum` survives the permanent loss of the node that took
it; one at `one` may not; a level that cannot be met fails the write and says how far it got,
and `airctl write` and `load` say so at once rather than trying for minutes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from contracts.models import RepairInput, RepairResult
from protos import air_node_pb2 as pb
from runtime.cluster_file import ClusterFile, NodeEntry
from tests.support.cluster import HELD, Cluster, status_of
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from workflows.repair import RepairNodeWorkflow

REGION = 771


async def refused_write(cluster: Cluster, node: int, acks: pb.Acks) -> grpc.aio.AioRpcError:
    point = pb.Point(series="refused", timestamp=int(acks), value=1.0)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        request = pb.WriteRequest(region=REGION, points=[point], acks=acks)
        # the node answers at 90% of the deadline: 0.5 s to spare for a busy machine
        await cluster.stub(node).Write(request, timeout=5)
    assert status_of(refused.value) == grpc.StatusCode.DEADLINE_EXCEEDED, refused.value
    return refused.value


async def test_quorum_writes_survive_the_loss_of_the_node_that_took_them(stack: Stack) -> None:
    cluster = await stack.four_nodes(REGION)
    quorum = LoadWriter(cluster, REGION, [3], series="quorum", acks=pb.ACKS_QUORUM)
    await quorum.run(count=200)
    cluster.nodes[2].send_signal(signal.SIGSTOP)
    await quorum.run(count=200)  # node 3 and node 1 are a majority
    assert len(quorum.acked) == 400 and quorum.refusals == 0
    refused = await refused_write(cluster, 3, pb.ACKS_ALL)  # node 2 is away
    assert "applied by 2 of the 3 replicas all needs (nodes [1, 3])" in (refused.details() or "")

    await cluster.throttle([3], HELD)  # from now on node 3's writes reach no other node
    one = LoadWriter(cluster, REGION, [3], series="one")
    await one.run(count=50)
    assert len(one.acked) == 50  # acknowledged by node 3 alone
    refused = await refused_write(cluster, 3, pb.ACKS_QUORUM)
    assert "applied by 1 of the 2 replicas quorum needs (nodes [3])" in (refused.details() or "")

    cluster.nodes[3].kill()  # for good, with what it never replicated
    cluster.nodes[2].send_signal(signal.SIGCONT)
    handle = await stack.operation(RepairNodeWorkflow.run, RepairInput(node=3))
    result: RepairResult = await stack.client.get_workflow_handle(
        handle.id, result_type=RepairResult
    ).result()
    assert result.failed == {}, result
    for i in (1, 2, 4):
        assert await missing_points(cluster, i, REGION, quorum.acked) == [], i
        # what `one` risks: acknowledged, and gone with the node that took it
        assert len(await missing_points(cluster, i, REGION, one.acked)) == 50, i


async def airctl(cluster_file: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """An airctl process (the event loop runs meanwhile) and how long it took."""
    began = time.monotonic()
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "airctl", "--cluster", str(cluster_file), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, time.monotonic() - began


async def test_airctl_says_why_a_quorum_write_behind_a_cut_fails_and_exits(
    cluster: Cluster,
) -> None:
    region = 772
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(region, [1, 2, 3])
    cluster_file = cluster.root / "cluster.json"
    entries = [NodeEntry(id=i, address=n.address) for i, n in sorted(cluster.nodes.items())]
    ClusterFile(nodes=entries).save(cluster_file)
    wrote, _ = await airctl(cluster_file, "write", str(region), "--count", "40", "--acks", "quorum")
    assert wrote.returncode == 0 and "40 points acknowledged" in wrote.stdout, wrote.stderr

    for i in (2, 3):  # frozen: silent, as behind a cut
        cluster.nodes[i].send_signal(signal.SIGSTOP)
    try:
        refused, took = await airctl(
            cluster_file, "write", str(region), "--count", "40", "--acks", "quorum", "--via", "1"
        )
        # asking every node first takes 5 s for the frozen ones; then node 1's answer, at 90%
        # of the write's 5 s deadline: half the 30 s bound, a busy machine's slack included
        assert refused.returncode != 0 and took < 20, (took, refused.stderr)
        assert "0 of 40 points acknowledged; node 1 refused the write: write" in (refused.stderr)
        assert "applied by 1 of the 2 replicas quorum needs (nodes [1])" in refused.stderr
        assert "Traceback" not in refused.stderr and "TimeoutError" not in refused.stderr
        log = cluster.root / "acked.log"
        loaded, took = await airctl(
            cluster_file, "load", str(region), "--seconds", "60", "--acks", "quorum",
            "--acked-log", str(log),
        )  # fmt: skip
        assert loaded.returncode != 0 and took < 20, (took, loaded.stderr)
        assert "0 points acknowledged; node 1 refused the write" in loaded.stderr
        assert "Traceback" not in loaded.stderr
    finally:
        for i in (2, 3):
            cluster.nodes[i].send_signal(signal.SIGCONT)
