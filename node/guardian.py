"""The guardian: IoTDB's checkAllAirReplication, kept cheap for a node of many regions.

Every `interval` seconds each replica's channel list matches its peer list and each listed
channel's task runs, an idle replica rests, and a leaving replica that its removal left behind
is noticed. A pass is spread over the interval in slices, and a replica in order costs a few
dictionary lookups and no lock, so an idle node's cost stays near zero however many regions it
holds.
"""

from __future__ import annotations

import asyncio
import logging
import time

from node.channel import NoRemovals, Removals
from node.channel_tasks import ChannelTasks
from node.replica import ChannelState, PeerInfo, Replica
from node.replicas import Replicas

log = logging.getLogger(__name__)

SLICE = 100  # replicas checked per wake-up
OVERRUN = 1.5  # a pass taking this many intervals is logged: the node cannot keep up
LINGER_S = 30.0
# A replica unused this long rests: its store's connection and its writer's thread closed, so
# an idle region holds no file descriptor (see Replica.rest).
REST_AFTER_S = 30.0


class Guardian:
    def __init__(
        self,
        node_id: int,
        replicas: Replicas,
        channels: ChannelTasks,
        removals: Removals | None = None,
        rest_after: float = REST_AFTER_S,
    ) -> None:
        self.node_id = node_id
        self.replicas = replicas
        self.channels = channels
        self.removals = removals or NoRemovals()
        self.rest_after = rest_after
        self._drained_at: dict[int, float] = {}  # leaving replicas whose channels all drained

    async def run(self, interval: float) -> None:
        while True:
            began = time.monotonic()
            regions = self.replicas.regions()
            slices = [regions[i : i + SLICE] for i in range(0, len(regions), SLICE)] or [[]]
            for part in slices:
                await asyncio.sleep(interval / len(slices))
                for region in part:
                    try:
                        if not self._at_rest(region):
                            await self.check(region)
                    except Exception:
                        log.exception("guardian: reconciling region %d failed", region)
            took = time.monotonic() - began
            if took > interval * OVERRUN:
                log.warning(
                    "guardian: a pass over %d regions took %.2f s; its interval is %.2f s",
                    len(regions),
                    took,
                    interval,
                )

    async def check(self, region: int) -> None:
        """Repair the replica's channels if they drifted from its peer list.

        Idempotent: a replica in order is left alone; a repair persists the fixed list with one
        atomic write, then starts or stops the tasks, so a crash at any line leaves the old
        list (repaired again next pass) or the new one."""
        replica = self.replicas.find(region)
        if replica is not None:
            self._linger(replica)
            if time.monotonic() - replica.last_used > self.rest_after:
                await replica.rest()
        if replica is None or self._in_order(replica):
            return
        async with self.replicas.lock(region):
            replica = self.replicas.find(region)
            if replica is None:
                return
            meta = replica.meta
            others = self._others(replica)
            stale = [rid for rid in meta.channels if rid not in others]
            missing = [] if meta.leaving else [rid for rid in others if rid not in meta.channels]
            for rid in stale:
                log.warning("guardian: region %d drops channel to non-peer %d", region, rid)
                del meta.channels[rid]
            for rid in missing:
                log.warning("guardian: region %d recreates channel to %d", region, rid)
                meta.channels[rid] = ChannelState(receiver=others[rid])
            if stale or missing:
                replica.persist()
            await self.channels.sync(replica)

    def _linger(self, replica: Replica) -> None:
        """A leaving replica whose channels all drained is deleted by its removal within
        seconds; one still here after LINGER_S was left behind (its removal skipped it as
        unreachable), so it asks its peers and retires if they removed it."""
        region = replica.region
        drained = replica.meta.leaving and all(
            c.status == "STOPPED" for c in replica.meta.channels.values()
        )
        if not drained:
            self._drained_at.pop(region, None)
            return
        since = self._drained_at.setdefault(region, time.monotonic())
        if time.monotonic() - since > LINGER_S:
            self.removals.suspect(region)

    def _at_rest(self, region: int) -> bool:
        """Nothing to look at: the replica is in order, not leaving, and resting or in use.

        What a pass does for nearly every replica of an idle node, so it allocates one small
        set and awaits nothing."""
        replica = self.replicas.find(region)
        if replica is None:
            return True
        idle = not replica.resting and time.monotonic() - replica.last_used > self.rest_after
        leaving = replica.meta.leaving or region in self._drained_at
        return not idle and not leaving and self._in_order(replica)

    def _in_order(self, replica: Replica) -> bool:
        meta = replica.meta
        others = {p.node_id for p in meta.peers if p.node_id != self.node_id}
        listed = meta.channels.keys()
        lists_match = listed <= others if meta.leaving else listed == others
        return lists_match and self.channels.match(replica)

    def _others(self, replica: Replica) -> dict[int, PeerInfo]:
        return {p.node_id: p for p in replica.meta.peers if p.node_id != self.node_id}
