"""A node of a real cluster holds thousands of regions: migrations among 1,000 of them, on three
nodes, under write load, lose no acknowledged write, and a node of 2,000 killed under writes
comes back whole. (Speed is the benchmarks' to measure.)"""

from __future__ import annotations

import asyncio

import pytest

from contracts.models import MigrationInput, MigrationResult
from tests.support.chaos import restart
from tests.support.cluster import Cluster
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from workflows.migration import RegionMigrationWorkflow

pytestmark = pytest.mark.slow

FIRST, COUNT = 10_001, 1_000  # apart from every other test's regions
MOVED = [FIRST, FIRST + 499, FIRST + COUNT - 1]  # the first, one in the middle, the last
LOADED = MOVED[1]


async def test_migrations_among_a_thousand_regions_lose_no_write(stack: Stack) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    creating = asyncio.Semaphore(16)

    async def create(region: int) -> None:
        async with creating:
            await cluster.create_region(region, [1, 2, 3])

    await asyncio.gather(*(create(r) for r in range(FIRST, FIRST + COUNT)))
    stack.start_worker()
    load = LoadWriter(cluster, LOADED, [1, 2, 3, 4]).start()
    await load.wait_acked(200)

    handles = [
        await stack.start(
            RegionMigrationWorkflow.run, MigrationInput(region=r, from_node=1, to_node=4)
        )
        for r in MOVED
    ]
    results: list[MigrationResult] = await asyncio.gather(*(h.result() for h in handles))
    assert all(r.remove is not None and r.remove.clean for r in results), results
    await load.wait_acked(len(load.acked) + 200)  # the moved region still takes writes
    acked = await load.stop()

    held = {i: await cluster.regions_of(i) for i in (1, 2, 3, 4)}
    assert sorted(held[4]) == MOVED and len(held[1]) == COUNT - len(MOVED)
    assert len(held[2]) == len(held[3]) == COUNT
    await cluster.converged(LOADED, [2, 3, 4], count=len(acked))
    for i in (2, 3, 4):
        assert await missing_points(cluster, i, LOADED, acked) == [], i


RESTARTED_FIRST, RESTARTED_COUNT = 20_001, 2_000
WRITTEN = list(range(RESTARTED_FIRST, RESTARTED_FIRST + RESTARTED_COUNT, 200))  # ten of them


async def test_a_node_of_two_thousand_regions_killed_under_writes_comes_back_whole(
    cluster: Cluster,
) -> None:
    """SIGKILLed while clients write to some of its regions, a node holding 2,000 regions
    serves every one of them again after its restart (its peer confirming each), and every
    acknowledged write is on both replicas of each region written."""
    for i in (1, 2):
        cluster.add_node(i, extra_args=["--rest-after", "1"])  # most regions rest meanwhile
    creating = asyncio.Semaphore(16)

    async def create(region: int) -> None:
        async with creating:
            await cluster.create_region(region, [1, 2])

    regions = range(RESTARTED_FIRST, RESTARTED_FIRST + RESTARTED_COUNT)
    await asyncio.gather(*(create(r) for r in regions))
    loads = [LoadWriter(cluster, r, [1, 2]).start() for r in WRITTEN]
    for load in loads:
        await load.wait_acked(40)

    cluster.nodes[1].kill()
    for load in loads:  # through node 2 alone meanwhile
        await load.wait_acked(len(load.acked) + 40)
    await restart(cluster.nodes[1])
    assert set(await cluster.regions_of(1)) == set(regions)
    for load in loads:  # through both again: node 1 confirmed its membership of each
        await load.wait_acked(len(load.acked) + 40, timeout=120)
    for region, load in zip(WRITTEN, loads, strict=True):
        acked = await load.stop()
        await cluster.converged(region, [1, 2], count=len(acked))
        for i in (1, 2):
            assert await missing_points(cluster, i, region, acked) == [], (region, i)
