"""Rebalancing: which replicas move so that every live node holds about as much as the others.

Pure functions, no Temporal. A node is balanced when its store bytes are within a tolerance of
the mean (10% of the mean, or the largest region's size if that is more) and, when the regions
are alike in size, its replica count is within one of every other node's. Moves go from the
fullest nodes to the emptiest; a move is planned only if it leaves its source at least as full
as its target, so a plan never swaps a region back and forth. A region moves at most once per
plan, and never to a node that holds it.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.activity_models import ClusterDescription
from contracts.errors import InvalidRequest
from contracts.models import HIGH_WATERMARK, Move
from planning.load import Load, loads
from planning.placement import Room

TOLERANCE = 0.10  # of the mean store bytes per node
# A region moves at most once per round, so a cluster may need a few (three full nodes of
# alike regions and two empty ones take two). Each round re-describes the cluster.
MAX_ROUNDS = 5


@dataclass(frozen=True)
class Spread:
    """Per node bytes and replica counts, and how far apart the fullest and emptiest are."""

    bytes: dict[int, int]
    counts: dict[int, int]

    @property
    def max_over_min_bytes(self) -> float | None:
        """The fullest node's bytes over the emptiest's (None when the emptiest holds none)."""
        low, high = min(self.bytes.values(), default=0), max(self.bytes.values(), default=0)
        return round(high / low, 3) if low else None

    @property
    def count_range(self) -> int:
        return max(self.counts.values(), default=0) - min(self.counts.values(), default=0)


def spread(cluster: ClusterDescription, moves: list[Move] | None = None) -> Spread:
    """The live nodes' spread now, or after `moves`."""
    by_node = loads(cluster)
    for move in moves or []:
        size = cluster.store_bytes.get(move.region, 0)
        _shift(by_node[move.from_node], by_node[move.to_node], move.region, size)
    return Spread(
        bytes={n: load.bytes for n, load in sorted(by_node.items())},
        counts={n: load.count for n, load in sorted(by_node.items())},
    )


def after(cluster: ClusterDescription, moves: list[Move]) -> ClusterDescription:
    """The cluster as it will be once `moves` are done (sizes as they were)."""
    holders = {r: list(h) for r, h in cluster.holders.items()}
    disks = {n: d.model_copy() for n, d in cluster.disks.items()}
    for move in moves:
        holders[move.region] = sorted({*holders[move.region], move.to_node} - {move.from_node})
        for node, change in ((move.to_node, move.store_bytes), (move.from_node, -move.store_bytes)):
            if node in disks:
                disks[node].used += change
    return cluster.model_copy(update={"holders": holders, "disks": disks})


def plan_rounds(
    cluster: ClusterDescription,
    destinations: list[int] | None = None,
    watermark: float = HIGH_WATERMARK,
) -> list[list[Move]]:
    """Every round a rebalance will run, each planned on the cluster the last one leaves."""
    rounds: list[list[Move]] = []
    while len(rounds) < MAX_ROUNDS and (moves := plan_rebalance(cluster, destinations, watermark)):
        rounds.append(moves)
        cluster = after(cluster, moves)
    return rounds


def plan_rebalance(
    cluster: ClusterDescription,
    destinations: list[int] | None = None,
    watermark: float = HIGH_WATERMARK,
) -> list[Move]:
    """One round of moves towards every live node within tolerance; none when balanced. No
    move takes a node past the high `watermark`.

    `destinations` limits where replicas may go (IoTDB's `LOAD BALANCE TO DATANODES`); they
    come from any live node. Refused while a node does not answer: its regions are a repair's
    to restore first, and a node that is only slow would come back unbalanced.
    """
    if cluster.unreachable:
        raise InvalidRequest(
            f"node(s) {sorted(cluster.unreachable)} do not answer: bring them back, or repair "
            "them (airctl repair), before rebalancing"
        )
    by_node, room = loads(cluster), Room(cluster, watermark)
    targets = _destinations(by_node, destinations)
    sizes = cluster.store_bytes
    total = sum(load.bytes for load in by_node.values())
    mean = total / len(by_node) if by_node else 0.0
    tolerance = max(TOLERANCE * mean, max(sizes.values(), default=0))
    moved: set[int] = set()
    moves: list[Move] = []
    while (move := _next_move(by_node, targets, sizes, mean, tolerance, moved, room)) is not None:
        source = sorted(n for n in cluster.holders[move.region] if n != move.from_node)
        moves.append(move.model_copy(update={"sources": source or [move.from_node]}))
        moved.add(move.region)
        room.take(move.to_node, move.store_bytes)
        room.give(move.from_node, move.store_bytes)
        _shift(by_node[move.from_node], by_node[move.to_node], move.region, move.store_bytes)
    return moves


def _destinations(by_node: dict[int, Load], wanted: list[int] | None) -> list[int]:
    if not wanted:
        return sorted(by_node)
    unknown = sorted(set(wanted) - set(by_node))
    if unknown:
        raise InvalidRequest(
            f"destination node(s) {unknown} are not live nodes of the cluster "
            f"(live: {sorted(by_node)})"
        )
    return sorted(set(wanted))


def _next_move(
    by_node: dict[int, Load],
    targets: list[int],
    sizes: dict[int, int],
    mean: float,
    tolerance: float,
    moved: set[int],
    room: Room,
) -> Move | None:
    """The best next move: bytes first (the largest region that fits between the fullest
    node and the emptiest), then counts (the smallest region, so bytes stay balanced)."""
    fullest = sorted(by_node.values(), key=lambda n: (-n.bytes, -n.count, n.node))
    emptiest = sorted((by_node[n] for n in targets), key=lambda n: (n.bytes, n.count, n.node))
    for by_bytes in (True, False):
        for src in fullest:
            for dst in emptiest:
                if src.node == dst.node or not _worth(src, dst, mean, tolerance, by_bytes):
                    continue
                # no oscillation: the source stays at least as full as the target
                fits = [
                    r
                    for r in src.regions - dst.regions - moved
                    if 2 * sizes.get(r, 0) <= src.bytes - dst.bytes
                    and (sizes.get(r, 0) > 0 or not by_bytes)
                    and room.fits(dst.node, sizes.get(r, 0))
                ]
                if fits:
                    if by_bytes:
                        region = max(fits, key=lambda r: (sizes.get(r, 0), -r))
                    else:
                        region = min(fits, key=lambda r: (sizes.get(r, 0), r))
                    return Move(
                        region=region,
                        from_node=src.node,
                        to_node=dst.node,
                        store_bytes=sizes.get(region, 0),
                    )
    return None


def _worth(src: Load, dst: Load, mean: float, tolerance: float, by_bytes: bool) -> bool:
    """Whether moving one replica from `src` to `dst` mends an imbalance."""
    if by_bytes:
        return src.bytes > mean + tolerance or dst.bytes < mean - tolerance
    return src.count >= dst.count + 2


def _shift(src: Load, dst: Load, region: int, size: int) -> None:
    src.give(region, size)
    dst.take(region, size)
