"""What the consistency check costs: its speed beside reading the same stores, its CPU, and what
it does to the writes beside it.

Three nodes hold `--regions` regions of `--points` points each. In one run:
- the floor: every store file of node 1 read once (`cat` to /dev/null, as `cp` would);
- a check of every region at an unlimited rate: its wall time, the ratio to the floor, and the
  CPU seconds of each node and of the worker;
- one-point writes to node 2, timed while idle, then beside the floor of a paced check's CPU
  (one busy loop per node at the helper's priority, taking the same share of a core in bursts
  as long as a range's hashing, nothing else), then during a check of `--paced-regions`
  regions at the default bounds (8 MB/s and a quarter of a core per node): p50 and p99, and
  the ratios of the p99s.
Run: `python bench/check.py [--regions 100] [--points 100000]`; prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_stack, busy_loops, cpu_s, create_region
from bench.foreground import ms
from bench.migrate import pid
from client.starter import start_check
from contracts.check import DEFAULT_CPU_SHARE, DEFAULT_RATE_MB_S, CheckInput
from contracts.columns import to_columns
from contracts.ids import check_workflow_id
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients, NodeStub
from stack.processes import NodeProcess, children

UNLIMITED_MB_S = 1e6
NO_CPU_BOUND = 1.0
BATCH = 50_000  # points per load write
IDLE_S = 20  # one-point writes timed with nothing else running: about as long as the paced check
BURST_S = 0.011  # a range of 5,000 points hashed (bench/range_hash.py: 0.224 s per 100,000)


async def load(clients: NodeClients, nodes: list[NodeProcess], regions: int, points: int) -> None:
    """Every region on the three nodes, `points` points written to node 1, replicated."""
    stub = clients.stub(nodes[0].address)
    for region in range(1, regions + 1):
        await create_region(clients, nodes, region)
        for start in range(0, points, BATCH):
            rows = [(f"s{t % 100}", t, float(t)) for t in range(start, min(start + BATCH, points))]
            request = pb.WriteRequest(region=region, columns=to_columns(rows))
            await stub.Write(request, timeout=120)
    for node in nodes:  # replicated everywhere before anything is timed
        for region in range(1, regions + 1):
            await replicated(clients.stub(node.address), region, points)


async def replicated(stub: NodeStub, region: int, points: int) -> None:
    """Until the replica holds `points` points (a remote node: no event to wait on)."""
    request = pb.RegionRequest(region=region)
    while (await stub.Digest(request, timeout=30)).count < points:  # noqa: ASYNC110
        await asyncio.sleep(0.2)


def read_stores(node: NodeProcess) -> tuple[float, int]:
    """`cat` every store file of a node to /dev/null: seconds, bytes."""
    files = sorted(str(p) for p in node.data_dir.glob("region_*/store.db*"))
    began = time.perf_counter()
    subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - began, sum(Path(f).stat().st_size for f in files)


async def write_latencies(stub: NodeStub, stop: asyncio.Event, region: int) -> list[float]:
    """One-point writes to node 2, one after another, until `stop`."""
    latencies, t = [], 0
    while not stop.is_set():
        t += 1
        request = pb.WriteRequest(
            region=region, points=[pb.Point(series="fg", timestamp=t, value=1.0)]
        )
        began = time.perf_counter()
        await stub.Write(request, timeout=10)
        latencies.append(time.perf_counter() - began)
        await asyncio.sleep(0.01)
    return latencies


async def beside_busy_loops(
    stub: NodeStub, region: int, loops: int, cpu_share: float
) -> list[float]:
    """One-point writes timed for IDLE_S beside `loops` busy loops of `cpu_share`, at the
    priority of the check's helper."""
    async with busy_loops([(BURST_S, cpu_share)] * loops, lowest=True):
        stop = asyncio.Event()
        timed = asyncio.create_task(write_latencies(stub, stop, region))
        await asyncio.sleep(IDLE_S)
        stop.set()
        return await timed


async def main(
    regions: int, points: int, paced_regions: int, cpu_share: float
) -> dict[str, object]:
    async with bench_stack(nodes=3) as (stack, client, clients):
        nodes = stack.nodes
        await load(clients, nodes, regions, points)
        cp_s, store_bytes = read_stores(nodes[0])

        pids = {f"node{n.node_id}": pid(n) for n in nodes} | {"worker": pid(stack.worker)}
        cpu_before = {name: cpu_s(p) for name, p in pids.items()}
        began = time.perf_counter()
        check = await start_check(
            client,
            CheckInput(rate_mb_s=UNLIMITED_MB_S, cpu_share=NO_CPU_BOUND),
            check_workflow_id(uuid.uuid4().hex[:8]),
            stack.config.task_queue,
        )
        found = await check.result()
        check_s = time.perf_counter() - began
        # a node's with its helper process (started by this check: none ran before it)
        cpu = {
            name: round(cpu_s(p, *children(p)) - cpu_before[name], 2) for name, p in pids.items()
        }
        assert found.equal == regions, found

        fg_region = regions + 1
        await create_region(clients, nodes, fg_region)
        stub = clients.stub(nodes[1].address)
        stop = asyncio.Event()
        idle = asyncio.create_task(write_latencies(stub, stop, fg_region))
        await asyncio.sleep(IDLE_S)
        stop.set()
        idle_ms = await idle
        floor_ms = await beside_busy_loops(stub, fg_region, len(nodes), cpu_share)
        stop = asyncio.Event()
        during = asyncio.create_task(write_latencies(stub, stop, fg_region))
        began = time.perf_counter()
        paced = await start_check(
            client,
            CheckInput(
                regions=list(range(1, paced_regions + 1)),
                rate_mb_s=DEFAULT_RATE_MB_S,
                cpu_share=cpu_share,
            ),
            check_workflow_id(uuid.uuid4().hex[:8]),
            stack.config.task_queue,
        )
        paced_found = await paced.result()
        paced_s = time.perf_counter() - began
        stop.set()
        during_ms = await during
    idle_lat, floor_lat, during_lat = ms(idle_ms), ms(floor_ms), ms(during_ms)
    return {
        "regions": regions,
        "points_per_region": points,
        "store_bytes_per_node": store_bytes,
        "floor_read_stores_s": round(cp_s, 3),
        "check_unlimited_s": round(check_s, 3),
        "ratios": {
            "check_vs_read_floor": round(check_s / cp_s, 1),
            "foreground_p99_during_vs_idle": round(during_lat["p99_ms"] / idle_lat["p99_ms"], 2),
            "foreground_p99_busy_loops_vs_idle": round(floor_lat["p99_ms"] / idle_lat["p99_ms"], 2),
            "foreground_p99_during_vs_busy_loops": round(
                during_lat["p99_ms"] / floor_lat["p99_ms"], 2
            ),
        },
        "check_mb_s_per_node": round(store_bytes / check_s / 1e6, 1),
        "cpu_s_during_unlimited_check": cpu,
        "paced_check": {
            "regions": paced_regions,
            "rate_mb_s": DEFAULT_RATE_MB_S,
            "cpu_share": cpu_share,
            "seconds": round(paced_s, 2),
            "bytes_read_per_node": paced_found.bytes_read,
            "read_mb_s_per_node": round(paced_found.bytes_read / paced_s / 1e6, 2),
        },
        "foreground": {
            "idle": idle_lat,
            "beside_busy_loops_of_the_share": floor_lat,
            "during_paced_check": during_lat,
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--regions", type=int, default=100)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--paced-regions", type=int, default=10)
    parser.add_argument(
        "--cpu", type=float, default=DEFAULT_CPU_SHARE, help="the paced check's (above 0)"
    )
    a = parser.parse_args()
    if a.cpu <= 0:
        parser.error(f"--cpu must be above 0, not {a.cpu}")
    result = asyncio.run(main(a.regions, a.points, a.paced_regions, a.cpu))
    print(json.dumps(result, indent=2))
