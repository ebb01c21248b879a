"""What the nodes' own logs say happened to region replicas, and when (their clocks, not the
workflows' bookkeeping)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from tests.support.cluster import Cluster

# node/membership.py's lines for a replica created, activated and deleted
_LINE = re.compile(
    r"^(?P<at>\S+ \S+) node(?P<node>\d+) INFO node\.membership: (?:"
    r"created region (?P<created>\d+), peers .*, active=(?P<active>True|False)"
    r"|region (?P<activated>\d+) is now active"
    r"|deleted region (?P<deleted>\d+))$"
)


class ReplicaEvent(NamedTuple):
    at: datetime
    node: int
    region: int
    what: str  # "created inactive", "created active", "activated" or "deleted"


class MoveSpan(NamedTuple):
    """A move as the nodes saw it: its new replica created, until a replica was deleted."""

    region: int
    to_node: int
    start: datetime
    end: datetime


def replica_events(cluster: Cluster) -> list[ReplicaEvent]:
    """Every node's replica events, in time order."""
    events = []
    for node in cluster.nodes.values():
        for line in node.log_path.read_text().splitlines():
            if not (m := _LINE.match(line)):
                continue
            at = datetime.strptime(m["at"], "%Y-%m-%d %H:%M:%S,%f")
            if m["created"]:
                what = "created active" if m["active"] == "True" else "created inactive"
                region = m["created"]
            elif m["activated"]:
                what, region = "activated", m["activated"]
            else:
                what, region = "deleted", m["deleted"]
            events.append(ReplicaEvent(at, int(m["node"]), int(region), what))
    return sorted(events, key=lambda e: e.at)


def move_spans(cluster: Cluster) -> list[MoveSpan]:
    """Each move, from the creation of its (inactive) new replica until a replica of its region
    is deleted: the source's once it moved, the new one if it rolled back. Unfinished ones are
    left out."""
    opened: dict[int, ReplicaEvent] = {}
    spans = []
    for event in replica_events(cluster):
        if event.what == "created inactive":
            opened[event.region] = event
        elif event.what == "deleted" and (begun := opened.pop(event.region, None)):
            spans.append(MoveSpan(event.region, begun.node, begun.at, event.at))
    return spans


def most_at_once(spans: Iterable[MoveSpan]) -> int:
    """The most spans that overlap at one moment (one that ends as another starts: not both)."""
    edges = sorted(edge for s in spans for edge in ((s.start, 1), (s.end, -1)))
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def most_at_once_into(spans: list[MoveSpan]) -> dict[int, int]:
    """Per destination node, the most moves into it at one moment."""
    return {n: most_at_once(s for s in spans if s.to_node == n) for n in {s.to_node for s in spans}}


# node/breaks.py's line for a stream between nodes that broke
_BREAK = re.compile(
    r"^(?P<at>\S+ \S+) node(?P<node>\d+) WARNING node\.breaks: (?P<name>.+?): (?P<kind>\w+) "
    r"stream broken after (?P<ran>[\d.]+) s, at the (?P<end>\w+): (?P<status>.*)$"
)


class StreamBreak(NamedTuple):
    at: datetime
    node: int
    name: str  # the channel's name, or what the forward was
    kind: str  # channel, snapshot or forward
    end: str  # sender or receiver
    status: str


def stream_breaks(cluster: Cluster) -> list[StreamBreak]:
    """Every stream the nodes reported broken, in time order."""
    found = []
    for node in cluster.nodes.values():
        for line in node.log_path.read_text().splitlines():
            if m := _BREAK.match(line):
                at = datetime.strptime(m["at"], "%Y-%m-%d %H:%M:%S,%f")
                found.append(
                    StreamBreak(at, int(m["node"]), m["name"], m["kind"], m["end"], m["status"])
                )
    return sorted(found, key=lambda b: b.at)
