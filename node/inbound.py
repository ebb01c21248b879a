"""A stream into one of this node's replicas from a peer: batches of its writes, or a snapshot.

While it is open the replica counts it, so a leaving replica is not released under a transfer
still feeding it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from node.breaks import stream_ended
from node.chunk_wire import Chunk
from node.errors import NodeError
from node.metrics import METRICS
from node.replica import Replica, channel_name
from node.snapshot import ChecksumMismatch, Held, IncomingSnapshot, held_of, remove_partial
from node.store import OriginBatch
from protos import air_node_pb2 as pb

log = logging.getLogger(__name__)

# A new snapshot stream from a sender waits this long for its broken predecessor to end.
TAKEOVER_S = 30.0


class Inbound:
    """`origin`: whose writes the batches carry, the sender's own unless it forwards a dead
    node's (node/forward.py); `retiring`: the sender hands over its own writes before it
    deletes a replica its region removed (node/retirement.py)."""

    def __init__(
        self, replica: Replica, sender: int, origin: int | None = None, retiring: bool = False
    ) -> None:
        self.replica = replica
        self.sender = sender
        self.origin = origin or sender
        self.retiring = retiring

    @property
    def standing(self) -> pb.SenderStanding | None:
        """How this replica stands toward the sender now (None: it never knew it). Read at
        every answer: a stream opened before its sender was written off must end with it. A
        retiring sender's hand-over is taken from anyone, as from a peer."""
        meta = self.replica.meta
        if self.retiring or self.sender in meta.peer_ids():
            return pb.SENDER_PEER
        if self.sender in meta.departed:
            return pb.SENDER_DEPARTED
        if self.sender in meta.written_off:
            return pb.SENDER_WRITTEN_OFF
        return None

    @property
    def region(self) -> int:
        return self.replica.region

    @property
    def installed(self) -> bool:
        return self.replica.installed

    def applied(self) -> dict[int, int]:
        return self.replica.applied()

    @property
    def active(self) -> bool:
        return self.replica.takes_writes

    async def apply(self, batch: OriginBatch) -> int:
        """Apply a batch of the origin's writes; returns how many were new.

        Idempotent: the store applies only seqs above what it holds from the sender, so a batch
        resent after a crash of either side adds nothing twice."""
        if not self.replica.installed:
            return 0
        before = self.replica.applied().get(self.origin, 0)
        await self.replica.apply_remote(self.origin, batch)
        # No notify(): channels send only this node's own writes, which a remote batch never
        # adds to, so waking every outgoing channel per received batch would be wasted queries.
        applied = sum(1 for s in batch.seqs if s > before)
        METRICS.applied_points.labels(region=self.replica.region).inc(applied)
        return applied

    @property
    def _partial(self) -> Path:
        return self.replica.path / f"snapshot.in.{self.sender}"

    def held_snapshot(self) -> Held:
        """What this replica durably holds of a snapshot from the sender."""
        return held_of(self._partial)

    @contextlib.asynccontextmanager
    async def incoming_snapshot(self) -> AsyncIterator[IncomingSnapshot]:
        """The side file the sender's snapshot goes to until it is whole. One stream of a
        sender writes it at a time (a new one waits for a broken one to end); a stream that
        breaks keeps what arrived for the next one, one with a damaged chunk leaves nothing."""
        lock = self.replica.snapshot_locks.setdefault(self.sender, asyncio.Lock())
        try:
            async with asyncio.timeout(TAKEOVER_S):
                await lock.acquire()
        except TimeoutError:
            raise NodeError(
                grpc.StatusCode.UNAVAILABLE,
                f"a snapshot of region {self.region} from node {self.sender} is still coming in",
            ) from None
        try:
            opened = time.monotonic()
            incoming = IncomingSnapshot.open(self._partial)
            self.replica.receiving[self.sender] = incoming
            try:
                yield incoming
            except ChecksumMismatch:
                incoming.discard()
                raise
            except BaseException as e:
                name = channel_name(self.region, self.sender, self.replica.node_id)
                stream_ended("snapshot", "receiver", name, opened, e)
                await incoming.suspend()
                raise
        finally:
            self.replica.receiving.pop(self.sender, None)
            lock.release()

    async def install(self, snapshot: IncomingSnapshot, last: Chunk) -> int:
        """Check and install a whole snapshot; returns its size. A replica that already has a
        store keeps it (`Replica.install`), so a resent snapshot changes nothing."""
        began = time.monotonic()
        path = await snapshot.finish(last)
        size = path.stat().st_size
        await self.replica.install(path)
        remove_partial(path)
        log.info(
            "region %d: snapshot of %d bytes from node %d checked and installed in %.2f s",
            self.region,
            size,
            self.sender,
            time.monotonic() - began,
        )
        return size
