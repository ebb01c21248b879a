"""The nemesis's checker: what the cluster looks like once every fault is healed, read as
Jepsen's checkers read a history, into a list of anomalies (empty: none).

Pure: the runner observes, this judges. An anomaly names its kind and what shows it:
- `lost`: a write acknowledged (at its level) that a final replica lacks;
- `unequal`: the members of a region hold different data;
- `under-replicated`: a region with fewer members than its replication factor;
- `stale-replica`: a replica on a node its region does not list;
- `half-made`: a change left half done: members that disagree on the member list, a member
  without a replica, a member inactive, leaving or still awaiting its snapshot;
- `open-operation`: an operation still running once the run is over;
- `unreachable`: a node that still does not answer after the heal (nothing can be judged of it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

Anomaly = dict[str, Any]


@dataclass(frozen=True)
class Replica:
    node: int
    peers: tuple[int, ...]
    active: bool
    installed: bool
    leaving: bool
    count: int = 0
    hash: str = ""


@dataclass(frozen=True)
class Region:
    region: int
    replicas: dict[int, Replica]
    # acks level -> node -> acknowledged points that node's replica lacks (a few shown)
    missing: dict[str, dict[int, list[Any]]] = field(default_factory=dict)
    missing_counts: dict[str, dict[int, int]] = field(default_factory=dict)

    def members(self) -> tuple[int, ...] | None:
        """The member list most replicas agree on (None: no replica)."""
        lists = Counter(r.peers for r in self.replicas.values() if r.node in r.peers)
        if not lists:
            return None
        return lists.most_common(1)[0][0]


def anomalies(
    regions: list[Region],
    replication: int,
    open_operations: list[str],
    unreachable: list[int],
) -> list[Anomaly]:
    found: list[Anomaly] = [
        {"kind": "unreachable", "node": n, "detail": "does not answer after the heal"}
        for n in unreachable
    ]
    for region in regions:
        found += _region(region, replication)
    found += [{"kind": "open-operation", "workflow": w} for w in open_operations]
    return found


def _region(region: Region, replication: int) -> list[Anomaly]:
    r = region.region
    members = region.members()
    if members is None:
        return [{"kind": "under-replicated", "region": r, "detail": "no replica answers"}]
    found: list[Anomaly] = []
    for level, by_node in region.missing_counts.items():
        for node, count in sorted(by_node.items()):
            if count:
                sample = region.missing.get(level, {}).get(node, [])[:3]
                found.append(
                    {
                        "kind": "lost",
                        "region": r,
                        "level": level,
                        "node": node,
                        "points": count,
                        "sample": sample,
                    }
                )
    if len(members) < replication:
        found.append({"kind": "under-replicated", "region": r, "members": list(members)})
    for node, replica in sorted(region.replicas.items()):
        if node not in members:
            found.append({"kind": "stale-replica", "region": r, "node": node})
        elif replica.peers != members:
            found.append(
                {
                    "kind": "half-made",
                    "region": r,
                    "node": node,
                    "detail": f"lists {list(replica.peers)}, the others {list(members)}",
                }
            )
        elif not replica.active or replica.leaving or not replica.installed:
            state = (
                "leaving"
                if replica.leaving
                else "inactive"
                if replica.installed
                else ("awaiting its snapshot")
            )
            found.append({"kind": "half-made", "region": r, "node": node, "detail": state})
    for node in members:
        if node not in region.replicas:
            found.append(
                {"kind": "half-made", "region": r, "node": node, "detail": "listed, holds none"}
            )
    held = {(rep.count, rep.hash) for n, rep in region.replicas.items() if n in members}
    if len(held) > 1:
        found.append(
            {
                "kind": "unequal",
                "region": r,
                "replicas": {
                    str(n): {"count": rep.count, "hash": rep.hash[:16]}
                    for n, rep in sorted(region.replicas.items())
                    if n in members
                },
            }
        )
    return found
