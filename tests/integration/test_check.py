"""The consistency check finds what is really different, names the replica, and mends it; and
under writes that overwrite each other from two origins it raises no false alarm.

A replica is made to diverge the way a disk or a bug would: its store file changed on disk
behind the node's back (a test hook, never a production path).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment

from activities.check import CheckActivities
from activities.node_calls import NodeCalls
from client.starter import start_check
from contracts.check import RANGE_POINTS, CheckInput, CheckProgress, CheckRegionInput, Verdict
from contracts.columns import to_columns
from contracts.ids import check_workflow_id
from protos import air_node_pb2 as pb
from runtime.directory import NodeDirectory
from runtime.killswitch import KillPoints
from stack.processes import children, process_state
from tests.support.cluster import Cluster
from tests.support.divergence import ADDED, CHANGED, DELETED, corrupt
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.check import CheckReplicasWorkflow

REGION = 61
HOT_KEYS = 40  # keys two origins overwrite again and again
CRAWL_MB_S = 0.0002  # a check's rate: a range of RANGE_POINTS points takes ~14 min to pace
TAIL = 10  # points after a full range: the little left to read after a kill in the first


async def write(cluster: Cluster, node: int, region: int, points: list[pb.Point]) -> None:
    await cluster.stub(node).Write(pb.WriteRequest(region=region, points=points), timeout=10)


def a_point(series: str, ts: int, value: float) -> pb.Point:
    return pb.Point(series=series, timestamp=ts, value=value)


@pytest.mark.parametrize(
    ("sql", "field"),
    [(CHANGED, "different"), (DELETED, "missing"), (ADDED, "extra")],
    ids=["changed", "missing", "extra"],
)
async def test_a_diverged_replica_is_found_named_and_rebuilt_under_load(
    stack: Stack, sql: str, field: str
) -> None:
    cluster = await stack.four_nodes(REGION)
    await write(cluster, 1, REGION, [a_point("kept", t, float(t)) for t in range(20)])
    load = LoadWriter(cluster, REGION, [1, 2, 3]).start()
    await load.wait_acked(200)
    await eventually(
        lambda: cluster.stub(2).Read(pb.ReadRequest(region=REGION, series="kept", start=0)),
        lambda reply: len(reply.points) == 20,
        what="node 2 to hold node 1's first 20 points",
    )
    corrupt(cluster, 2, REGION, sql)

    found = await check(stack, repair=False)
    assert found.equal == 0 and len(found.diverged) == 1, found
    region = found.diverged[0]
    assert region.minority == 2, region
    (diff,) = region.diffs
    assert diff.node == 2 and getattr(diff, field) == 1, diff
    assert sum((diff.missing, diff.extra, diff.different)) == 1, diff

    mended = await check(stack, repair=True)
    assert "reconstructed" in mended.diverged[0].repair, mended.diverged[0]
    after = await check(stack, repair=False)
    assert after.equal == 1 and after.diverged == [], after
    acked = await load.stop()
    await cluster.converged(REGION, [1, 2, 3], count=len(acked) + 20)  # and the 20 kept
    for node in (1, 2, 3):
        assert await missing_points(cluster, node, REGION, acked) == [], f"node {node} lost writes"


async def check(stack: Stack, repair: bool) -> CheckProgress:
    handle = await start_check(
        stack.client,
        CheckInput(regions=[REGION], repair=repair),
        check_workflow_id(uuid.uuid4().hex[:8]),
        stack.task_queue,
    )
    stack.handles.append(handle)
    return await handle.result()


async def test_writes_overwriting_each_other_from_two_origins_raise_no_false_alarm(
    cluster: Cluster,
) -> None:
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(REGION, [1, 2, 3])
    nodes = NodeDirectory(nodes={i: n.address for i, n in cluster.nodes.items()})
    activities = CheckActivities(NodeCalls(nodes, cluster.clients, KillPoints(set(), Path())))
    stop = asyncio.Event()
    written = [0, 0]

    async def overwrite(node: int, slot: int) -> None:
        rng = random.Random(node)
        while not stop.is_set():
            keys = rng.sample(range(HOT_KEYS), 10)
            await write(cluster, node, REGION, [a_point("hot", k, rng.random()) for k in keys])
            written[slot] += 1

    writers = [asyncio.create_task(overwrite(1, 0)), asyncio.create_task(overwrite(2, 1))]
    verdicts = []
    try:
        for _ in range(100):
            request = CheckRegionInput(region=REGION, rate_mb_s=0, cpu_share=1, range_points=16)
            found = await ActivityEnvironment().run(activities.check_region, request)
            verdicts.append((found.verdict, found.settled, found.unsettled))
    finally:
        stop.set()
        await asyncio.gather(*writers)
    assert all(v == Verdict.EQUAL for v, _, _ in verdicts), verdicts
    assert min(written) > 100, written  # both origins overwrote throughout
    # the checks compared settled points and met writes in flight: the case that matters
    assert any(settled for _, settled, _ in verdicts), verdicts
    assert any(unsettled for _, _, unsettled in verdicts), verdicts


async def test_a_check_killed_at_region_k_does_not_read_the_regions_before_it_again(
    stack: Stack,
) -> None:
    regions = [71, 72, 73, 74, 75]
    slow = 74  # a full range and a tail: read at a crawl, its first range holds the check there
    cluster = await stack.four_nodes(*regions)
    for region in regions:
        points = RANGE_POINTS + TAIL if region == slow else 5
        rows = [("k", t, float(t)) for t in range(points)]
        await cluster.stub(1).Write(
            pb.WriteRequest(region=region, columns=to_columns(rows)), timeout=30
        )
        await cluster.converged(region, [1, 2, 3], count=points)

    handle = await start_check(
        stack.client,
        CheckInput(regions=regions, rate_mb_s=CRAWL_MB_S),
        check_workflow_id(uuid.uuid4().hex[:8]),
        stack.task_queue,
    )
    stack.handles.append(handle)
    # the check has read region 74's first range and heartbeated it: pacing that range at the
    # crawl takes it ~14 minutes, so the worker dies mid-region every time
    await eventually(
        lambda: heartbeated(stack, handle),
        lambda d: d is not None and d["result"]["region"] == slow and d["after"] is not None,
        what=f"the check to have read region {slow}'s first range",
    )
    before = {r: await check_reads(cluster, r) for r in regions}
    progress = await handle.query(CheckReplicasWorkflow.progress)
    assert (progress.current, progress.checked) == (slow, regions.index(slow)), progress
    assert all(before[slow].values()), before
    stack.workers["worker"].kill()
    details = await heartbeated(stack, handle)
    assert details is not None and not details["done"], f"region {slow} was read: {details}"
    await asyncio.to_thread(stack.workers["worker"].start)
    # region 74's retry reads only its tail, at the crawl it was scheduled with; the next
    # region reads at the new rate
    await handle.execute_update(CheckReplicasWorkflow.set_rate, 100.0)

    result = await handle.result()
    assert result.equal == len(regions) and result.checked == len(regions), result
    after = {r: await check_reads(cluster, r) for r in regions}
    for region in regions[: regions.index(slow)]:
        assert after[region] == before[region], f"region {region} was read again"
    # resumed there, at the range it heartbeated: its tail read once more on each replica
    assert after[slow] == {n: reads + 1 for n, reads in before[slow].items()}, (before, after)
    assert all(after[r] for r in regions[regions.index(slow) :]), after


async def heartbeated(stack: Stack, handle: WorkflowHandle[Any, Any]) -> dict[str, Any] | None:
    """What the running region check last heartbeated (the range a retry resumes after)."""
    description = await handle.describe()
    for activity in description.raw_description.pending_activities:
        if activity.activity_type.name == "check_region" and activity.heartbeat_details.payloads:
            (details,) = await stack.client.data_converter.decode(
                activity.heartbeat_details.payloads
            )
            assert isinstance(details, dict), details
            return details
    return None


async def check_reads(cluster: Cluster, region: int) -> dict[int, int]:
    """Ranges each replica of `region` served to the check (nodes 1-3)."""
    reads = {}
    for node in (1, 2, 3):
        info = (await cluster.regions_of(node))[region]
        reads[node] = info.check_reads
    return reads


async def test_the_check_reads_in_a_helper_process_that_dies_with_its_node(
    cluster: Cluster,
) -> None:
    node = cluster.add_node(1)
    assert node.proc is not None
    await cluster.create_region(REGION, [1])
    assert children(node.proc.pid) == set()  # an idle node runs no helper
    await write(cluster, 1, REGION, [a_point("kept", t, 1.0) for t in range(10)])
    request = pb.CheckRangeRequest(region=REGION, settled={1: 1}, from_start=True, to_end=True)
    reply = await cluster.stub(1).CheckRange(request, timeout=30)
    assert (reply.settled, reply.unsettled, reply.cpu_s > 0) == (10, 0, True)
    helpers = children(node.proc.pid)
    assert helpers, "the range was read in the node's own process"
    node.kill()

    async def running() -> set[int]:
        return {p for p in helpers if (s := process_state(p)) is not None and s[0] != "Z"}

    await eventually(running, lambda left: not left, what="the helpers to die with their node")
