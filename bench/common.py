"""What the benchmarks share: a throwaway local stack on free ports, region setup, and a
process's CPU time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client

from client import connection
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from stack.local import LocalStack
from stack.processes import NodeProcess, free_ports


@contextlib.asynccontextmanager
async def bench_stack(
    nodes: int = 4, zones: int = 0
) -> AsyncIterator[tuple[LocalStack, Client, NodeClients]]:
    """The Temporal dev server, `nodes` nodes (dealt into `zones` zones, if any) and one
    worker, all stopped afterwards."""
    ports = free_ports(2)
    base = free_ports(nodes, consecutive=True)[0]
    clients = NodeClients()
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp), nodes, ports[0], ports[1], base, zones=zones)
        stack.start()
        try:
            yield stack, await connection.connect(connection.local(stack.temporal.address)), clients
        finally:
            stack.stop()
            await clients.close()


async def create_regions(
    clients: NodeClients, nodes: list[NodeProcess], regions: Iterable[int], concurrency: int = 16
) -> None:
    """Each region with a replica on each of `nodes` (active, peers of one another), at most
    `concurrency` creations at once: one at a time, with 1, region after region."""
    peers = [pb.Peer(node_id=n.node_id, address=n.address) for n in nodes]
    sem = asyncio.Semaphore(concurrency)

    async def one(region: int, node: NodeProcess) -> None:
        async with sem:
            request = pb.CreateLocalPeerRequest(region=region, peers=peers, active=True)
            await clients.stub(node.address).CreateLocalPeer(request, timeout=60)

    await asyncio.gather(*(one(r, n) for r in regions for n in nodes))


async def create_region(clients: NodeClients, nodes: list[NodeProcess], region: int) -> None:
    await create_regions(clients, nodes, [region], concurrency=1)


def cpu_s(*pids: int) -> float:
    """The CPU seconds (user and system) the processes have used so far, from /proc."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


async def idle_cpu(nodes: list[NodeProcess], seconds: float) -> list[float]:
    """Each node's CPU, as a fraction of one core, over the next `seconds`."""
    pids = [n.proc.pid for n in nodes if n.proc]
    before, began = [cpu_s(p) for p in pids], time.monotonic()
    await asyncio.sleep(seconds)  # the measured interval itself
    elapsed = time.monotonic() - began
    return [round((cpu_s(p) - b) / elapsed, 4) for p, b in zip(pids, before, strict=True)]


# CPU without the work it stands for: busy for a burst, then idle for as long as keeps it
# within its share of a core; at the default priority, or niced as the consistency check's
# helper is (`lowest`).
_BUSY_LOOP = """
import sys, time
if sys.argv[3] == "lowest":
    from node.check_reader import lowest_priority
    lowest_priority()
burst, share = float(sys.argv[1]), float(sys.argv[2])
while True:
    until = time.perf_counter() + burst
    while time.perf_counter() < until:
        pass
    time.sleep(burst * (1 - share) / share)
"""


@contextlib.asynccontextmanager
async def busy_loops(
    loops: Iterable[tuple[float, float]], lowest: bool = False
) -> AsyncIterator[None]:
    """A busy loop per (burst seconds, share of a core) while the block runs; killed after."""
    priority = "lowest" if lowest else "default"
    busy: list[asyncio.subprocess.Process] = []
    try:
        for burst, share in loops:
            if share > 0:
                args = (str(max(burst, 1e-4)), str(min(share, 1.0)), priority)
                busy.append(
                    await asyncio.create_subprocess_exec(sys.executable, "-c", _BUSY_LOOP, *args)
                )
        yield
    finally:
        for p in busy:
            p.kill()
            await p.wait()
