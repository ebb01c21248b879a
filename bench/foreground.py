"""Foreground write latency beside background work: one-point writes sent on a fixed schedule
(each at its own time, whether the one before has answered or not, so a stall shows as the
latency of every write it delays, not as fewer writes)."""

from __future__ import annotations

import asyncio
import statistics
import time

from bench.acks import percentile
from protos import air_node_pb2 as pb
from runtime.clients import NodeStub


class ScheduledWrites:
    """Writes to `region` every `interval` s; `measuring` decides which latencies count."""

    def __init__(self, stub: NodeStub, region: int, interval: float = 0.005) -> None:
        self.stub = stub
        self.region = region
        self.interval = interval
        self.measuring = False
        self.latencies: list[float] = []
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._writes: set[asyncio.Task[None]] = set()

    def start(self) -> ScheduledWrites:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        await asyncio.gather(*self._writes)

    def take(self) -> list[float]:
        """The latencies counted so far, and a fresh count."""
        taken, self.latencies = self.latencies, []
        return taken

    async def _run(self) -> None:
        began, n = time.perf_counter(), 0
        while not self._stop.is_set():
            n += 1
            task = asyncio.create_task(self._one(n, self.measuring))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)
            delay = began + n * self.interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _one(self, t: int, counted: bool) -> None:
        request = pb.WriteRequest(
            region=self.region, points=[pb.Point(series="fg", timestamp=t, value=1.0)]
        )
        began = time.perf_counter()
        await self.stub.Write(request, timeout=30)
        if counted and self.measuring:
            self.latencies.append(time.perf_counter() - began)


def ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values) * 1000, 3),
        "p99_ms": round(percentile(values, 0.99) * 1000, 3),
        "writes": len(values),
    }
