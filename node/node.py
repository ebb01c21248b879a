"""The node: its replicas and what it does with them, each concern in its own part.

`Replicas` finds and holds them, `ChannelTasks` runs their channels, `Membership` changes them,
`Confirmation` checks them after a restart, `Retirement` retires one its region removed behind
its back, `Guardian` keeps their channels in order. The node
itself serves the data path, the questions about a region, and the streams peers send in. The
gRPC service calls these public operations only, each returning a plain result.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc

from contracts.columns import Row
from contracts.locality import zone_of
from node.acks import Level, LevelNotMet
from node.adaptive import TICK_S, AdaptiveRate, Limit, p90
from node.channel import BATCH_POINTS
from node.channel_tasks import ChannelTasks
from node.check import RangeReport, RangeRequest
from node.check_reader import CheckReader
from node.confirmation import Confirmation
from node.disk import FLOOD_WATERMARK, Disk
from node.errors import NodeError
from node.forward import Forwarded, forward_origin
from node.guardian import REST_AFTER_S, Guardian
from node.inbound import Inbound
from node.membership import Membership
from node.metrics import METRICS
from node.replica import PeerInfo
from node.replicas import Replicas
from node.reports import (
    DigestReport,
    ProgressReport,
    RegionPage,
    RegionSummary,
    ReleaseStatus,
    ThrottleChange,
    TransferCheck,
)
from node.retirement import Retirement
from node.store import Digest, SyncMode, digest, read_range
from node.throttle import Throttle, Throttles
from runtime.clients import NodeClients
from runtime.killswitch import KillPoints
from runtime.tls import TlsFiles
from runtime.views import MAX_PROBE_TIMEOUT_S, Reached, reach

log = logging.getLogger(__name__)
R = TypeVar("R")

_EMPTY_HASH = hashlib.sha256().hexdigest()
WATCH_INTERVALS = 12
WATCH_S_PER_REGION = 0.03


@dataclass(frozen=True)
class Written:
    seq: int
    applied_by: int  # replicas that had applied it when acknowledged


class Node:
    def __init__(
        self,
        node_id: int,
        address: str,
        data_dir: Path,
        *,
        sync: SyncMode = "full",
        guardian_interval: float = 5.0,
        rest_after: float = REST_AFTER_S,
        transfer_batch_points: int = BATCH_POINTS,
        transfer_rate_limit: float | None = None,
        auto_rate_limit: bool = False,
        killpoints: KillPoints | None = None,
        tls: TlsFiles | None = None,
        disk_capacity: int | None = None,
        flood_watermark: float = FLOOD_WATERMARK,
        locality: list[str] | None = None,
    ) -> None:
        self.node_id = node_id
        self.address = address
        self.locality = list(locality or [])  # where it stands: reported, never acted on here
        self.guardian_interval = guardian_interval
        self.rest_after = rest_after
        self.clients = NodeClients(tls)  # with TLS, it presents its own cert to its peers
        self._throttles = Throttles(every=Throttle(transfer_rate_limit))
        # --transfer-rate-limit auto: the snapshots' limit follows this node's write latencies
        self._adaptive: AdaptiveRate | None = AdaptiveRate() if auto_rate_limit else None
        self._throttles.snapshots.auto = auto_rate_limit
        self._show_limit()
        self._write_latencies: list[float] = []
        self.disk = Disk(data_dir, disk_capacity, flood_watermark)
        self.replicas = Replicas(node_id, data_dir, sync)
        self._batch_points = transfer_batch_points
        self.channels = ChannelTasks(
            self.clients, transfer_batch_points, self._throttles, zone_of(self.locality)
        )
        killpoints = killpoints or KillPoints(set(), data_dir / ".killpoints")
        self.membership = Membership(
            node_id, address, self.replicas, self.channels, killpoints, self.disk
        )
        self.retirement = Retirement(
            node_id,
            self.replicas,
            self.membership,
            self.clients,
            self._throttles.every,
            transfer_batch_points,
        )
        self.channels.removals = self.retirement
        self._tasks: list[asyncio.Task[None]] = []
        self._check_reader = CheckReader()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.replicas.recover()
        for replica in self.replicas:
            await self.channels.sync(replica)
        guardian = Guardian(
            self.node_id, self.replicas, self.channels, self.retirement, self.rest_after
        )
        confirmation = Confirmation(self.replicas, self.retirement)
        self._tasks = [
            asyncio.create_task(guardian.run(self.guardian_interval), name="guardian"),
            asyncio.create_task(confirmation.run(), name="confirmation"),
            asyncio.create_task(self.retirement.watch(self._watch_period), name="membership"),
            asyncio.create_task(self._adapt(), name="adaptive throttle"),
        ]

    def _watch_period(self) -> float:
        """How often the peers' listings are compared with this node's replicas: a dozen
        guardian intervals, and no less than 30 ms a region held (one listing a peer then costs
        a small share of a core at any count)."""
        return max(
            WATCH_INTERVALS * self.guardian_interval, WATCH_S_PER_REGION * len(self.replicas)
        )

    async def _adapt(self) -> None:
        """Each tick, in auto mode, the snapshots' limit from the tick's user write latencies
        (and whether they pause, for a probe window)."""
        snapshots = self._throttles.snapshots
        sent, stamp = snapshots.acquired, time.monotonic()
        while True:
            await asyncio.sleep(TICK_S)
            latencies, self._write_latencies = self._write_latencies, []
            sent, tick_sent = snapshots.acquired, snapshots.acquired - sent
            now = time.monotonic()  # a busy loop stretches a tick: what was sent per second
            seconds, stamp = now - stamp, now
            if self._adaptive is not None:
                limit = self._adaptive.next(latencies, tick_sent, seconds)
                if tick_sent or limit.paused:
                    _log_tick(self._adaptive, latencies, tick_sent / seconds, limit)
                snapshots.set_rate(limit.rate)
                snapshots.pause(limit.paused)
                self._show_limit()

    def _show_limit(self) -> None:
        rate, auto = self._throttles.snapshot_limit()
        METRICS.snapshot_limit.set(rate or 0)
        METRICS.snapshot_limit_auto.set(auto)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.retirement.stop()
        for region in self.replicas.regions():
            replica = self.replicas.pop(region)
            if replica is not None:
                await self.channels.stop(replica)
                await replica.close()
        await self.replicas.reclaimer.drain()
        await self.clients.close()
        self._check_reader.close()

    # -- questions about a region ---------------------------------------------------------

    def describe(self, region: int) -> RegionSummary:
        return RegionSummary.of(self.replicas.get(region))

    def list_regions(self, after_region: int = 0, limit: int = 0) -> RegionPage:
        """The regions after `after_region`, in order, at most `limit` (0: all)."""
        replicas, next_after = self.replicas.page(after_region, limit)
        return RegionPage([RegionSummary.of(r) for r in replicas], next_after, self.disk.usage())

    def progress(self, region: int) -> ProgressReport:
        return ProgressReport.of(self.replicas.get(region))

    def check_transfer_complete(self, region: int, target: dict[int, int]) -> TransferCheck:
        return TransferCheck.of(self.replicas.get(region), target)

    def release_status(self, region: int) -> ReleaseStatus:
        return ReleaseStatus.of(region, self.replicas.find(region))

    def replica_states(self) -> Iterator[str]:
        """Each replica's state, for the metrics: leaving, joining (inactive) or active."""
        for replica in self.replicas:
            if replica.meta.leaving:
                yield "leaving"
            else:
                yield "active" if replica.meta.active else "joining"

    # -- data -----------------------------------------------------------------------------

    async def write(
        self, region: int, rows: list[Row], level: Level = Level.ONE, patience: float = 10.0
    ) -> Written:
        """Commit a user write and wait until `level` replicas applied it (`patience` seconds
        at most). Not idempotent, as in IoTDB: a client that retries a write whose reply
        it lost writes it again, under a new seq; its points are the same, so the data is."""
        replica = self.replicas.get(region)
        if not rows:
            raise NodeError(grpc.StatusCode.INVALID_ARGUMENT, "a write needs at least one point")
        for series, _, value in rows:
            if not series or not math.isfinite(value):
                raise NodeError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"malformed point: series {series!r}, value {value} "
                    "(a series name and a finite value are required)",
                )
        if not replica.confirmed:
            raise NodeError(
                grpc.StatusCode.UNAVAILABLE,
                f"region {region} on node {self.node_id} restarted and is confirming with its "
                "peers that it is still a member; retry shortly",
            )
        if replica.meta.leaving:
            raise NodeError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"WRITE_PROCESS_REJECT: region {region} on node {self.node_id} is leaving the "
                "region and takes no user writes; write through another replica",
            )
        if not replica.meta.active or not replica.installed:
            raise NodeError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"WRITE_PROCESS_REJECT: region {region} on node {self.node_id} is not active "
                "and is not ready to receive user writes",
            )
        with METRICS.write_latency.time():
            began = time.monotonic()
            seq = await replica.write(rows)
            if self._adaptive is not None:
                self._write_latencies.append(time.monotonic() - began)
            METRICS.writes.labels(region=region).inc()
            METRICS.written_points.labels(region=region).inc(len(rows))
            if level is Level.ONE:
                return Written(seq, 1)
            try:
                count = await replica.acks.wait(seq, level, replica.receivers, patience)
            except LevelNotMet as e:
                holders = sorted([self.node_id, *e.count.holders])
                raise NodeError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"write {seq} of region {region} was applied by {e.count.applied} of the "
                    f"{e.needed} replicas {level.name.lower()} needs (nodes {holders}) within "
                    f"{patience:.1f}s; its points stay there and replicate; writing them again "
                    "is harmless",
                ) from None
        return Written(seq, count.applied)

    async def read(self, region: int, series: str, start: int, end: int | None) -> list[Row]:
        return await self._query(region, lambda conn: read_range(conn, series, start, end), [])

    async def digest(self, region: int) -> DigestReport:
        replica = self.replicas.get(region)
        d = await self._query(region, digest, Digest(0, _EMPTY_HASH))
        return DigestReport(d.count, d.hash, replica.meta.active, replica.installed)

    async def check_range(self, region: int, request: RangeRequest) -> RangeReport:
        """One range of the replica's keys for the consistency check (read-only)."""
        replica = self.replicas.get(region)
        if not replica.installed:
            raise NodeError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"region {region} on node {self.node_id} awaits its snapshot: nothing to check",
            )
        replica.check_reads += 1
        if replica.store is None:
            return RangeReport(_EMPTY_HASH, 0, 0, False, None, 0, {})
        return await self._check_reader.read(replica.store.path, request)

    async def _query(self, region: int, fn: Callable[[sqlite3.Connection], R], empty: R) -> R:
        replica = self.replicas.get(region)
        if replica.store is None:
            return empty
        return await asyncio.to_thread(replica.store.query, fn)

    # -- streams from peers ---------------------------------------------------------------

    @contextlib.contextmanager
    def receive(
        self, region: int, sender: int, origin: int = 0, retiring: bool = False
    ) -> Iterator[Inbound]:
        """An open stream into `region` from `sender` (of `origin`'s writes, when it forwards
        another node's). A channel is taken from a peer or a departed peer, and a written-off
        one is told so (it then retires); a retiring sender's own writes are taken from any
        node: a member added after its removal never knew it."""
        replica = self.replicas.get(region)
        if self.node_id in (sender, origin):
            raise NodeError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"node {self.node_id} cannot be sent its own writes of region {region} "
                f"(sender {sender}, origin {origin or sender})",
            )
        if retiring and origin not in (0, sender):
            raise NodeError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"node {sender} retires its replica of region {region}: it hands over its own "
                f"writes, not node {origin}'s",
            )
        inbound = Inbound(replica, sender, origin, retiring)
        if inbound.standing is None:
            raise NodeError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"node {sender} is not a peer of region {region} on node {self.node_id} "
                f"(peers {sorted(replica.meta.peer_ids())})",
            )
        replica.inbound += 1
        try:
            yield inbound
        finally:
            replica.inbound -= 1

    async def forward_origin(
        self, region: int, origin: int, receiver: PeerInfo, upto: int
    ) -> Forwarded:
        """Send `receiver` the writes of `origin` it lacks, up to `upto` (see node/forward.py)."""
        replica = self.replicas.get(region)
        return await forward_origin(
            replica, origin, receiver, upto, self.clients, self._throttles.every, self._batch_points
        )

    # -- operations -----------------------------------------------------------------------

    async def probe(
        self, target: PeerInfo, timeout_s: float, answer_within: float | None = None
    ) -> Reached:
        """Whether this node reaches `target` now, within `timeout_s` (and `answer_within`, the
        caller's own deadline): an indirect probe for whoever cannot reach it (runtime/views.py).
        Read-only: a retry asks again."""
        if target.node_id <= 0 or not target.address:
            raise NodeError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"a probe needs a target: its node id and address (got node {target.node_id} "
                f"at {target.address!r})",
            )
        if target.node_id == self.node_id or target.address == self.address:
            raise NodeError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"node {self.node_id} cannot probe itself (target: node {target.node_id} at "
                f"{target.address})",
            )
        if not 0 < timeout_s <= MAX_PROBE_TIMEOUT_S:
            raise NodeError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"a probe's timeout must be above 0 and at most {MAX_PROBE_TIMEOUT_S:g} s, "
                f"not {timeout_s}",
            )
        if answer_within is not None:
            timeout_s = max(min(timeout_s, answer_within), 0.001)
        return await reach(self.clients.stub(target.address), target.node_id, timeout_s)

    def set_throttle(self, bytes_per_s: float, auto: bool = False) -> ThrottleChange:
        """Limit every outgoing channel together (0: no limit; `auto`: a limit on snapshots
        that follows this node's user write latencies). Idempotent: setting the limit it has
        changes nothing (auto set again keeps what it learned)."""
        if bytes_per_s < 0:
            raise NodeError(grpc.StatusCode.INVALID_ARGUMENT, "a throttle cannot be negative")
        if auto and bytes_per_s:
            raise NodeError(
                grpc.StatusCode.INVALID_ARGUMENT, "a throttle is either auto or a rate, not both"
            )
        every, snapshots = self._throttles.every, self._throttles.snapshots
        previous = every.rate or snapshots.rate
        if auto:
            self._adaptive = self._adaptive or AdaptiveRate(previous)
            bytes_per_s = self._adaptive.rate or 0
            every.set_rate(None)
            snapshots.set_rate(bytes_per_s)
        else:
            self._adaptive = None
            snapshots.set_rate(None)
            snapshots.pause(False)
            every.set_rate(bytes_per_s)
        snapshots.auto = auto
        self._show_limit()
        log.info("transfer throttle %s -> %s", previous, "auto" if auto else bytes_per_s or None)
        return ThrottleChange(bytes_per_s or None, previous)


def _log_tick(
    adaptive: AdaptiveRate, latencies: list[float], sent_per_s: float, limit: Limit
) -> None:
    """One step of `auto`, at debug level (its p90 worked out only then)."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    baseline = adaptive.baseline
    log.debug(
        "auto: sent %.1f MB/s, %d writes p90 %.2f ms, baseline %s -> %s%s",
        sent_per_s / 1e6,
        len(latencies),
        1e3 * p90(latencies) if latencies else 0.0,
        "none" if baseline is None else f"{1e3 * baseline:.2f} ms",
        "no limit" if limit.rate is None else f"{limit.rate / 1e6:.1f} MB/s",
        ", paused" if limit.paused else "",
    )
