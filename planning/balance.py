"""Rebalancing: which replicas move so that every region is as diverse as the cluster allows and
every live node holds about as much as the others.

Pure functions, no Temporal. A round first raises the under-diversified regions (those one
move of a replica would make more diverse: planning/diversity.py), one move each, to the best
node by the placement's rank; then it evens bytes. A node is balanced when its store bytes are
within a tolerance of the mean (10% of the mean, or the largest region's size if that is more)
and, when the regions are alike in size, its replica count is within one of every other node's.
Moves of bytes go from the fullest nodes to the emptiest; such a move is planned only if it
leaves its source at least as full as its target, so a plan never swaps a region back and
forth, and never if it would lower its region's diversity (unless allowed). A region moves at
most once per plan, and never to a node that holds it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass

from contracts.activity_models import ClusterDescription
from contracts.errors import InvalidRequest
from contracts.models import HIGH_WATERMARK, Move
from planning.diversity import Place, Places, Raise, describe
from planning.load import Load, loads
from planning.placement import Plan, Room, members, nearest_sources, rank, size_text

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
    peers = {r: list(p) for r, p in cluster.peers.items()}
    disks = {n: d.model_copy() for n, d in cluster.disks.items()}
    for move in moves:
        holders[move.region] = sorted({*holders[move.region], move.to_node} - {move.from_node})
        if move.region in peers:
            peers[move.region] = sorted({*peers[move.region], move.to_node} - {move.from_node})
        for node, change in ((move.to_node, move.store_bytes), (move.from_node, -move.store_bytes)):
            if node in disks:
                disks[node].used += change
    return cluster.model_copy(update={"holders": holders, "peers": peers, "disks": disks})


def plan_rounds(
    cluster: ClusterDescription,
    destinations: list[int] | None = None,
    watermark: float = HIGH_WATERMARK,
    allow_less_diverse: bool = False,
) -> list[Plan]:
    """Every round a rebalance will run, each planned on the cluster the last one leaves."""
    rounds: list[Plan] = []
    while len(rounds) < MAX_ROUNDS:
        plan = plan_rebalance(cluster, destinations, watermark, allow_less_diverse)
        if not plan.moves:
            break
        rounds.append(plan)
        cluster = after(cluster, plan.moves)
    return rounds


def plan_rebalance(
    cluster: ClusterDescription,
    destinations: list[int] | None = None,
    watermark: float = HIGH_WATERMARK,
    allow_less_diverse: bool = False,
) -> Plan:
    """One round of moves: the under-diversified regions raised, then every live node brought
    within tolerance; no moves when there is nothing to mend. No move takes a node past the
    high `watermark`.

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
    planner = _Balancer(cluster, by_node, targets, room, allow_less_diverse)
    plan = Plan()
    planner.raise_diversity(plan)
    total = sum(load.bytes for load in by_node.values())
    mean = total / len(by_node) if by_node else 0.0
    tolerance = max(TOLERANCE * mean, max(sizes.values(), default=0))
    while (move := planner.next_move(mean, tolerance)) is not None:
        planner.make(plan, move)
    planner.why_unbalanced(plan, mean, tolerance)
    return plan


def under_diversified(
    cluster: ClusterDescription, watermark: float = HIGH_WATERMARK
) -> dict[int, str]:
    """The regions one move of a replica to a live node would make more diverse (not
    conformant), each with why it is so: the move a rebalance would make, or the places that
    lack room for it. A region with a replica on a node that does not answer counts that
    replica where the directory says it stands."""
    by_node = loads(cluster)
    planner = _Balancer(cluster, by_node, sorted(by_node), Room(cluster, watermark), False)
    plan = Plan()
    planner.raise_diversity(plan)
    found = dict(plan.under_diversified)
    places = planner.places
    for move in plan.moves:
        around = members(cluster, move.region)
        rest = [n for n in around if n != move.from_node]
        found[move.region] = (
            f"its diversity {places.diversity(around):.2f} could be "
            f"{places.with_each(rest, [move.to_node])[move.to_node]:.2f}: a rebalance moves "
            f"its replica on node {move.from_node} ({describe(places.of(move.from_node))}) to "
            f"node {move.to_node} ({describe(places.of(move.to_node))})"
        )
    return dict(sorted(found.items()))


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


class _Balancer:
    """One round's planning: the loads it charges, the regions it moved, and each node's
    regions not moved yet sorted by size, so the next move is found by bisection rather than
    by a scan of every region of every pair of nodes."""

    def __init__(
        self,
        cluster: ClusterDescription,
        by_node: dict[int, Load],
        targets: list[int],
        room: Room,
        allow_less_diverse: bool,
    ) -> None:
        self.cluster = cluster
        self.by_node = by_node
        self.targets = targets
        self.target_set = set(targets)
        self.room = room
        self.sizes = cluster.store_bytes
        self.places = Places(cluster.localities)
        # diversity counts only where places are known, and then only if not waived
        self.guard = self.places.known and not allow_less_diverse
        self.moved: set[int] = set()
        # node -> (size, -region) ascending (the largest last) and (size, region) ascending
        self.largest: dict[int, list[tuple[int, int]]] = {}
        self.smallest: dict[int, list[tuple[int, int]]] = {}
        for node, load in by_node.items():
            self.largest[node] = sorted((self.sizes.get(r, 0), -r) for r in load.regions)
            self.smallest[node] = sorted((self.sizes.get(r, 0), r) for r in load.regions)
        self.fullest = sorted(_full_key(load) for load in by_node.values())
        self.emptiest = sorted(_empty_key(by_node[n]) for n in targets)

    # -- diversity first ----------------------------------------------------------------------

    def raise_diversity(self, plan: Plan) -> None:
        """For each region one move could make more diverse: the most diverse such move that
        fits, to the node best by rank, from its replica on the fullest node; a region no such
        move fits is said under-diversified, with why."""
        if not self.places.known:
            return
        free = _FreePlaces(self.places, self.by_node)
        for region in sorted(self.cluster.holders):
            around = members(self.cluster, region)
            raises = self.places.raises(around, free.of(around))
            if not raises:
                continue
            move = self._raising_move(region, around, raises)
            if move is not None:
                self.make(plan, move)
                continue
            best = {r.to for r in raises if r.diversity == raises[0].diversity}
            among = "" if len(self.targets) == len(self.by_node) else " among the destinations"
            plan.under_diversified[region] = (
                f"its diversity {self.places.diversity(around):.2f} could be "
                f"{raises[0].diversity:.2f}, but "
                + " or ".join(describe(p) for p in sorted(best))
                + f" has no node with room for {size_text(self.sizes.get(region, 0))}{among}"
            )

    def _raising_move(self, region: int, around: list[int], raises: list[Raise]) -> Move | None:
        """The first of `raises` that a destination fits, from a live holder."""
        size = self.sizes.get(region, 0)
        holders = [n for n in self.cluster.holders.get(region, []) if n in self.by_node]
        taken = set(around)
        for option in raises:
            if option.member not in holders:
                continue
            nodes = [
                n
                for n in self.targets
                if n not in taken and self.places.of(n) == option.to and self.room.fits(n, size)
            ]
            if nodes:
                to = min(nodes, key=lambda n: rank(self.by_node[n], option.diversity, False))
                # of the holders in one place, the one on the fullest node leaves
                place = self.places.of(option.member)
                same = [m for m in holders if self.places.of(m) == place]
                src = min(same, key=lambda m: _full_key(self.by_node[m]))
                return Move(region=region, from_node=src, to_node=to, store_bytes=size)
        return None

    # -- then bytes ---------------------------------------------------------------------------

    def next_move(self, mean: float, tolerance: float, guard: bool | None = None) -> Move | None:
        """The best next move: bytes first (the largest region that fits between the fullest
        node and the emptiest), then counts (the smallest region, so bytes stay balanced)."""
        guard = self.guard if guard is None else guard
        low, high = mean - tolerance, mean + tolerance
        emptiest = [self.by_node[key[2]] for key in self.emptiest]
        for full in self.fullest:  # by bytes
            src = self.by_node[full[2]]
            over = src.bytes > high
            if not over and (not emptiest or emptiest[0].bytes >= low):
                break  # no node after it is over either, and none is under
            for dst in emptiest:
                if not over and dst.bytes >= low:
                    break  # none after it is under either
                if dst.node == src.node:
                    continue
                if (region := self._fitting(src, dst, True, guard)) is not None:
                    return self._move(region, src, dst)
        fewest = min((load.count for load in emptiest), default=0)
        for full in self.fullest:  # then by count
            src = self.by_node[full[2]]
            if src.count < fewest + 2:
                continue
            for dst in emptiest:
                if src.count >= dst.count + 2 and dst.node != src.node:
                    region = self._fitting(src, dst, False, guard)
                    if region is not None:
                        return self._move(region, src, dst)
        return None

    def _move(self, region: int, src: Load, dst: Load) -> Move:
        size = self.sizes.get(region, 0)
        return Move(region=region, from_node=src.node, to_node=dst.node, store_bytes=size)

    def _fitting(self, src: Load, dst: Load, by_bytes: bool, guard: bool) -> int | None:
        """The region to move from `src` to `dst`: not moved yet, not on `dst`, fitting
        between them (the source stays at least as full as the target: no oscillation) and
        under `dst`'s watermark, and not lowering its diversity if `guard`. By bytes the
        largest (then the lowest id), by count the smallest (then the lowest id)."""
        bound = (src.bytes - dst.bytes) // 2
        if bound < 0:
            return None
        limit = self.room.limit(dst.node)
        if by_bytes:
            entries = self.largest[src.node]
            cap = min(bound, int(limit) + 1) if limit != float("inf") else bound
            i = bisect_right(entries, (cap, 0))
            while i > 0:
                i -= 1
                size, negative = entries[i]
                if size <= 0:
                    return None
                region = -negative
                if self._allowed(region, size, src, dst, guard):
                    return region
            return None
        for size, region in self.smallest[src.node]:
            if size > bound or not self.room.fits(dst.node, size):
                return None
            if self._allowed(region, size, src, dst, guard):
                return region
        return None

    def _allowed(self, region: int, size: int, src: Load, dst: Load, guard: bool) -> bool:
        if region in dst.regions or not self.room.fits(dst.node, size):
            return False
        return not guard or not self._lowers(region, src.node, dst.node)

    def _lowers(self, region: int, src: int, dst: int) -> bool:
        around = members(self.cluster, region)
        rest = [n for n in around if n != src]
        return self.places.with_each(rest, [dst])[dst] < self.places.diversity(around)

    def why_unbalanced(self, plan: Plan, mean: float, tolerance: float) -> None:
        """Where the guard stopped the round short of balance: the region the next move would
        have taken, kept, with why."""
        if not self.guard or (move := self.next_move(mean, tolerance, guard=False)) is None:
            return
        around = members(self.cluster, move.region)
        rest = [n for n in around if n != move.from_node]
        before = self.places.diversity(around)
        would = self.places.with_each(rest, [move.to_node])[move.to_node]
        plan.kept[move.region] = (
            f"moving it from node {move.from_node} to node {move.to_node} would even the nodes' "
            f"bytes but lower its diversity from {before:.2f} to {would:.2f}; moved only if "
            "allowed (--allow-less-diverse)"
        )

    # -- planning a move ----------------------------------------------------------------------

    def make(self, plan: Plan, move: Move) -> None:
        """Record `move`, with the nodes it may copy from, and charge it."""
        holders = self.cluster.holders[move.region]
        sources = nearest_sources(self.places, sorted(holders), move.to_node, move.from_node)
        plan.moves.append(move.model_copy(update={"sources": sources}))
        src, dst = self.by_node[move.from_node], self.by_node[move.to_node]
        for load in (src, dst):
            _remove(self.fullest, _full_key(load))
            if load.node in self.target_set:
                _remove(self.emptiest, _empty_key(load))
        self.moved.add(move.region)
        size = move.store_bytes
        self.room.take(dst.node, size)
        self.room.give(src.node, size)
        _shift(src, dst, move.region, size)
        for n in holders:  # it moves once: from none of its nodes again
            if n in self.by_node:
                _remove(self.largest[n], (size, -move.region))
                _remove(self.smallest[n], (size, move.region))
        for load in (src, dst):
            insort(self.fullest, _full_key(load))
            if load.node in self.target_set:
                insort(self.emptiest, _empty_key(load))


class _FreePlaces:
    """The places of the live nodes that do not hold a region, counted per place: a region
    costs its members and the cluster's places, not every node."""

    def __init__(self, places: Places, live: dict[int, Load]) -> None:
        self.places = places
        self.live = live
        self.per_place: dict[Place, int] = {}
        for n in live:
            self.per_place[places.of(n)] = self.per_place.get(places.of(n), 0) + 1

    def of(self, around: list[int]) -> set[Place]:
        held: dict[Place, int] = {}
        for n in around:
            if n in self.live:
                held[self.places.of(n)] = held.get(self.places.of(n), 0) + 1
        return {p for p, count in self.per_place.items() if count > held.get(p, 0)}


def _remove(keys: list[tuple[int, int, int]] | list[tuple[int, int]], key: tuple[int, ...]) -> None:
    """Take `key` out of the sorted `keys`, found by bisection."""
    i = bisect_left(keys, key)
    assert keys[i] == key, (keys[i], key)
    del keys[i]


def _full_key(load: Load) -> tuple[int, int, int]:
    return (-load.bytes, -load.count, load.node)


def _empty_key(load: Load) -> tuple[int, int, int]:
    return (load.bytes, load.count, load.node)


def _shift(src: Load, dst: Load, region: int, size: int) -> None:
    src.give(region, size)
    dst.take(region, size)
