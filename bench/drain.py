"""Draining a node: wall time under a concurrency bound, next to single migrations.

Prints JSON for three cases in one run. A crowded node: single migrations on an empty cluster,
then a node holding `--crowded` regions drained one move at a time, its time per move beside
them. Then two shapes, many small regions and a few large ones. For each,
the drain's wall time and regions/s at the bound, the history events of its largest run (it
continues as new), and next to it the single-migration times measured in the same run (all of
them for the large shape; a sample, extrapolated, for the small one).
Run: `python bench/drain.py [--crowded 300] [--small 200] [--large 4] [--large-points 200000]
[--bound 8]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client

from bench.common import bench_stack, create_region
from client.starter import start_change, start_operation
from contracts.models import DrainInput, MigrationInput
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from stack.processes import NodeProcess
from workflows.drain import DrainNodeWorkflow
from workflows.migration import RegionMigrationWorkflow


class Bench:
    def __init__(self, client: Client, clients: NodeClients, nodes: list[NodeProcess]):
        self.client = client
        self.clients = clients
        self.nodes = nodes
        self.next_region = 1

    async def regions(self, count: int, points: int) -> list[int]:
        made = list(range(self.next_region, self.next_region + count))
        self.next_region += count
        for region in made:
            await create_region(self.clients, self.nodes[:3], region)
            stub = self.clients.stub(self.nodes[0].address)
            for start in range(0, points, 10_000):
                rows = [
                    pb.Point(series=f"s{t % 10}", timestamp=t, value=t)
                    for t in range(start, min(start + 10_000, points))
                ]
                await stub.Write(pb.WriteRequest(region=region, points=rows))
        return made

    async def single(self, region: int) -> float:
        began = time.perf_counter()
        req = MigrationInput(region=region, from_node=1, to_node=4)
        await (await start_change(self.client, RegionMigrationWorkflow.run, req)).handle.result()
        return time.perf_counter() - began

    async def drain(self, bound: int) -> tuple[float, int]:
        """The drain's wall time, and the events of its largest run."""
        began, since = time.perf_counter(), datetime.now(UTC)
        req = DrainInput(node=1, max_concurrent=bound, max_per_node=bound)
        started = await start_operation(self.client, DrainNodeWorkflow.run, req)
        result = await started.handle.result()
        wall = time.perf_counter() - began
        assert not result.failed, result.failed
        return wall, await self.largest_run(started.handle.id, since)

    async def largest_run(self, workflow_id: str, since: datetime) -> int:
        """The most history events of any run of this drain (it continues as new); the runs
        of an earlier drain of the same node, under the same id, left out."""
        largest = 0
        query = f"WorkflowId = '{workflow_id}' AND StartTime >= '{since.isoformat()}'"
        async for run in self.client.list_workflows(query):
            handle = self.client.get_workflow_handle(workflow_id, run_id=run.run_id)
            largest = max(largest, len((await handle.fetch_history()).events))
        return largest

    async def back(self, regions: list[int]) -> None:
        """Move regions 4 -> 1 again, so the next shape drains node 1 alone."""
        for region in regions:
            req = MigrationInput(region=region, from_node=4, to_node=1)
            await (
                await start_change(self.client, RegionMigrationWorkflow.run, req)
            ).handle.result()


async def shape(
    bench: Bench, count: int, points: int, bound: int, sample: int
) -> dict[str, object]:
    singles_regions = await bench.regions(min(sample, count), points)
    singles = [await bench.single(r) for r in singles_regions]
    await bench.back(singles_regions)
    await bench.regions(count - len(singles_regions), points)
    wall, largest_run = await bench.drain(bound)
    estimated_sum = statistics.mean(singles) * count
    return {
        "regions": count,
        "points_per_region": points,
        "bound": bound,
        "drain_wall_s": round(wall, 2),
        "regions_per_s": round(count / wall, 2),
        "max_history_events": largest_run,
        "single_migration_mean_s": round(statistics.mean(singles), 3),
        "singles_measured": len(singles),
        "sum_of_singles_s": round(estimated_sum, 2),
        "speedup_vs_one_at_a_time": round(estimated_sum / wall, 2),
    }


async def crowded(bench: Bench, count: int) -> dict[str, object]:
    """Single migrations on an empty cluster, then a drain one move at a time of a node
    holding `count` regions: the time per move beside the time of one migration alone."""
    alone = await bench.regions(3, 10)
    singles = [await bench.single(r) for r in alone]
    await bench.back(alone)
    await bench.regions(count, 10)
    wall, largest_run = await bench.drain(1)
    per_move = wall / (count + len(alone))
    return {
        "regions_held": count + len(alone),
        "bound": 1,
        "single_on_empty_cluster_s": round(statistics.mean(singles), 3),
        "drain_per_move_s": round(per_move, 3),
        "per_move_vs_single": round(per_move / statistics.mean(singles), 2),
        "max_history_events": largest_run,
    }


async def main(args: argparse.Namespace) -> dict[str, object]:
    async with bench_stack() as (stack, client, clients):
        bench = Bench(client, clients, stack.nodes)
        results: dict[str, object] = {}
        if args.crowded:  # first, while the cluster is empty
            results["crowded_node"] = await crowded(bench, args.crowded)
        results["small_regions"] = await shape(bench, args.small, 10, args.bound, sample=10)
        results["large_regions"] = await shape(
            bench, args.large, args.large_points, 2, sample=args.large
        )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=4)
    parser.add_argument("--large-points", type=int, default=200_000)
    parser.add_argument("--bound", type=int, default=8)
    parser.add_argument(
        "--crowded", type=int, default=300, help="regions on the node drained one by one (0: skip)"
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args)), indent=2))
