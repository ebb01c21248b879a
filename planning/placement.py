"""What a membership change will do, decided from the region as its holders describe it.

Pure functions, no Temporal: a workflow plans once from the description in its history, so a
retried workflow task plans exactly what the first try did; tests plan without a cluster.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from contracts.activity_models import ClusterDescription, Disk, Peer, RegionDescription
from contracts.errors import InvalidRequest, NodeUnreachable
from contracts.models import (
    HIGH_WATERMARK,
    AddPeerInput,
    MigrationInput,
    Move,
    ReconstructInput,
    RemovePeerInput,
)
from planning.diversity import Place, Places, describe
from planning.load import Load, loads

# The most moves an operation runs at once: each running move adds events to the operation's
# history as it ends, and a run must end within its budget (workflows/machinery/moves.py).
MAX_CONCURRENT = 50


def check_bound(name: str, value: int) -> None:
    """A bound on moves at once: 1 to MAX_CONCURRENT."""
    if not 1 <= value <= MAX_CONCURRENT:
        raise InvalidRequest(f"{name} must be from 1 to {MAX_CONCURRENT}, not {value}")


class Room:
    """What each live node's disk can still take under the high watermark, charged as moves
    are planned. A node that reported no disk has room for anything: nothing is known to bound
    it by."""

    def __init__(
        self, cluster: ClusterDescription | RegionDescription, watermark: float = HIGH_WATERMARK
    ) -> None:
        if not 0 < watermark <= 1:
            raise InvalidRequest(f"the high watermark is a fraction from 0 to 1, not {watermark}")
        self.watermark = watermark
        self.disks: dict[int, Disk] = {n: d for n, d in cluster.disks.items() if d.capacity > 0}
        self._taken: dict[int, int] = {}

    def used_after(self, node: int, size: int) -> float:
        """The fraction of `node`'s disk used once it takes `size` more bytes."""
        disk = self.disks[node]
        return (disk.used + self._taken.get(node, 0) + size) / disk.capacity

    def fits(self, node: int, size: int) -> bool:
        disk = self.disks.get(node)
        if disk is None:
            return True
        return (disk.used + self._taken.get(node, 0) + size) / disk.capacity <= self.watermark

    def limit(self, node: int) -> float:
        """Above about this many bytes, `node` cannot take a region (`fits` decides)."""
        if node not in self.disks:
            return float("inf")
        disk = self.disks[node]
        return self.watermark * disk.capacity - disk.used - self._taken.get(node, 0)

    def take(self, node: int, size: int) -> None:
        self._taken[node] = self._taken.get(node, 0) + size

    def give(self, node: int, size: int) -> None:
        self._taken[node] = self._taken.get(node, 0) - size

    def nowhere(self, region: int, size: int, candidates: list[int]) -> str:
        """Why a region fits on none of `candidates`."""
        full = "; ".join(
            f"node {n} would be {self.used_after(n, size):.0%} full" for n in candidates
        )
        return (
            f"region {region} ({size / 1e6:.1f} MB) fits on no live node under the "
            f"{self.watermark:.0%} high watermark: {full}"
        )


class NoDestination(InvalidRequest):
    """No live node can take a new replica of the region; the message says why."""


@dataclass(frozen=True)
class Beside:
    """What a new replica of a region stands beside: the region's other replicas, and the one
    it replaces (a drained or dead node's), if any."""

    rest: tuple[int, ...]
    replaces: int | None = None


@dataclass(frozen=True)
class Destination:
    node: int
    diversity: float  # the region's, once it is there


def destination(
    load: dict[int, Load],
    room: Room,
    places: Places,
    region: int,
    size: int,
    excluded: Iterable[int],
    beside: Beside,
) -> Destination:
    """Where a new replica of `region` (`size` store bytes) goes: of the live nodes not
    `excluded` (its holders and peers, and any the caller rules out), those it fits on under
    the high watermark, the best by `rank`. Every planner places a replica through here; the
    caller charges the node with it (`charge`). `NoDestination` when no node is left."""
    taken = set(excluded)
    candidates = [n for n in sorted(load) if n not in taken]
    if not candidates:
        raise NoDestination(f"region {region} is already on every live node")
    fitting = [n for n in candidates if room.fits(n, size)]
    if not fitting:
        raise NoDestination(room.nowhere(region, size, candidates))
    if not places.known:  # every node as diverse and as near as another
        chosen = min(fitting, key=lambda n: rank(load[n], 1.0, False))
        return Destination(chosen, 1.0)
    leaves = places.with_each(beside.rest, fitting)
    zone = places.zone.get(beside.replaces) if beside.replaces is not None else None
    near = {n: zone is not None and places.zone.get(n) == zone for n in fitting}
    chosen = min(fitting, key=lambda n: rank(load[n], leaves[n], near[n]))
    return Destination(chosen, leaves[chosen])


def rank(node: Load, diversity: float, near: bool) -> tuple[float, bool, int, int, int]:
    """How good a destination a node is, smallest best: the region most diverse with it
    there (CockroachDB ranks candidates by diversity before balance); then in the zone of
    the replica it replaces (so each zone keeps its share of the replicas, and the snapshot
    may come from inside it); then the fewest store bytes, the fewest replicas, the lowest
    id. One key for every planner."""
    return (-diversity, not near, node.bytes, node.count, node.node)


def charge(load: dict[int, Load], room: Room, node: int, region: int, size: int) -> None:
    """`node` takes a replica of `region`: the next choice counts it."""
    load[node].take(region, size)
    room.take(node, size)


@dataclass
class Plan:
    """An operation's moves, and the regions it leaves as they are or less diverse, why."""

    moves: list[Move] = field(default_factory=list)
    # regions it does not move (a move would lower their diversity; a repair's that cannot
    # be repaired), with why
    kept: dict[int, str] = field(default_factory=dict)
    # regions a move leaves less diverse than they were, or that it could not make as
    # diverse as the cluster allows, with why
    under_diversified: dict[int, str] = field(default_factory=dict)


def members(cluster: ClusterDescription, region: int) -> list[int]:
    """The region's replicas: its holders and the peers they list (those that do not
    answer too)."""
    return sorted({*cluster.holders.get(region, []), *cluster.peers.get(region, [])})


def nearest_sources(places: Places, holders: Sequence[int], to: int, leaving: int) -> list[int]:
    """The nodes a new replica on `to` may copy from: of the live `holders` other than the
    `leaving` one, those nearest `to` (its own zone, when one is there); the leaving node
    itself when it is live and alone nearest, or when no other holder is live."""
    others = [n for n in holders if n != leaving]
    near = places.nearest([*others, leaving] if leaving in holders else others, to)
    if leaving in near and len(near) > 1:
        near.remove(leaving)  # as near as another: it is busy enough leaving
    return sorted(near) or [leaving]


def size_text(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 10**9 else f"{size / 1e6:.1f} MB"


def why_less_diverse(
    places: Places,
    load: dict[int, Load],
    room: Room,
    size: int,
    excluded: Iterable[int],
    beside: Beside,
    before: float,
    after: float,
) -> str:
    """Why the most diverse destination that fits leaves a region less diverse than it was:
    the places that would keep it as diverse, and that none of their nodes has room."""
    taken = set(excluded)
    others = [n for n in sorted(load) if n not in taken]
    leaves = places.with_each(beside.rest, others)
    keeping = sorted({places.of(n) for n in others if leaves[n] >= before})
    where = (
        " or ".join(describe(p) for p in keeping) + f" has no node with room for {size_text(size)}"
        if keeping
        else "no other live node stands where it would keep it as diverse"
    )
    return f"its diversity would fall from {before:.2f} to {after:.2f}: {where}"


@dataclass(frozen=True)
class Addition:
    region: int
    new: Peer
    peers: list[Peer]  # the region's peers before
    coordinator: Peer  # sends the snapshot
    down_timeout_s: float
    # Peers that do not answer and are leaving (a repair's dead node): no channel from them
    # is asked for and their writes are not in the target (the new replica takes them from
    # the others in the removal's catch-up: only they send them). Whatever they acknowledged
    # and never replicated cannot be accounted for; the removal reports how much the others
    # hold.
    absent: tuple[int, ...] = ()

    def live_peers(self) -> list[Peer]:
        return [p for p in self.peers if p.node_id not in self.absent]

    def summary(self) -> str:
        """What it will do, in a line (what a client that started it is answered)."""
        return (
            f"add node {self.new.node_id} to region {self.region} "
            f"(snapshot from node {self.coordinator.node_id})"
        )


@dataclass(frozen=True)
class Removal:
    region: int
    leaving: Peer
    remaining: list[Peer]
    down_timeout_s: float
    rollback: bool = False  # undoing an addition: no kill points, retried until done
    # Remaining peers the leaving one has no channel to: a replica added while it did not
    # answer (a repair's). They take its writes from the others (a catch-up), not from it.
    unlinked: tuple[int, ...] = ()

    def summary(self) -> str:
        return f"remove node {self.leaving.node_id} from region {self.region}"


@dataclass(frozen=True)
class Migration:
    addition: Addition
    removal: Removal  # planned with the addition: the region is described once

    def summary(self) -> str:
        return (
            f"move region {self.addition.region} from node {self.removal.leaving.node_id} to "
            f"node {self.addition.new.node_id} (snapshot from node "
            f"{self.addition.coordinator.node_id})"
        )


def region_peers(description: RegionDescription) -> list[Peer]:
    """The region's peer list, as its holders know it (their union, by node id)."""
    if not description.replicas:
        unreachable = description.unreachable
        hint = f" (unreachable nodes: {unreachable})" if unreachable else ""
        raise InvalidRequest(f"region {description.region} does not exist on any known node{hint}")
    peers: dict[int, Peer] = {}
    for replica in description.replicas:
        for p in replica.peers:
            peers.setdefault(p.node_id, p)
    return [peers[i] for i in sorted(peers)]


def require_node(description: RegionDescription, node_id: int, role: str) -> Peer:
    node = description.node(node_id)
    if node is None:
        known = ", ".join(str(n.node_id) for n in description.known_nodes) or "none"
        raise InvalidRequest(f"{role} node {node_id} is not in the cluster (known nodes: {known})")
    return node


def choose_coordinator(
    description: RegionDescription,
    wanted: int | None,
    rng: random.Random,
    exclude: int = 0,
    near: int | None = None,
) -> Peer:
    """A live, active holder: the one asked for, or one at random (as IoTDB chooses) of those
    nearest `near`, the new replica's node (its own zone, when a holder is there)."""
    live = [
        r
        for r in description.replicas
        if r.active and r.node_id not in description.unreachable and r.node_id != exclude
    ]
    if wanted is not None:
        if wanted in description.unreachable:
            raise NodeUnreachable(f"the coordinator, node {wanted}, cannot be reached", wanted)
        if wanted not in {r.node_id for r in live}:
            raise InvalidRequest(
                f"coordinator node {wanted} is not a live, active holder of region "
                f"{description.region} (live holders: {sorted(r.node_id for r in live)})"
            )
        return require_node(description, wanted, "coordinator")
    if not live:
        raise InvalidRequest(
            f"region {description.region} has no live, active replica to copy from"
        )
    pool = sorted(live, key=lambda r: r.node_id)
    if near is not None:
        nearest = set(Places(description.localities).nearest([r.node_id for r in pool], near))
        pool = [r for r in pool if r.node_id in nearest]
    chosen = rng.choice(pool)
    return Peer(node_id=chosen.node_id, address=chosen.address)


def plan_addition(
    description: RegionDescription, req: AddPeerInput, rng: random.Random, exclude: int = 0
) -> Addition:
    """Validate an addition; pick its coordinator (never `exclude` unless asked for)."""
    peers = region_peers(description)
    new = require_node(description, req.new_peer, "new peer")
    if req.new_peer in {p.node_id for p in peers} or description.replica(req.new_peer):
        raise InvalidRequest(f"node {req.new_peer} is already a peer of region {req.region}")
    if req.new_peer in description.stale:
        raise InvalidRequest(
            f"node {req.new_peer} still holds a replica of region {req.region} that the region "
            "removed while it was cut off (airctl regions: STALE); it deletes it by itself "
            "soon: try again once it is gone"
        )
    if req.new_peer in description.unreachable:
        raise NodeUnreachable(f"the new peer, node {req.new_peer}, cannot be reached", req.new_peer)
    if not req.allow_less_diverse:
        check_place(description, [p.node_id for p in peers], req.new_peer)
    coordinator = choose_coordinator(description, req.coordinator, rng, exclude, req.new_peer)
    return Addition(req.region, new, peers, coordinator, req.down_timeout_s)


def check_place(description: RegionDescription, rest: list[int], new: int) -> None:
    """Refuse a new replica on `new`, beside the region's replicas on `rest`, while a live
    node it fits on (under the high watermark) would leave the region more diverse: naming
    those nodes, and what `new` shares with the replica nearest it."""
    places = Places(description.localities)
    if not places.known:
        return
    room, taken = Room(description), {*rest, new, *(r.node_id for r in description.replicas)}
    others = [
        n.node_id
        for n in description.known_nodes
        if n.node_id not in taken
        and n.node_id not in description.unreachable
        and room.fits(n.node_id, description.store_bytes)
    ]
    leaves = places.with_each(rest, [new, *others])
    better = sorted((n for n in others if leaves[n] > leaves[new]), key=lambda n: -leaves[n])
    if not better:
        return
    twin = max(rest, key=lambda n: (len(_shared(places.of(n), places.of(new))), -n))
    shared = _shared(places.of(twin), places.of(new))
    best = sorted(n for n in better if leaves[n] == leaves[better[0]])
    stands = (
        f"shares {describe(shared)} with node {twin}, a replica of region {description.region}"
        if shared
        else f"stands nearer the other replicas of region {description.region}"
    )
    raise InvalidRequest(
        f"node {new} {stands}, while node(s) {', '.join(map(str, best))} "
        f"({describe(places.of(best[0]))}) would leave it more diverse ({leaves[best[0]]:.2f} "
        f"against {leaves[new]:.2f}) and fit; choose one of them, or allow it "
        "(--allow-less-diverse)"
    )


def _shared(a: Place, b: Place) -> Place:
    shared = []
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        shared.append(x)
    return tuple(shared)


def plan_removal(description: RegionDescription, req: RemovePeerInput) -> Removal:
    """Validate a removal."""
    return _removal(req.region, region_peers(description), req.peer, req.down_timeout_s)


def _removal(region: int, peers: list[Peer], peer: int, down_timeout_s: float) -> Removal:
    leaving = next((p for p in peers if p.node_id == peer), None)
    if leaving is None:
        raise InvalidRequest(
            f"node {peer} is not a peer of region {region} (peers: {[p.node_id for p in peers]})"
        )
    remaining = [p for p in peers if p.node_id != peer]
    if not remaining:
        raise InvalidRequest(f"node {peer} holds the last replica of region {region}")
    return Removal(region, leaving, remaining, down_timeout_s)


def validate_migration(description: RegionDescription, req: MigrationInput) -> None:
    """Fail fast, changing nothing, on a migration that cannot be right."""
    if req.from_node == req.to_node:
        raise InvalidRequest(f"from and to are the same node ({req.from_node})")
    require_node(description, req.from_node, "from")
    require_node(description, req.to_node, "to")
    peers = {p.node_id for p in region_peers(description)}
    if req.from_node not in peers:
        raise InvalidRequest(
            f"node {req.from_node} is not a peer of region {req.region} (peers: {sorted(peers)})"
        )
    if req.to_node in peers:
        raise InvalidRequest(f"node {req.to_node} is already a peer of region {req.region}")
    if req.to_node in description.unreachable:
        raise NodeUnreachable(
            f"the destination, node {req.to_node}, cannot be reached", req.to_node
        )
    if req.from_node in description.unreachable and not req.from_node_gone:
        raise NodeUnreachable(
            f"the source, node {req.from_node}, cannot be reached; to replace a node that is "
            f"gone, repair it (airctl repair --node {req.from_node})",
            req.from_node,
        )


def migration_coordinator(
    description: RegionDescription, req: MigrationInput, rng: random.Random
) -> Peer:
    """A live peer other than the leaving one, unless it is the only one (or one is given)."""
    # Others that can copy, not other replicas: an inactive one (still being added) cannot
    # copy, and counted as one it would leave the migration with no node to copy from while
    # the leaving node could be that node.
    others = any(
        r.active and r.node_id not in description.unreachable and r.node_id != req.from_node
        for r in description.replicas
    )
    exclude = req.from_node if others and req.coordinator is None else 0
    return choose_coordinator(description, req.coordinator, rng, exclude, req.to_node)


def plan_migration(
    description: RegionDescription, req: MigrationInput, rng: random.Random
) -> Migration:
    """The addition of `to_node`, then the removal of `from_node`, from one description."""
    validate_migration(description, req)
    if not req.allow_less_diverse:
        rest = [p.node_id for p in region_peers(description) if p.node_id != req.from_node]
        check_place(description, rest, req.to_node)
    coordinator = migration_coordinator(description, req, rng)
    addition = plan_addition(
        description,
        AddPeerInput(
            region=req.region,
            new_peer=req.to_node,
            coordinator=coordinator.node_id,
            down_timeout_s=req.down_timeout_s,
            allow_less_diverse=True,  # judged above, the leaving replica left out
        ),
        rng,
    )
    after = sorted([*addition.peers, addition.new], key=lambda p: p.node_id)
    leaving_down = req.leaving_down_timeout_s or req.down_timeout_s
    removal = _removal(req.region, after, req.from_node, leaving_down)
    if req.from_node in description.unreachable:  # a repair: the leaving node is dead
        addition = replace(addition, absent=(req.from_node,))
        removal = replace(removal, unlinked=(req.to_node,))
    return Migration(addition, removal)


@dataclass(frozen=True)
class Reconstruction:
    removal: Removal  # the replica to rebuild leaves first
    addition: Addition  # then comes back, by snapshot from a live holder
    elsewhere: list[Peer]  # live non-peers, in order, should it not come back

    def summary(self) -> str:
        return (
            f"rebuild node {self.removal.leaving.node_id}'s replica of region "
            f"{self.removal.region} from node {self.addition.coordinator.node_id}'s"
        )


def plan_reconstruct(
    description: RegionDescription, req: ReconstructInput, rng: random.Random
) -> Reconstruction:
    """Rebuild `req.node`'s replica from the others: removed, then added back by snapshot."""
    peers = region_peers(description)
    node = require_node(description, req.node, "the")
    removal = _removal(req.region, peers, req.node, req.down_timeout_s)
    try:
        coordinator = choose_coordinator(description, None, rng, exclude=req.node)
    except InvalidRequest:
        raise InvalidRequest(
            f"region {req.region} has no live, active replica but node {req.node}'s: "
            "there is nothing to rebuild it from"
        ) from None
    addition = Addition(req.region, node, removal.remaining, coordinator, req.down_timeout_s)
    taken = {p.node_id for p in peers} | set(description.unreachable)
    elsewhere = [n for n in description.known_nodes if n.node_id not in taken]
    places = Places(description.localities)
    if places.known:  # the most diverse first, then the nearest the node it replaces
        rest = [p.node_id for p in removal.remaining]
        leaves = places.with_each(rest, [n.node_id for n in elsewhere])
        elsewhere.sort(
            key=lambda n: (-leaves[n.node_id], not places.same_zone(n.node_id, req.node), n.node_id)
        )
    return Reconstruction(removal, addition, elsewhere)


def plan_drain(
    cluster: ClusterDescription,
    node: int,
    watermark: float = HIGH_WATERMARK,
    allow_less_diverse: bool = False,
    nearest_source: bool = True,
) -> Plan:
    """Each region of `node` to the live node that does not hold it and that stays under the
    high `watermark` with it (counting the moves planned so far), the best by `rank`: the
    region most diverse, then the nearest `node`, then the fewest store bytes, replicas, id.

    A move that would leave its region less diverse than it is is made only if
    `allow_less_diverse`; otherwise the region is kept, with why. Each move lists the nodes it
    may copy from: the nearest (`nearest_sources`), or without `nearest_source` every other
    live holder (the drained node itself only when it holds the last replica).
    """
    _require_known(cluster, node)
    if node in cluster.unreachable:  # else it holds nothing we can see: an empty "success"
        raise InvalidRequest(
            f"node {node} does not answer, so its regions cannot be listed: drain it once it "
            "answers, or repair it if it is gone"
        )
    load, room, places = loads(cluster), Room(cluster, watermark), Places(cluster.localities)
    plan = Plan()
    for region, holders in sorted(cluster.holders.items()):
        if node not in holders:
            continue
        size = cluster.store_bytes.get(region, 0)
        around = members(cluster, region)
        beside = Beside(tuple(n for n in around if n != node), node)
        to = destination(load, room, places, region, size, holders, beside)
        before = places.diversity(around)
        if to.diversity < before:
            why = why_less_diverse(places, load, room, size, holders, beside, before, to.diversity)
            if not allow_less_diverse:
                plan.kept[region] = f"{why}; moved only if allowed (--allow-less-diverse)"
                continue
            plan.under_diversified[region] = why
        charge(load, room, to.node, region, size)
        live = [n for n in sorted(holders) if n in load]
        anywhere = Places({})  # every holder as near as another
        sources = nearest_sources(places if nearest_source else anywhere, live, to.node, node)
        plan.moves.append(
            Move(region=region, from_node=node, to_node=to.node, store_bytes=size, sources=sources)
        )
    return plan


def plan_repair(cluster: ClusterDescription, node: int, watermark: float = HIGH_WATERMARK) -> Plan:
    """For each region `node` (which does not answer) is a peer of: a new replica on the live
    non-peer the best by `rank` (the region most diverse, then the nearest `node`: its own
    zone, then the fewest store bytes) that it fits on, copied from a live holder (the
    nearest); then `node` removed. A region is repaired even where only a less diverse place
    fits, and is then said under-diversified, with why; one that cannot be repaired is kept,
    with why.
    """
    _require_known(cluster, node)
    if node not in cluster.unreachable:
        raise InvalidRequest(
            f"node {node} answers: a repair is for a node that is gone; to move its replicas "
            f"off, drain it (airctl drain --node {node})"
        )
    load, room, places = loads(cluster), Room(cluster, watermark), Places(cluster.localities)
    plan = Plan()
    for region, peers in sorted(cluster.peers.items()):
        if node not in peers:
            continue
        holders = [n for n in cluster.holders.get(region, []) if n in load]
        if not holders:
            plan.kept[region] = f"no live replica of region {region} to copy from"
            continue
        size = cluster.store_bytes.get(region, 0)
        around, excluded = members(cluster, region), {*peers, *holders}
        beside = Beside(tuple(n for n in around if n != node), node)
        try:
            to = destination(load, room, places, region, size, excluded, beside)
        except NoDestination as e:
            plan.kept[region] = str(e)
            continue
        before = places.diversity(around)
        if to.diversity < before:
            plan.under_diversified[region] = why_less_diverse(
                places, load, room, size, excluded, beside, before, to.diversity
            )
        charge(load, room, to.node, region, size)
        plan.moves.append(
            Move(
                region=region,
                from_node=node,
                to_node=to.node,
                store_bytes=size,
                sources=places.nearest(sorted(holders), to.node),
            )
        )
    return plan


def replan_move(
    cluster: ClusterDescription,
    move: Move,
    avoid: set[int],
    watermark: float = HIGH_WATERMARK,
    allow_less_diverse: bool = False,
) -> Move | None:
    """The same move to another destination, none of `avoid` (they failed it), chosen as the
    drain and the repair choose; None when no live node is left to take the region, or (unless
    `allow_less_diverse`) none that would leave it as diverse as it is."""
    load, room, places = loads(cluster), Room(cluster, watermark), Places(cluster.localities)
    holders = set(cluster.holders.get(move.region, []))
    around = members(cluster, move.region)
    if move.from_node not in around:
        return None  # it moved meanwhile
    beside = Beside(tuple(n for n in around if n != move.from_node), move.from_node)
    try:
        to = destination(load, room, places, move.region, move.store_bytes, {*around, *avoid},
                         beside)  # fmt: skip
    except NoDestination:
        return None
    if to.diversity < places.diversity(around) and not allow_less_diverse:
        return None
    live = [n for n in sorted(holders) if n in load]
    sources = nearest_sources(places, live, to.node, move.from_node)
    return move.model_copy(update={"to_node": to.node, "sources": sources})


def place_region(
    cluster: ClusterDescription, region: int, replicas: int, watermark: float = HIGH_WATERMARK
) -> list[int]:
    """The nodes a new region's `replicas` replicas go to: one at a time, the live node best
    by `rank` (the region most diverse, then the fewest store bytes, replicas, id), so they
    spread as widely as the cluster's places allow."""
    if replicas < 1:
        raise InvalidRequest(f"a region has at least one replica, not {replicas}")
    if region in cluster.holders or region in cluster.peers:
        on = members(cluster, region)
        raise InvalidRequest(f"region {region} exists already (on nodes {on})")
    load, room, places = loads(cluster), Room(cluster, watermark), Places(cluster.localities)
    if len(load) < replicas:
        down = f" ({len(cluster.unreachable)} do not answer)" if cluster.unreachable else ""
        raise InvalidRequest(
            f"{replicas} replicas need {replicas} live nodes; the cluster has {len(load)}{down}"
        )
    chosen: list[int] = []
    for _ in range(replicas):
        to = destination(load, room, places, region, 0, chosen, Beside(tuple(chosen)))
        charge(load, room, to.node, region, 0)
        chosen.append(to.node)
    return sorted(chosen)


def _require_known(cluster: ClusterDescription, node: int) -> None:
    if node not in {n.node_id for n in cluster.nodes}:
        raise InvalidRequest(f"node {node} is not in the cluster")
