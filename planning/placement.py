"""What a membership change will do, decided from the region as its holders describe it.

Pure functions, no Temporal: a workflow plans once from the description in its history, so a
retried workflow task plans exactly what the first try did; tests plan without a cluster.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from contracts.activity_models import ClusterDescription, Peer, RegionDescription
from contracts.errors import InvalidRequest, NodeUnreachable
from contracts.models import (
    HIGH_WATERMARK,
    AddPeerInput,
    MigrationInput,
    Move,
    ReconstructInput,
    RemovePeerInput,
)
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

    def __init__(self, cluster: ClusterDescription, watermark: float = HIGH_WATERMARK) -> None:
        if not 0 < watermark <= 1:
            raise InvalidRequest(f"the high watermark is a fraction from 0 to 1, not {watermark}")
        self.watermark = watermark
        self.disks = {n: d for n, d in cluster.disks.items() if d.capacity > 0}
        self._taken: dict[int, int] = {}

    def used_after(self, node: int, size: int) -> float:
        """The fraction of `node`'s disk used once it takes `size` more bytes."""
        disk = self.disks[node]
        return (disk.used + self._taken.get(node, 0) + size) / disk.capacity

    def fits(self, node: int, size: int) -> bool:
        return node not in self.disks or self.used_after(node, size) <= self.watermark

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


def destination(
    load: dict[int, Load], room: Room, region: int, size: int, excluded: set[int]
) -> int:
    """The live node a new replica of `region` (`size` store bytes) goes to, charged with it
    so the next choice counts it: of the live nodes not `excluded` (its holders and peers, and
    any the caller rules out), those it fits on under the high watermark, the best by `rank`.
    Every planner places a replica through here. `NoDestination` when no node is left."""
    candidates = [n for n in sorted(load) if n not in excluded]
    if not candidates:
        raise NoDestination(f"region {region} is already on every live node")
    fitting = [n for n in candidates if room.fits(n, size)]
    if not fitting:
        raise NoDestination(room.nowhere(region, size, candidates))
    chosen = min(fitting, key=lambda n: rank(load[n]))
    load[chosen].take(region, size)
    room.take(chosen, size)
    return chosen


def rank(node: Load) -> tuple[int, int, int]:
    """How good a destination a node is, smallest best: the fewest store bytes, then the
    fewest replicas, then the lowest id. One key for every planner, so that a criterion added
    to it (a failure domain's diversity, first) counts in each."""
    return (node.bytes, node.count, node.node)


@dataclass(frozen=True)
class Addition:
    region: int
    new: Peer
    peers: list[Peer]  # the region's peers before
    coordinator: Peer  # sends the snapshot
    down_timeout_s: float
    # Peers that do not answer and are leaving (a repair's dead node): no channel from them
    # is asked for and their progress is not in the target. Whatever they acknowledged and
    # never replicated cannot be accounted for; the removal reports how much the others hold.
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
    description: RegionDescription, wanted: int | None, rng: random.Random, exclude: int = 0
) -> Peer:
    """A live, active holder: the one asked for, or one at random (as IoTDB chooses)."""
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
    chosen = rng.choice(sorted(live, key=lambda r: r.node_id))
    return Peer(node_id=chosen.node_id, address=chosen.address)


def plan_addition(
    description: RegionDescription, req: AddPeerInput, rng: random.Random, exclude: int = 0
) -> Addition:
    """Validate an addition; pick its coordinator (never `exclude` unless asked for)."""
    peers = region_peers(description)
    new = require_node(description, req.new_peer, "new peer")
    if req.new_peer in {p.node_id for p in peers} or description.replica(req.new_peer):
        raise InvalidRequest(f"node {req.new_peer} is already a peer of region {req.region}")
    if req.new_peer in description.unreachable:
        raise NodeUnreachable(f"the new peer, node {req.new_peer}, cannot be reached", req.new_peer)
    coordinator = choose_coordinator(description, req.coordinator, rng, exclude)
    return Addition(req.region, new, peers, coordinator, req.down_timeout_s)


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
    return choose_coordinator(description, req.coordinator, rng, exclude)


def plan_migration(
    description: RegionDescription, req: MigrationInput, rng: random.Random
) -> Migration:
    """The addition of `to_node`, then the removal of `from_node`, from one description."""
    validate_migration(description, req)
    coordinator = migration_coordinator(description, req, rng)
    addition = plan_addition(
        description,
        AddPeerInput(
            region=req.region,
            new_peer=req.to_node,
            coordinator=coordinator.node_id,
            down_timeout_s=req.down_timeout_s,
        ),
        rng,
    )
    if req.from_node in description.unreachable:  # a repair: the leaving node is dead
        addition = replace(addition, absent=(req.from_node,))
    after = sorted([*addition.peers, addition.new], key=lambda p: p.node_id)
    leaving_down = req.leaving_down_timeout_s or req.down_timeout_s
    removal = _removal(req.region, after, req.from_node, leaving_down)
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
    return Reconstruction(removal, addition, elsewhere)


def plan_drain(
    cluster: ClusterDescription, node: int, watermark: float = HIGH_WATERMARK
) -> list[Move]:
    """Each region of `node` to the live node that does not hold it with the fewest store
    bytes (then the fewest replicas, then the lowest id) and that stays under the high
    `watermark` with it, counting the moves planned so far.

    Each move lists the nodes it may copy from: the region's other live holders (the drained
    node itself only when it holds the last replica).
    """
    _require_known(cluster, node)
    if node in cluster.unreachable:  # else it holds nothing we can see: an empty "success"
        raise InvalidRequest(
            f"node {node} does not answer, so its regions cannot be listed: drain it once it "
            "answers, or repair it if it is gone"
        )
    load, room = loads(cluster), Room(cluster, watermark)
    moves = []
    for region, holders in sorted(cluster.holders.items()):
        if node not in holders:
            continue
        size = cluster.store_bytes.get(region, 0)
        target = destination(load, room, region, size, excluded=set(holders))
        sources = [n for n in sorted(holders) if n != node and n in load] or [node]
        moves.append(
            Move(region=region, from_node=node, to_node=target, store_bytes=size, sources=sources)
        )
    return moves


def plan_repair(
    cluster: ClusterDescription, node: int, watermark: float = HIGH_WATERMARK
) -> tuple[list[Move], dict[int, str]]:
    """For each region `node` (which does not answer) is a peer of: a new replica on the live
    node with the fewest store bytes that is not a peer, copied from a live holder; then
    `node` removed. Also the regions that cannot be repaired, with why.
    """
    _require_known(cluster, node)
    if node not in cluster.unreachable:
        raise InvalidRequest(
            f"node {node} answers: a repair is for a node that is gone; to move its replicas "
            f"off, drain it (airctl drain --node {node})"
        )
    load, room = loads(cluster), Room(cluster, watermark)
    moves, unrepairable = [], {}
    for region, peers in sorted(cluster.peers.items()):
        if node not in peers:
            continue
        holders = [n for n in cluster.holders.get(region, []) if n in load]
        if not holders:
            unrepairable[region] = f"no live replica of region {region} to copy from"
            continue
        size = cluster.store_bytes.get(region, 0)
        try:
            target = destination(load, room, region, size, excluded={*peers, *holders})
        except NoDestination as e:
            unrepairable[region] = str(e)
            continue
        moves.append(
            Move(region=region, from_node=node, to_node=target, store_bytes=size,
                 sources=sorted(holders))
        )  # fmt: skip
    return moves, unrepairable


def replan_move(
    cluster: ClusterDescription, move: Move, avoid: set[int], watermark: float = HIGH_WATERMARK
) -> Move | None:
    """The same move to another destination, none of `avoid` (they failed it): the live
    non-holder with the fewest store bytes that it fits on, as the drain and the repair
    choose; None when no live node is left to take the region."""
    load, room = loads(cluster), Room(cluster, watermark)
    holders = set(cluster.holders.get(move.region, []))
    peers = set(cluster.peers.get(move.region, []))
    if move.from_node not in holders | peers:
        return None  # it moved meanwhile
    try:
        target = destination(load, room, move.region, move.store_bytes, holders | peers | avoid)
    except NoDestination:
        return None
    sources = sorted(n for n in holders if n != move.from_node and n in load)
    return move.model_copy(update={"to_node": target, "sources": sources or [move.from_node]})


def _require_known(cluster: ClusterDescription, node: int) -> None:
    if node not in {n.node_id for n in cluster.nodes}:
        raise InvalidRequest(f"node {node} is not in the cluster")
