"""The running channel tasks of every replica, kept matching each replica's channel list."""

from __future__ import annotations

import contextlib
from collections import defaultdict

from node.channel import Channel, NoRemovals, Removals
from node.metrics import METRICS
from node.replica import Replica
from node.throttle import Throttles
from runtime.clients import NodeClients


class ChannelTasks:
    def __init__(
        self, clients: NodeClients, batch_points: int, throttles: Throttles, zone: str = ""
    ) -> None:
        self.clients = clients
        self.batch_points = batch_points
        self.throttles = throttles
        self.zone = zone  # this node's first locality tier: its snapshots are counted by it
        # what channels learn of their sender's membership goes here (set once the node has
        # its retirement, which needs these tasks first)
        self.removals: Removals = NoRemovals()
        self._running: dict[int, dict[int, Channel]] = defaultdict(dict)

    async def sync(self, replica: Replica) -> None:
        """Make the running tasks match the replica's durable channel list.

        Idempotent: a channel already running is left alone, one listed is started, one no
        longer listed is stopped."""
        running = self._running[replica.region]
        for receiver_id in list(running):
            if receiver_id not in replica.meta.channels:
                await running.pop(receiver_id).stop()
                with contextlib.suppress(KeyError):  # it never reported a lag
                    METRICS.sync_lag.remove(str(replica.region), str(receiver_id))
        for receiver_id in replica.meta.channels:
            channel = running.get(receiver_id)
            if channel is None:
                channel = running[receiver_id] = Channel(
                    replica,
                    receiver_id,
                    self.clients,
                    self.batch_points,
                    self.throttles,
                    self.removals,
                    self.zone,
                )
            channel.start()

    async def stop(self, replica: Replica) -> None:
        for channel in self._running.pop(replica.region, {}).values():
            await channel.stop()

    def match(self, replica: Replica) -> bool:
        """Every channel the replica lists as running has its task running."""
        running = self._running.get(replica.region, {})
        return all(
            (channel := running.get(receiver_id)) is not None and channel.running
            for receiver_id, state in replica.meta.channels.items()
            if state.status == "RUNNING"
        )
