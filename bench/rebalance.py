"""Rebalancing onto two empty nodes: the workflow's wall time beside the same moves one at a time.

Prints JSON. Regions of `--points` points each on nodes 1-3, nodes 4 and 5 empty. In the same
run: the rebalance's moves (planned as the workflow plans them) run as single migrations one
after another and are timed (the baseline), then moved back; then the rebalance runs at
`--bound` and is timed. Also the spread (the fullest node's store bytes over the emptiest's)
before and after, and the moves and rounds.
Run: `python bench/rebalance.py [--regions 30] [--points 20000] [--bound 4]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client

from bench.common import bench_stack, create_region
from client.starter import start_change, start_operation
from contracts.activity_models import ClusterDescription, Peer
from contracts.models import MigrationInput, Move, RebalanceInput
from planning.balance import plan_rounds, spread
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from runtime.reading import describe_cluster
from stack.processes import NodeProcess
from workflows.migration import RegionMigrationWorkflow
from workflows.rebalance import RebalanceWorkflow


async def describe(clients: NodeClients, nodes: list[NodeProcess]) -> ClusterDescription:
    return await describe_cluster(
        [Peer(node_id=n.node_id, address=n.address) for n in nodes], clients
    )


async def fill(clients: NodeClients, nodes: list[NodeProcess], regions: int, points: int) -> None:
    for region in range(1, regions + 1):
        await create_region(clients, nodes[:3], region)
        stub = clients.stub(nodes[0].address)
        for start in range(0, points, 10_000):
            rows = [
                pb.Point(series=f"s{t % 10}", timestamp=t, value=t)
                for t in range(start, min(start + 10_000, points))
            ]
            await stub.Write(pb.WriteRequest(region=region, points=rows))


async def one_at_a_time(client: Client, moves: list[Move]) -> float:
    """The moves as single migrations, one after another: their summed time."""
    total = 0.0
    for m in moves:
        began = time.perf_counter()
        request = MigrationInput(
            region=m.region, from_node=m.from_node, to_node=m.to_node, coordinator=m.sources[0]
        )
        await (await start_change(client, RegionMigrationWorkflow.run, request)).handle.result()
        total += time.perf_counter() - began
    return total


async def undo(client: Client, moves: list[Move]) -> None:
    for m in reversed(moves):
        request = MigrationInput(region=m.region, from_node=m.to_node, to_node=m.from_node)
        await (await start_change(client, RegionMigrationWorkflow.run, request)).handle.result()


async def main(args: argparse.Namespace) -> dict[str, object]:
    async with bench_stack(nodes=5) as (stack, client, clients):
        await fill(clients, stack.nodes, args.regions, args.points)
        before = await describe(clients, stack.nodes)
        moves = [m for rnd in plan_rounds(before) for m in rnd.moves]
        singles = await one_at_a_time(client, moves)
        await undo(client, moves)

        began = time.perf_counter()
        request = RebalanceInput(max_concurrent=args.bound, max_per_node=args.bound)
        started = await start_operation(client, RebalanceWorkflow.run, request)
        result = await started.handle.result()
        wall = time.perf_counter() - began
        after = await describe(clients, stack.nodes)
    spread_before, spread_after = spread(before), spread(after)
    return {
        "regions": args.regions,
        "points_per_region": args.points,
        "bound": args.bound,
        "moves": len(result.moved),
        "rounds": result.rounds,
        "failed": len(result.failed),
        "rebalance_wall_s": round(wall, 2),
        "same_moves_one_at_a_time_s": round(singles, 2),
        "moves_one_at_a_time": len(moves),
        "speedup": round(singles / wall, 2),
        "bytes_per_node_before": spread_before.bytes,
        "bytes_per_node_after": spread_after.bytes,
        "replicas_per_node_after": spread_after.counts,
        "max_over_min_bytes_after": spread_after.max_over_min_bytes,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--regions", type=int, default=30)
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--bound", type=int, default=4)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
