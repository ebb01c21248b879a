"""Whether replication keeps up with a client writing at full speed: a three-replica bulk load.

Three nodes hold one region (three replicas, active). A client writes `--points` points to
node 1 as fast as it goes (columnar batches of 10,000, four in flight, as a bulk loader
would), while the other two replicas' applied seq of node 1's writes is sampled every 0.2 s.
A replica's lag at a moment is the age of the oldest write node 1 had acknowledged that it
had not applied (0 when it had them all); the largest is printed per replica. Then the time
until both replicas hold every write, and beside it, in the same run, the same points
written to a one-replica region on a fourth node: the node's own ingest rate. Each point of
the load is written to three stores on this machine's cores, so the ratio to a third of that
rate is printed too (the ceiling of three stores sharing them).
Run: `python bench/load.py [--points 15000000]`; prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

from bench.common import create_region
from contracts.columns import to_columns
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients, NodeStub
from stack.processes import NodeProcess

REGION = 1
BATCH = 10_000
IN_FLIGHT = 4
SAMPLE_S = 0.2


@dataclass
class Acknowledged:
    """When node 1 acknowledged each seq of its own, in seq order."""

    seqs: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def add(self, seq: int, at: float) -> None:
        index = bisect.bisect(self.seqs, seq)
        self.seqs.insert(index, seq)
        self.times.insert(index, at)

    def lag_s(self, applied: int, now: float) -> float:
        """The age of the oldest acknowledged write above `applied` (0: none)."""
        index = bisect.bisect(self.seqs, applied)
        return now - min(self.times[index:], default=now)


async def load(
    stub: NodeStub, points: int, region: int = REGION, acked: Acknowledged | None = None
) -> float:
    """Write `points` to `region` through `stub` at full speed; seconds taken."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(start: int) -> None:
        async with gate:
            rows = [(f"s{t % 100}", t, float(t)) for t in range(start, min(start + BATCH, points))]
            reply = await stub.Write(pb.WriteRequest(region=region, columns=to_columns(rows)))
            if acked is not None:
                acked.add(reply.seq, time.perf_counter())

    began = time.perf_counter()
    await asyncio.gather(*(one(s) for s in range(0, points, BATCH)))
    return time.perf_counter() - began


async def applied_by(stub: NodeStub, region: int = REGION, origin: int = 1) -> int:
    progress = await stub.GetProgress(pb.RegionRequest(region=region))
    return progress.applied[origin]


async def until_applied(stubs: list[NodeStub], seq: int, region: int = REGION) -> None:
    """Return once every replica behind `stubs` applied node 1's writes up to `seq`."""
    # the nodes are other processes: polling them is the only way to see them catch up
    while min([await applied_by(stub, region) for stub in stubs]) < seq:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


class FullSpeed:
    """A client writing as fast as it is acknowledged, as `airctl load` does: batches of
    `batch` points, each sent once the one before is acknowledged, round robin over the stubs
    `stubs()` gives (a refusal passes the batch to the next). Its keys cycle over `keys`
    points of one series, so however long it runs the region keeps its size."""

    def __init__(
        self,
        stubs: Callable[[], list[NodeStub]],
        region: int,
        batch: int = 20,
        keys: int = 200_000,
    ) -> None:
        self.stubs = stubs
        self.region = region
        self.batch = batch
        self.keys = keys
        self.acknowledged = 0  # batches
        self.refusals = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> FullSpeed:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        turn = itertools.count()
        for first in itertools.cycle(range(0, self.keys, self.batch)):
            if self._stop.is_set():
                return
            rows = [("writer", t, float(t)) for t in range(first, first + self.batch)]
            request = pb.WriteRequest(region=self.region, columns=to_columns(rows))
            stubs, k = self.stubs(), next(turn)
            for i in range(len(stubs)):
                try:
                    await stubs[(k + i) % len(stubs)].Write(request, timeout=10)
                except grpc.aio.AioRpcError:
                    self.refusals += 1
                    continue
                self.acknowledged += 1
                break
            else:  # every replica refused: back off
                await asyncio.sleep(0.05)


async def watch_lag(
    replicas: dict[int, NodeStub], acked: Acknowledged, most: dict[int, float], done: asyncio.Event
) -> None:
    while not done.is_set():
        for node_id, stub in replicas.items():
            lag = acked.lag_s(await applied_by(stub), time.perf_counter())
            most[node_id] = max(most[node_id], lag)
        await asyncio.sleep(SAMPLE_S)


async def measure(root: Path, points: int) -> dict[str, object]:
    nodes = [NodeProcess(i, root / f"n{i}").start() for i in (1, 2, 3, 4)]
    clients = NodeClients()
    try:
        await create_region(clients, nodes[:3], REGION)
        writer = clients.stub(nodes[0].address)
        replicas = {n.node_id: clients.stub(n.address) for n in nodes[1:3]}
        acked, most, done = Acknowledged(), dict.fromkeys(replicas, 0.0), asyncio.Event()
        watcher = asyncio.create_task(watch_lag(replicas, acked, most, done))
        began = time.perf_counter()
        loaded_s = await load(writer, points, acked=acked)
        await until_applied(list(replicas.values()), acked.seqs[-1])
        agreed_s = time.perf_counter() - began
        done.set()
        await watcher
        await create_region(clients, nodes[3:], REGION)
        local_s = await load(clients.stub(nodes[3].address), points)
    finally:
        await clients.close()
        for n in nodes:
            n.terminate()
    rate, local = points / loaded_s, points / local_s
    return {
        "points": points,
        "load_s": round(loaded_s, 1),
        "load_points_per_s": round(rate),
        "until_replicas_agree_s": round(agreed_s, 1),
        "max_replica_lag_s": {str(n): round(s, 2) for n, s in most.items()},
        "local_ingest_points_per_s": round(local),
        "ratios": {
            "load_vs_local_ingest": round(rate / local, 2),
            "load_vs_three_store_ceiling": round(rate / (local / 3), 2),
        },
    }


async def main(points: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        return await measure(Path(tmp), points)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=15_000_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.points)), indent=2))
