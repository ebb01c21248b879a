"""Writing unique points with failover, and the log of every acknowledged one."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc

from contracts.columns import to_columns
from protos import air_node_pb2 as pb
from runtime.clients import NodeStub

Row = tuple[str, int, float]
StubFor = Callable[[int], NodeStub]


def value_of(ts: int) -> float:
    return ts * 0.5


class AckedLog:
    """Appends `series first_ts count` per acknowledged batch; reads back every point."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def append(self, series: str, first: int, count: int) -> None:
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(f"{series} {first} {count}\n")

    @staticmethod
    def read(path: Path) -> list[Row]:
        rows: list[Row] = []
        for line in path.read_text().splitlines():
            series, first, count = line.split()
            rows += [(series, t, value_of(t)) for t in range(int(first), int(first) + int(count))]
        return rows


class LoadWriter:
    """Writes batches of unique points round-robin over `targets`, failing over when a replica
    refuses or is down; records every acknowledged point (and logs it, given a log)."""

    def __init__(
        self,
        stub_for: StubFor,
        region: int,
        targets: list[int],
        *,
        batch: int = 20,
        log: AckedLog | None = None,
        series: str | None = None,
        acks: pb.Acks = pb.ACKS_ONE,
    ) -> None:
        self.stub_for = stub_for
        self.region = region
        self.targets = targets
        self.batch = batch
        self.log = log or AckedLog(None)
        self.series = series or f"load-{uuid.uuid4().hex[:8]}"
        self.acks = acks
        self.acked: list[Row] = []
        self.refusals = 0
        self._next_ts = 0
        self._turn = itertools.count()
        self._stop = asyncio.Event()
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self, rate: float | None = None) -> LoadWriter:
        self._task = asyncio.create_task(self.run(rate))
        return self

    async def stop(self) -> list[Row]:
        self._stop.set()
        if self._task is not None:
            await self._task
        return self.acked

    async def wait_acked(self, count: int, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while len(self.acked) < count:
                await self._progress.wait()
                self._progress.clear()

    async def run(self, rate: float | None = None, count: int | None = None) -> None:
        """Write until stopped (or `count` points), at most `rate` points/s when given."""
        began, first = time.monotonic(), self._next_ts
        while not self._stop.is_set() and (count is None or self._next_ts - first < count):
            left = None if count is None else count - (self._next_ts - first)
            if not await self.write_batch(self.batch if left is None else min(self.batch, left)):
                await asyncio.sleep(0.05)  # every replica refused: back off, then the same keys
            if rate:
                ahead = (self._next_ts - first) / rate - (time.monotonic() - began)
                if ahead > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), ahead)

    async def write_batch(self, size: int) -> bool:
        first = self._next_ts
        rows = [(self.series, t, value_of(t)) for t in range(first, first + size)]
        request = pb.WriteRequest(region=self.region, columns=to_columns(rows), acks=self.acks)
        targets, turn = list(self.targets), next(self._turn)
        for i in range(len(targets)):
            try:
                await self.stub_for(targets[(turn + i) % len(targets)]).Write(request, timeout=5)
            except grpc.aio.AioRpcError:
                self.refusals += 1
                continue
            self.acked.extend(rows)
            self.log.append(self.series, first, size)
            self._next_ts += size
            self._progress.set()
            return True
        return False


async def missing_points(stub: NodeStub, region: int, acked: list[Row]) -> list[Row]:
    """Acknowledged points the replica behind `stub` does not hold."""
    present: set[Row] = set()
    for series in sorted({s for s, _, _ in acked}):
        reply = await stub.Read(pb.ReadRequest(region=region, series=series))
        present.update((p.series, p.timestamp, p.value) for p in reply.points)
    return [row for row in acked if row not in present]
