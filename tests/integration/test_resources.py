"""A node out of file descriptors says so (RESOURCE_EXHAUSTED, naming them), keeps serving, and
gets them back as its idle regions rest: an idle region holds none."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc

from protos import air_node_pb2 as pb
from stack.processes import NodeProcess
from tests.support.cluster import Cluster
from tests.support.waiting import eventually

LIMIT = 64  # open files: a few dozen regions writing at once exhaust it
REGIONS = 60
GROUP = 8  # regions that write at once well within the limit: 3 descriptors each


class LimitedNode(NodeProcess):
    """A node whose open-file limit, soft and hard, is LIMIT."""

    def command(self) -> list[str]:
        return ["bash", "-c", f'ulimit -n {LIMIT} && exec "$@"', "bash", *super().command()]


def descriptors(node: NodeProcess) -> int:
    assert node.proc is not None
    return len(os.listdir(f"/proc/{node.proc.pid}/fd"))


async def test_a_node_out_of_descriptors_says_so_and_gets_them_back_as_regions_rest(
    cluster: Cluster, tmp_path: Path
) -> None:
    node = LimitedNode(
        1, tmp_path / "node1", extra_args=["--rest-after", "1", "--guardian-interval", "0.5"]
    )
    cluster.nodes[1] = node.start()
    assert f"open-file limit {LIMIT} (the hard limit)" in node.output()
    for region in range(1, REGIONS + 1):  # made resting: creating holds no descriptor
        await cluster.create_region(region, [1])
    resting = descriptors(node)
    assert resting < LIMIT // 2, resting

    def write(region: int) -> pb.WriteRequest:
        return pb.WriteRequest(region=region, points=[pb.Point(series="s", timestamp=region)])

    answers = await asyncio.gather(
        *(cluster.stub(1).Write(write(r), timeout=30) for r in range(1, REGIONS + 1)),
        return_exceptions=True,
    )
    refused = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
    assert refused, "every region wrote at once within the limit"
    assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}, refused
    assert all("has run out of file descriptors" in (e.details() or "") for e in refused)
    assert len(await cluster.regions_of(1)) == REGIONS  # it goes on serving

    await eventually(
        lambda: asyncio.sleep(0, descriptors(node)),
        lambda count: count <= resting + 1,
        what="the idle regions to rest",
    )
    failed = [r for r, a in enumerate(answers, start=1) if isinstance(a, BaseException)]
    groups = [failed[i : i + GROUP] for i in range(0, len(failed), GROUP)]
    for group in groups:  # a few at once, resting before the next
        await asyncio.gather(*(cluster.stub(1).Write(write(r), timeout=30) for r in group))
        await eventually(
            lambda: asyncio.sleep(0, descriptors(node)),
            lambda count: count <= resting + 1,
            what=f"regions {group} to rest",
        )
    for region in range(1, REGIONS + 1):
        assert (await cluster.digest(1, region)).count == 1, region
