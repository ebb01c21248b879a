"""Snapshot bytes across zones in a drain: with each new replica copied from its own zone, and
without (the least busy holder anywhere), in the same run.

Six nodes in three zones (1 and 4 in a, 2 and 5 in b, 3 and 6 in c); `--regions` regions of
`--points` points, each on nodes 1, 2, 3. First node 1 is drained as the drain does by default:
every region goes to node 4 (zone a, the one place that keeps it in three zones) and copies
from node 1 (the holder in node 4's zone). Then node 4 is drained with `nearest_source` off:
every region goes back to node 1 (zone a again) and copies from node 2 or 3, the least busy
holder, in another zone. Same regions, same destination zone, same run. Each drain's snapshot
bytes, read from the nodes' `air_snapshot_bytes_sent_total{from_zone, to_zone}`, split into
those that crossed zones and those that did not, and its wall time.
Run: `python bench/zones.py [--regions 12] [--points 200000] [--bound 4]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client

from bench.common import bench_stack, create_region
from client.starter import start_operation
from contracts.models import DrainInput
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from stack.local import LocalStack
from workflows.drain import DrainNodeWorkflow

SENT = re.compile(r'^air_snapshot_bytes_sent_total\{from_zone="(\w+)",to_zone="(\w+)"\} (\S+)$')


def snapshot_bytes(stack: LocalStack) -> dict[tuple[str, str], float]:
    """Every node's snapshot bytes sent so far, by (from zone, to zone)."""
    sent: dict[tuple[str, str], float] = {}
    for name, url in stack.metrics_urls.items():
        if not name.startswith("node"):
            continue
        with urllib.request.urlopen(url, timeout=10) as reply:  # loopback only
            for line in reply.read().decode().splitlines():
                if found := SENT.match(line):
                    key = (found[1], found[2])
                    sent[key] = sent.get(key, 0.0) + float(found[3])
    return sent


async def fill(clients: NodeClients, stack: LocalStack, regions: int, points: int) -> None:
    for region in range(1, regions + 1):
        await create_region(clients, stack.nodes[:3], region)
        stub = clients.stub(stack.nodes[0].address)
        for start in range(0, points, 10_000):
            rows = [
                pb.Point(series=f"s{t % 10}", timestamp=t, value=t)
                for t in range(start, min(start + 10_000, points))
            ]
            await stub.Write(pb.WriteRequest(region=region, points=rows))


async def drain(
    client: Client, stack: LocalStack, node: int, nearest: bool, bound: int
) -> dict[str, object]:
    before = snapshot_bytes(stack)
    began = time.perf_counter()
    request = DrainInput(
        node=node, max_concurrent=bound, max_per_node=bound, nearest_source=nearest
    )
    result = await (await start_operation(client, DrainNodeWorkflow.run, request)).handle.result()
    wall = time.perf_counter() - began
    assert not result.failed and not result.kept, result
    await asyncio.sleep(1)  # the last chunks' counters
    after = snapshot_bytes(stack)
    sent = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    cross = sum(v for (f, t), v in sent.items() if f != t)
    total = sum(sent.values())
    return {
        "drained_node": node,
        "snapshot_from": "zone" if nearest else "any",
        "moves": len(result.moved),
        "destinations": sorted({m.to_node for m in result.moved}),
        "wall_s": round(wall, 2),
        "snapshot_bytes": int(total),
        "cross_zone_bytes": int(cross),
        "same_zone_bytes": int(total - cross),
        "cross_zone_share": round(cross / total, 3) if total else None,
        "by_zones": {f"{f}->{t}": int(v) for (f, t), v in sorted(sent.items()) if v},
    }


async def main(args: argparse.Namespace) -> dict[str, object]:
    async with bench_stack(nodes=6, zones=3) as (stack, client, clients):
        await fill(clients, stack, args.regions, args.points)
        zoned = await drain(client, stack, 1, nearest=True, bound=args.bound)
        anywhere = await drain(client, stack, 4, nearest=False, bound=args.bound)
    return {
        "regions": args.regions,
        "points_per_region": args.points,
        "bound": args.bound,
        "snapshot_from_own_zone": zoned,
        "snapshot_from_least_busy_anywhere": anywhere,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--regions", type=int, default=12)
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--bound", type=int, default=4)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
