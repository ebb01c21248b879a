"""Fakes for unit tests of the node's parts (integration and chaos tests use real processes)."""

from __future__ import annotations

from node.replica import Replica


class FakeChannelTasks:
    """Records the replicas whose tasks were synced; `running` says whether tasks match."""

    def __init__(self, running: bool = True) -> None:
        self.running = running
        self.synced: list[int] = []
        self.matched = 0  # looks at whether a replica's tasks match

    async def sync(self, replica: Replica) -> None:
        self.synced.append(replica.region)

    def match(self, replica: Replica) -> bool:
        self.matched += 1
        return self.running
