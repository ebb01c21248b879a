"""A client that keeps writing unique points and records every acknowledged one."""

from __future__ import annotations

import asyncio
import itertools

import grpc

from protos import air_node_pb2 as pb
from tests.support.cluster import Cluster

Row = tuple[str, int, float]


class LoadWriter:
    """Writes batches round-robin over `targets`, failing over when a replica refuses or is down."""

    def __init__(self, cluster: Cluster, region: int, targets: list[int], series: str = "load"):
        self.cluster = cluster
        self.region = region
        self.targets = targets
        self.series = series
        self.acked: list[Row] = []
        self.refusals = 0
        self._stop = asyncio.Event()
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self, batch: int = 20) -> LoadWriter:
        self._task = asyncio.create_task(self._run(batch))
        return self

    async def stop(self) -> list[Row]:
        self._stop.set()
        assert self._task is not None
        await self._task
        return self.acked

    async def wait_acked(self, count: int, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while len(self.acked) < count:
                await self._progress.wait()
                self._progress.clear()

    async def _run(self, batch: int) -> None:
        turn = itertools.count()
        ts = 0
        while not self._stop.is_set():
            rows = [(self.series, t, float(t)) for t in range(ts, ts + batch)]
            if await self._write_somewhere(rows, next(turn)):
                self.acked.extend(rows)
                self._progress.set()
                ts += batch
            else:
                await asyncio.sleep(0.05)

    async def _write_somewhere(self, rows: list[Row], turn: int) -> bool:
        targets = list(self.targets)
        request = pb.WriteRequest(
            region=self.region,
            points=[pb.Point(series=s, timestamp=t, value=v) for s, t, v in rows],
        )
        for i in range(len(targets)):
            node_id = targets[(turn + i) % len(targets)]
            try:
                await self.cluster.stub(node_id).Write(request, timeout=5)
                return True
            except grpc.aio.AioRpcError:
                self.refusals += 1
        return False


async def missing_points(
    cluster: Cluster, node_id: int, region: int, acked: list[Row]
) -> list[Row]:
    """Acknowledged points the replica on `node_id` does not hold."""
    series = sorted({s for s, _, _ in acked})
    present: set[Row] = set()
    for s in series:
        reply = await cluster.stub(node_id).Read(pb.ReadRequest(region=region, series=s))
        present.update((p.series, p.timestamp, p.value) for p in reply.points)
    return [row for row in acked if row not in present]
