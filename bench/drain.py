"""Draining a node: wall time under a concurrency bound, next to single migrations.

Prints JSON for three cases in one run. A crowded node: single migrations on an empty cluster,
then a node holding `--crowded` regions drained one move at a time, its time per move beside
them. Then two shapes, many small regions and a few large ones. For each,
the drain's wall time and regions/s at the bound, the history events of its largest run (it
continues as new), and next to it the single-migration times measured in the same run (all of
them for the large shape; a sample, extrapolated, for the small one).
Run: `python bench/drain.py [--crowded 300] [--small 200] [--large 4] [--large-points 200000]
[--bound 8]`.

`--crowd-drain` measures instead whether a drain slows down among many regions (issue 34): the
same drain twice in one run, each on a fresh stack of four nodes. Empty: node 1 holds `--moved`
regions of 10 points (on nodes 1-3, so each goes to node 4) and the cluster nothing else.
Crowded: the same, while nodes 2, 3 and 4 also hold `--crowd` idle regions of their own (by
default 9,000: 10,000 on nodes 2 and 3, and on node 4 once drained). Both drain at `--bound`,
once every node has rested (at least `--settle` seconds, then until each uses under
`--idle-below` of a core). Prints JSON per case: the regions moved, wall seconds, regions/s,
the largest run's history events (and bytes: its first run holds the cluster's description),
the regions each node held before and after, each process's CPU seconds during the drain and
the load average; then the crowded rate over the empty one.
Run: `python bench/drain.py --crowd-drain [--moved 1000] [--crowd 9000] [--bound 8]
[--settle 40] [--idle-below 0.05]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client

from bench.common import bench_stack, cpu_s, create_regions, idle_cpu
from client.starter import start_change, start_operation
from contracts.models import DrainInput, MigrationInput
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from stack.local import LocalStack
from stack.processes import NodeProcess
from workflows.drain import DrainNodeWorkflow
from workflows.migration import RegionMigrationWorkflow


class Bench:
    def __init__(self, client: Client, clients: NodeClients, nodes: list[NodeProcess]):
        self.client = client
        self.clients = clients
        self.nodes = nodes
        self.next_region = 1

    async def regions(
        self, count: int, points: int, on: tuple[int, ...] = (1, 2, 3), concurrency: int = 1
    ) -> list[int]:
        """`count` new regions with a replica on each node of `on`, `points` points each
        written through the first; `concurrency` creations (and regions written) at once."""
        made = list(range(self.next_region, self.next_region + count))
        self.next_region += count
        holders = [self.nodes[i - 1] for i in on]
        await create_regions(self.clients, holders, made, concurrency)
        stub = self.clients.stub(holders[0].address)
        writing = asyncio.Semaphore(concurrency)

        async def write(region: int) -> None:
            async with writing:
                for start in range(0, points, 10_000):
                    rows = [
                        pb.Point(series=f"s{t % 10}", timestamp=t, value=t)
                        for t in range(start, min(start + 10_000, points))
                    ]
                    await stub.Write(pb.WriteRequest(region=region, points=rows))

        await asyncio.gather(*(write(r) for r in made))
        return made

    async def single(self, region: int) -> float:
        began = time.perf_counter()
        req = MigrationInput(region=region, from_node=1, to_node=4)
        await (await start_change(self.client, RegionMigrationWorkflow.run, req)).handle.result()
        return time.perf_counter() - began

    async def drain(self, bound: int) -> tuple[float, int, int, int]:
        """The drain's wall time, the events and bytes of its largest run (each the most of
        any run), and the regions it moved."""
        began, since = time.perf_counter(), datetime.now(UTC)
        req = DrainInput(node=1, max_concurrent=bound, max_per_node=bound)
        started = await start_operation(self.client, DrainNodeWorkflow.run, req)
        result = await started.handle.result()
        wall = time.perf_counter() - began
        assert not result.failed, result.failed
        events, size = await self.largest_run(started.handle.id, since)
        return wall, events, size, len(result.moved)

    async def largest_run(self, workflow_id: str, since: datetime) -> tuple[int, int]:
        """The most history events, and bytes, of any run of this drain (it continues as
        new); the runs of an earlier drain of the same node, under the same id, left out."""
        events = size = 0
        query = f"WorkflowId = '{workflow_id}' AND StartTime >= '{since.isoformat()}'"
        async for run in self.client.list_workflows(query):
            handle = self.client.get_workflow_handle(workflow_id, run_id=run.run_id)
            history = (await handle.fetch_history()).events
            events = max(events, len(history))
            size = max(size, sum(e.ByteSize() for e in history))
        return events, size

    async def held(self) -> dict[str, int]:
        """How many regions each node holds."""
        counts = {}
        for node in self.nodes:
            reply = await self.clients.stub(node.address).ListRegions(
                pb.ListRegionsRequest(), timeout=60
            )
            counts[f"node{node.node_id}"] = len(reply.regions)
        return counts

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
    wall, largest_run, _, _ = await bench.drain(bound)
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
    wall, largest_run, _, _ = await bench.drain(1)
    per_move = wall / (count + len(alone))
    return {
        "regions_held": count + len(alone),
        "bound": 1,
        "single_on_empty_cluster_s": round(statistics.mean(singles), 3),
        "drain_per_move_s": round(per_move, 3),
        "per_move_vs_single": round(per_move / statistics.mean(singles), 2),
        "max_history_events": largest_run,
    }


async def until_idle(
    nodes: list[NodeProcess], least: float, below: float, most: float = 600.0
) -> tuple[float, list[float]]:
    """Wait `least` seconds (regions rest after 30 s without a write), then until each node
    uses under `below` of a core over 5 s, `most` seconds at most: the seconds waited, and each
    node's CPU over the last 5 s."""
    began = time.perf_counter()
    await asyncio.sleep(least)
    while True:
        cpu = await idle_cpu(nodes, 5.0)
        waited = time.perf_counter() - began
        if max(cpu) < below or waited >= most:
            return round(waited, 1), cpu


def cpu_by_process(stack: LocalStack) -> dict[str, float]:
    """CPU seconds used so far by each process of the stack: nodes, worker, Temporal server."""
    named = {f"node{n.node_id}": n.proc for n in stack.nodes}
    named |= {w.name: w.proc for w in stack.workers} | {"temporal": stack.temporal.proc}
    return {name: cpu_s(proc.pid) for name, proc in named.items() if proc}


async def drain_among(args: argparse.Namespace, crowd: int) -> tuple[float, dict[str, object]]:
    """On a fresh stack, `args.moved` regions of 10 points on nodes 1-3 and `crowd` idle ones
    on nodes 2-4; once the nodes rest, node 1 drained (to node 4) at `args.bound`: its
    regions/s, and the report."""
    async with bench_stack() as (stack, client, clients):
        bench = Bench(client, clients, stack.nodes)
        began = time.perf_counter()
        await bench.regions(args.moved, 10, concurrency=16)
        await bench.regions(crowd, 0, on=(2, 3, 4), concurrency=16)
        setup = time.perf_counter() - began
        settled, resting_cpu = await until_idle(stack.nodes, args.settle, args.idle_below)
        held_before = await bench.held()
        cpu_before, load_before = cpu_by_process(stack), os.getloadavg()[0]
        wall, largest_run, largest_bytes, moved = await bench.drain(args.bound)
        cpu_after, load_after = cpu_by_process(stack), os.getloadavg()[0]
        return moved / wall, {
            "crowd_regions": crowd,
            "regions_moved": moved,
            "bound": args.bound,
            "drain_wall_s": round(wall, 2),
            "regions_per_s": round(moved / wall, 2),
            "max_history_events": largest_run,
            "max_history_bytes": largest_bytes,
            "held_before": held_before,
            "held_after": await bench.held(),
            "setup_s": round(setup, 1),
            "settle_s": settled,
            "node_cpu_before_drain": resting_cpu,
            "cpu_s_during_drain": {
                name: round(cpu_after[name] - used, 1) for name, used in cpu_before.items()
            },
            "load_avg_1m_before_after": [round(load_before, 2), round(load_after, 2)],
        }


async def crowd_drain(args: argparse.Namespace) -> dict[str, object]:
    empty_rate, empty = await drain_among(args, 0)
    crowded_rate, crowded = await drain_among(args, args.crowd)
    ratio = round(crowded_rate / empty_rate, 2)
    return {"empty": empty, "crowded": crowded, "ratios": {"crowded_vs_empty_rate": ratio}}


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
    parser.add_argument(
        "--crowd-drain",
        action="store_true",
        help="only the drain of --moved regions on an empty cluster, then among --crowd others",
    )
    parser.add_argument("--moved", type=int, default=1000, help="--crowd-drain: regions drained")
    parser.add_argument(
        "--crowd", type=int, default=9000, help="--crowd-drain: idle regions on nodes 2, 3, 4"
    )
    parser.add_argument(
        "--settle", type=float, default=40.0, help="--crowd-drain: seconds at least before"
    )
    parser.add_argument(
        "--idle-below",
        type=float,
        default=0.05,
        help="--crowd-drain: then until each node's CPU is under this fraction of a core",
    )
    args = parser.parse_args()
    run = crowd_drain(args) if args.crowd_drain else main(args)
    print(json.dumps(asyncio.run(run), indent=2))
