"""What a node costs per region it holds: idle CPU, listing its regions, and write latency.

Prints JSON: for each count of regions held (default 0, 100 and 1,000; `--regions`), three
nodes each holding every region (all three replicas, active, no writes): each node's CPU as a
fraction of a core over `--seconds` of idleness (from /proc, `--settle` seconds after the
regions were made), the time of a ListRegions, and
the p50/p99 latency of one-point writes to one region, node 1's anonymous memory per region and
open descriptors, the time to create and delete one more region, and the guardian passes that
overran their interval; then node 1 is SIGKILLed and started again: the time until it serves,
and until its peers have confirmed every region it holds (recovery at that count). The nodes
start afresh for each count, so each measure sits beside the others in the same run.
Run: `python bench/idle.py [--regions 0,100,1000] [--seconds 10] [--settle 10] [--writes 500]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import create_regions, idle_cpu
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from stack.processes import NodeProcess


async def list_time(clients: NodeClients, node: NodeProcess, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await clients.stub(node.address).ListRegions(pb.ListRegionsRequest(), timeout=60)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


async def write_latencies(clients: NodeClients, node: NodeProcess, writes: int) -> list[float]:
    stub = clients.stub(node.address)
    times = []
    for t in range(writes):
        request = pb.WriteRequest(region=1, points=[pb.Point(series="w", timestamp=t, value=t)])
        began = time.perf_counter()
        await stub.Write(request, timeout=10)
        times.append(time.perf_counter() - began)
    return sorted(times)


async def recovery(clients: NodeClients, node: NodeProcess, count: int) -> tuple[float, float]:
    """SIGKILL the node and start it again: seconds until it serves (its ready line), and until
    every region it holds is confirmed by its peers (each takes writes again)."""
    node.kill()
    began = time.perf_counter()
    node.start()  # returns once the node has logged that it serves
    serving = time.perf_counter() - began
    stub = clients.stub(node.address)
    region = 1
    while region <= count:
        progress = await stub.GetProgress(pb.RegionRequest(region=region), timeout=10)
        if progress.confirmed:
            region += 1
        else:  # a poll: the node has no "confirmed" stream to wait on
            await asyncio.sleep(0.01)
    return serving, time.perf_counter() - began


def rss_anon_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise RuntimeError(f"no RssAnon for pid {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def create_delete_ms(
    clients: NodeClients, node: NodeProcess, region: int, runs: int = 5
) -> tuple[float, float]:
    """Medians of creating one more region on `node` (a replica of its own) and deleting it."""
    stub = clients.stub(node.address)
    peers = [pb.Peer(node_id=node.node_id, address=node.address)]
    created, deleted = [], []
    for _ in range(runs):
        began = time.perf_counter()
        await stub.CreateLocalPeer(
            pb.CreateLocalPeerRequest(region=region, peers=peers, active=True), timeout=60
        )
        created.append(time.perf_counter() - began)
        began = time.perf_counter()
        await stub.DeleteLocalPeer(pb.RegionRequest(region=region), timeout=60)
        deleted.append(time.perf_counter() - began)
    return statistics.median(created) * 1000, statistics.median(deleted) * 1000


def guardian_overruns(node: NodeProcess) -> int:
    """Guardian passes that took over 1.5 intervals (node/guardian.py logs each)."""
    return node.log_path.read_text().count("guardian: a pass over")


@dataclass
class Measure:
    regions: int
    create_s: float
    idle_cpu_per_node: list[float]
    list_regions_ms: float
    write_p50_ms: float
    write_p99_ms: float
    restart_serving_s: float
    restart_confirmed_s: float
    rss_per_region_kb: float  # node 1's anonymous memory, per region it holds, idle
    open_fds: int  # node 1's open descriptors, idle
    create_ms: float  # one more region, at this count
    delete_ms: float
    guardian_overruns: int  # passes of any node's guardian over 1.5x its interval


async def measure(root: Path, count: int, seconds: float, writes: int, settle: float) -> Measure:
    clients = NodeClients()
    nodes = [NodeProcess(i, root / f"n{count}-{i}") for i in (1, 2, 3)]
    for node in nodes:
        node.start()
    try:
        pid = nodes[0].proc.pid if nodes[0].proc else 0
        rss_before = rss_anon_kb(pid)
        began = time.perf_counter()
        # region 1 at least, for the writes
        await create_regions(clients, nodes, range(1, max(count, 1) + 1))
        created = time.perf_counter() - began
        await asyncio.sleep(settle)  # the steady state: what creating them set off is over
        cpu = await idle_cpu(nodes, seconds)
        rss, fds = rss_anon_kb(pid), open_fds(pid)
        listed = await list_time(clients, nodes[0])
        one_more, gone = await create_delete_ms(clients, nodes[0], max(count, 1) + 1)
        latencies = await write_latencies(clients, nodes[0], writes)
        serving, confirmed = await recovery(clients, nodes[0], max(count, 1))
        return Measure(
            regions=count,
            create_s=round(created, 2),
            idle_cpu_per_node=cpu,
            list_regions_ms=round(listed * 1000, 2),
            write_p50_ms=round(latencies[len(latencies) // 2] * 1000, 3),
            write_p99_ms=round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
            restart_serving_s=round(serving, 3),
            restart_confirmed_s=round(confirmed, 3),
            rss_per_region_kb=round((rss - rss_before) / max(count, 1), 2),
            open_fds=fds,
            create_ms=round(one_more, 2),
            delete_ms=round(gone, 2),
            guardian_overruns=sum(guardian_overruns(n) for n in nodes),
        )
    finally:
        for node in nodes:
            node.terminate()
        await clients.close()


async def main(counts: list[int], seconds: float, writes: int, settle: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        results = [await measure(Path(tmp), c, seconds, writes, settle) for c in counts]
    fewest, most = results[0], results[-1]
    return {
        "by_regions": [asdict(r) for r in results],
        "write_p50_ratio_most_vs_fewest": round(most.write_p50_ms / fewest.write_p50_ms, 2),
        "write_p99_ratio_most_vs_fewest": round(most.write_p99_ms / fewest.write_p99_ms, 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--regions", default="0,100,1000", help="counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writes", type=int, default=500)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds before measuring")
    args = parser.parse_args()
    counts = [int(c) for c in args.regions.split(",")]
    print(json.dumps(asyncio.run(main(counts, args.seconds, args.writes, args.settle)), indent=2))
