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
from contracts.errors import UserError
from protos import air_node_pb2 as pb
from runtime.clients import NodeStub
from runtime.refusals import REFUSALS

Row = tuple[str, int, float]
StubFor = Callable[[int], NodeStub]

WRITE_TIMEOUT_S = 5.0  # one write's deadline; the node answers why a little before it
READ_TIMEOUT_S = 30.0  # a read of a whole series
# The node refused the write itself: another try is refused the same way. Beside what any
# request is refused for (runtime/refusals.py), a write too large or a disk past its flood
# watermark (RESOURCE_EXHAUSTED), and a level it could not meet in time, which comes back as
# DEADLINE_EXCEEDED with its count (see `answered`).
WRITE_REFUSALS = REFUSALS | {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}
# What gRPC itself says when a call's own deadline passed without an answer.
_NO_ANSWER = "Deadline Exceeded"


class WriteFailed(UserError):
    """A writer with patience gave up: every replica refused a write, or none acknowledged
    one for that long. The message says what each node answered."""


def answered(error: grpc.aio.AioRpcError) -> bool:
    """Whether the node itself answered (with its reason), rather than the call's deadline
    passing without a word from it."""
    return not (error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and error.details() == _NO_ANSWER)


def refused(error: grpc.aio.AioRpcError) -> bool:
    return answered(error) and error.code() in WRITE_REFUSALS


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
    refuses or is down; records every acknowledged point (and logs it, given a log).

    Without `patience` it tries again until stopped, whatever the replicas answer (a test's
    load through chaos). With it, it gives up (`WriteFailed`) once every replica refused a
    write, or once no write was acknowledged for `patience` seconds: a node that is down or
    restarting may come back within it, a refusal is final.
    """

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
        patience: float | None = None,
    ) -> None:
        self.stub_for = stub_for
        self.patience = patience
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
        self._failures: dict[int, grpc.aio.AioRpcError] = {}  # each target's last, since an ack
        self._acked_at = time.monotonic()

    def start(self, rate: float | None = None) -> LoadWriter:
        self._task = asyncio.create_task(self.run(rate))
        return self

    async def stop(self) -> list[Row]:
        self._stop.set()
        if self._task is not None:
            await self._task
        return self.acked

    async def run_for(self, seconds: float, rate: float | None = None) -> None:
        """Write for `seconds` (at most `rate` points/s), then finish the batch in flight;
        `WriteFailed` if it gave up before."""
        task = asyncio.create_task(self.run(rate))
        try:
            await asyncio.wait_for(asyncio.shield(task), seconds)
        except TimeoutError:
            self._stop.set()
            await task

    async def wait_acked(self, count: int, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while len(self.acked) < count:
                await self._progress.wait()
                self._progress.clear()

    async def run(self, rate: float | None = None, count: int | None = None) -> None:
        """Write until stopped (or `count` points), at most `rate` points/s when given."""
        began, first = time.monotonic(), self._next_ts
        self._acked_at = began
        while not self._stop.is_set() and (count is None or self._next_ts - first < count):
            left = None if count is None else count - (self._next_ts - first)
            if not await self.write_batch(self.batch if left is None else min(self.batch, left)):
                if (why := self._given_up()) is not None:
                    done = self._next_ts - first
                    of = "" if count is None else f" of {count}"
                    raise WriteFailed(f"{done}{of} points acknowledged; {why}")
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
            target = targets[(turn + i) % len(targets)]
            try:
                await self.stub_for(target).Write(request, timeout=self._write_timeout())
            except grpc.aio.AioRpcError as e:
                self.refusals += 1
                self._failures[target] = e
                continue
            self.acked.extend(rows)
            self.log.append(self.series, first, size)
            self._next_ts += size
            self._failures.clear()
            self._acked_at = time.monotonic()
            self._progress.set()
            return True
        return False

    def _write_timeout(self) -> float:
        """A write's deadline, within what is left of the patience."""
        if self.patience is None:
            return WRITE_TIMEOUT_S
        left = self.patience - (time.monotonic() - self._acked_at)
        return max(min(WRITE_TIMEOUT_S, left), 0.1)

    def _given_up(self) -> str | None:
        """Why to stop trying after every target failed a write, if it is time to."""
        if self.patience is None:
            return None
        failures = [self._failures[t] for t in self.targets if t in self._failures]
        waited = time.monotonic() - self._acked_at
        if failures and all(refused(e) for e in failures):
            return "; ".join(self._said(t) for t in self.targets if t in self._failures)
        if waited < self.patience:
            return None
        said = "; ".join(self._said(t) for t in self.targets if t in self._failures)
        return f"none in the last {self.patience:g} s: {said}"

    def _said(self, target: int) -> str:
        """What the target last answered, in a few words."""
        e = self._failures[target]
        if not answered(e):
            return f"node {target} did not answer within {self.patience or WRITE_TIMEOUT_S:g} s"
        verb = "refused the write" if refused(e) else f"answered {e.code().name}"
        return f"node {target} {verb}: {e.details()}"


async def missing_points(stub: NodeStub, region: int, acked: list[Row]) -> list[Row]:
    """Acknowledged points the replica behind `stub` does not hold."""
    present: set[Row] = set()
    for series in sorted({s for s, _, _ in acked}):
        request = pb.ReadRequest(region=region, series=series)
        reply = await stub.Read(request, timeout=READ_TIMEOUT_S)
        present.update((p.series, p.timestamp, p.value) for p in reply.points)
    return [row for row in acked if row not in present]
