"""A stream into one of this node's replicas from a peer: batches of its writes, or a snapshot.

While it is open the replica counts it, so a leaving replica is not released under a transfer
still feeding it.
"""

from __future__ import annotations

from node.metrics import METRICS
from node.replica import Replica
from node.snapshot import IncomingSnapshot
from node.store import OriginBatch


class Inbound:
    """`origin`: whose writes the batches carry, the sender's own unless it forwards a dead
    node's (node/forward.py)."""

    def __init__(self, replica: Replica, sender: int, origin: int | None = None) -> None:
        self.replica = replica
        self.sender = sender
        self.origin = origin or sender

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

    def incoming_snapshot(self) -> IncomingSnapshot:
        """The side file the sender's snapshot chunks go to until it is whole."""
        return IncomingSnapshot(self.replica.path / f"snapshot.in.{self.sender}")

    async def install(self, snapshot: IncomingSnapshot, sha256: str) -> int:
        """Check and install a whole snapshot; returns its size. A replica that already has a
        store keeps it (`Replica.install`), so a resent snapshot changes nothing."""
        path = await snapshot.finish(sha256)
        await self.replica.install(path)
        return snapshot.size
