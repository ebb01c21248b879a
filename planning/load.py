"""What each live node holds: the one load model every planner charges moves against."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.activity_models import ClusterDescription


@dataclass
class Load:
    """What one node holds: its replicas and their store bytes."""

    node: int
    regions: set[int]
    bytes: int = 0

    @property
    def count(self) -> int:
        return len(self.regions)

    def take(self, region: int, size: int) -> None:
        self.regions.add(region)
        self.bytes += size

    def give(self, region: int, size: int) -> None:
        self.regions.discard(region)
        self.bytes -= size


def loads(cluster: ClusterDescription) -> dict[int, Load]:
    """Every live node's load (unreachable ones left out)."""
    live = {n.node_id: Load(n.node_id, set()) for n in cluster.nodes}
    for node in cluster.unreachable:
        live.pop(node, None)
    for region, holders in cluster.holders.items():
        for node in holders:
            if node in live:
                live[node].take(region, cluster.store_bytes.get(region, 0))
    return live
