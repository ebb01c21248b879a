"""The plans, without a cluster: what each placement planner decides from a description, and
properties over any cluster (one node, all down, a region that fits nowhere) for each."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.activity_models import (
    ClusterDescription,
    Disk,
    Peer,
    RegionDescription,
    ReplicaState,
)
from contracts.errors import InvalidRequest, NodeUnreachable
from contracts.models import (
    HIGH_WATERMARK,
    AddPeerInput,
    MigrationInput,
    Move,
    ReconstructInput,
    RemovePeerInput,
)
from planning.placement import (
    Plan,
    plan_addition,
    plan_drain,
    plan_migration,
    plan_reconstruct,
    plan_removal,
    plan_repair,
    replan_move,
)
from tests.unit.reach import reached, reaching

NODES = st.integers(min_value=1, max_value=7)  # 7: never in the cluster of a region_descriptions()
St = st.SearchStrategy[int]


def peer(i: int) -> Peer:
    return Peer(node_id=i, address=f"127.0.0.1:{i}")


def region_on(holders: list[int], nodes: int = 4, region: int = 7) -> RegionDescription:
    return RegionDescription(
        region=region,
        replicas=[
            ReplicaState(
                node_id=i,
                address=peer(i).address,
                peers=[peer(h) for h in holders],
                active=True,
                installed=True,
                leaving=False,
            )
            for i in holders
        ],
        known_nodes=[peer(i) for i in range(1, nodes + 1)],
    )


def test_a_migration_adds_then_removes_from_one_description() -> None:
    plan = plan_migration(
        region_on([1, 2, 3]), MigrationInput(region=7, from_node=1, to_node=4), random.Random(0)
    )
    assert plan.addition.new == peer(4)
    assert [p.node_id for p in plan.addition.peers] == [1, 2, 3]
    assert plan.addition.coordinator.node_id in (2, 3)  # never the leaving node
    assert plan.removal.leaving == peer(1)
    assert [p.node_id for p in plan.removal.remaining] == [2, 3, 4]


BAD = {
    (1, 1): "same node",
    (4, 3): "not a peer",
    (1, 2): "already a peer",
    (1, 9): "not in the cluster",
}


@pytest.mark.parametrize(("move", "message"), BAD.items(), ids=[str(m) for m in BAD])
def test_a_bad_migration_is_refused(move: tuple[int, int], message: str) -> None:
    request = MigrationInput(region=7, from_node=move[0], to_node=move[1])
    with pytest.raises(InvalidRequest, match=message):
        plan_migration(region_on([1, 2, 3]), request, random.Random(0))


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_a_retry_plans_what_the_first_try_planned(seed: int) -> None:
    """The coordinator is drawn from the workflow's seeded random: the same seed, same plan."""
    request = MigrationInput(region=7, from_node=1, to_node=4)
    first = plan_migration(region_on([1, 2, 3]), request, random.Random(seed))
    again = plan_migration(region_on([1, 2, 3]), request, random.Random(seed))
    assert first == again


def test_a_migration_off_the_only_active_holder_copies_from_it_beside_an_inactive_one() -> None:
    """Found by the migration property: an inactive replica (one still being added) counted as
    another holder, so the leaving node was excluded as coordinator and the migration refused
    for want of a source it had."""
    description = region_on([1, 2])
    description.replicas[1].active = False
    plan = plan_migration(
        description, MigrationInput(region=7, from_node=1, to_node=3), random.Random(0)
    )
    assert plan.addition.coordinator == peer(1)


@st.composite
def clusters(draw: st.DrawFn) -> ClusterDescription:
    """1 to 7 nodes, any of them down (all of them, too), 1 to 12 regions of 1 to 3 replicas
    on any nodes; described as `describe_cluster` does: a region shows only if a live node
    holds it, with its live holders and the peers they list (dead ones too). Live nodes report
    their disks (an older node none: room for anything), in some clusters all full."""
    count = draw(st.integers(min_value=1, max_value=7))
    nodes = list(range(1, count + 1))
    down = set(draw(st.permutations(nodes))[: draw(st.integers(min_value=0, max_value=count))])
    placements = [list(on) for width in (1, 2, 3) for on in combinations(nodes, width)]
    regions = st.tuples(st.sampled_from(placements), st.integers(min_value=0, max_value=10**9))
    placed, sizes = {}, {}
    for region, (on, size) in enumerate(draw(st.lists(regions, min_size=1, max_size=12))):
        if any(n not in down for n in on):
            placed[region], sizes[region] = on, size
    # live nodes report their disks: all of them, full or not, or most, or none (older nodes)
    reporting = draw(st.sampled_from(["full", "all", "most", "none"]))
    disks = full_disks if reporting == "full" else any_disks
    reports = [n for n in nodes if n not in down and reporting != "none"]
    if reporting == "most":
        reports = [n for n in reports if draw(st.integers(0, 3))]
    return ClusterDescription(
        nodes=[peer(i) for i in nodes],
        holders={r: [n for n in on if n not in down] for r, on in placed.items()},
        unreachable=sorted(down),
        store_bytes=sizes,
        peers=placed,
        disks={n: draw(disks()) for n in reports},
    )


@st.composite
def any_disks(draw: st.DrawFn) -> Disk:
    """A disk of 1 to 40 GB, from empty to full."""
    capacity = draw(st.integers(min_value=10**9, max_value=4 * 10**10))
    return Disk(capacity=capacity, used=draw(st.integers(min_value=0, max_value=capacity)))


@st.composite
def full_disks(draw: st.DrawFn) -> Disk:
    """A disk of 1 to 40 GB at or past the high watermark: only an empty region fits."""
    capacity = draw(st.integers(min_value=10**9, max_value=4 * 10**10))
    watermark = int(HIGH_WATERMARK * capacity)
    return Disk(capacity=capacity, used=draw(st.integers(min_value=watermark, max_value=capacity)))


def live(cluster: ClusterDescription) -> list[int]:
    return [n.node_id for n in cluster.nodes if n.node_id not in cluster.unreachable]


def without_disks(cluster: ClusterDescription) -> ClusterDescription:
    """The cluster as nodes that report no disk describe it: room for anything."""
    return cluster.model_copy(update={"disks": {}})


def fits(cluster: ClusterDescription, node: int, size: int) -> bool:
    """Whether `node` stays under the high watermark with `size` more bytes (as `Room` counts:
    a node reporting no disk has room for all)."""
    disk = cluster.disks.get(node)
    return disk is None or (disk.used + size) / disk.capacity <= HIGH_WATERMARK


def within_watermark(cluster: ClusterDescription, moves: list[Move]) -> None:
    """No node the moves go to ends past the high watermark."""
    taken: dict[int, int] = {}
    for m in moves:
        taken[m.to_node] = taken.get(m.to_node, 0) + m.store_bytes
    for node, size in taken.items():
        assert fits(cluster, node, size), (node, cluster.disks.get(node), size)


def one_of(data: st.DataObject, label: str, *likely: set[int], anything: St = NODES) -> int:
    """A node of one of the `likely` sets (those with any) most times, else `anything`."""
    pools = [st.sampled_from(sorted(nodes)) for nodes in likely if nodes]
    node: int = data.draw(st.one_of(*pools, anything), label=label)
    return node


def any_node(cluster: ClusterDescription) -> St:
    """Any node of the cluster, or the next id: a node not in it."""
    return st.integers(min_value=1, max_value=len(cluster.nodes) + 1)


def reached_shape(nodes: int, down: int) -> None:
    """The shapes every property over clusters or regions must reach."""
    if nodes == 1:
        reached("one node")
    if nodes > 1 and down == nodes:
        reached("all down")


def named_region(refusal: InvalidRequest) -> int:
    """The region a refusal names."""
    found = re.match(r"region (\d+) ", str(refusal))
    assert found, str(refusal)
    return int(found[1])


@reaching(
    "one node",
    "all down",
    "not in the cluster",
    "does not answer",
    "on every live node",
    "fits nowhere",
    "planned",
)
@settings(max_examples=300)
@given(clusters(), st.data())
def test_a_drain_moves_every_region_off_the_node_or_says_why_not(
    cluster: ClusterDescription, data: st.DataObject
) -> None:
    """Any node (or one not in the cluster) drained: each of its regions to a live node that
    does not hold it and stays under the watermark, copied from live holders; or refused with
    why: the node is unknown or does not answer, a region is on every live node, or a region
    fits on no live node (only ever for disks: without them it fits)."""
    reached_shape(len(cluster.nodes), len(cluster.unreachable))
    holding = {n for h in cluster.holders.values() for n in h}
    node = one_of(data, "node", holding, anything=any_node(cluster))
    if node > len(cluster.nodes):
        with pytest.raises(InvalidRequest, match=f"node {node} is not in the cluster"):
            plan_drain(cluster, node)
        return reached("not in the cluster")
    if node in cluster.unreachable:
        with pytest.raises(InvalidRequest, match=f"node {node} does not answer"):
            plan_drain(cluster, node)
        return reached("does not answer")
    on_node = sorted(r for r, h in cluster.holders.items() if node in h)
    everywhere = [r for r in on_node if set(live(cluster)) <= set(cluster.holders[r])]
    if everywhere:  # without disks, that alone stops a drain, at the first such region
        with pytest.raises(
            InvalidRequest, match=f"region {everywhere[0]} is already on every live"
        ):
            plan_drain(without_disks(cluster), node)
    else:
        plan_drain(without_disks(cluster), node)
    try:
        moves = plan_drain(cluster, node).moves
    except InvalidRequest as e:
        region = named_region(e)
        assert region in on_node
        if region in everywhere:
            assert str(e) == f"region {region} is already on every live node"
            return reached("on every live node")
        assert "fits on no live node under the 90% high watermark" in str(e)
        candidates = [n for n in live(cluster) if n not in cluster.holders[region]]
        assert candidates and all(n in cluster.disks for n in candidates)
        return reached("fits nowhere")
    assert not everywhere
    within_watermark(cluster, moves)
    assert [m.region for m in moves] == on_node
    for m in moves:
        holders = cluster.holders[m.region]
        assert m.from_node == node
        assert m.to_node not in holders  # never two replicas of a region on one node
        assert m.to_node in live(cluster)  # never to a node that does not answer
        assert m.sources == ([n for n in holders if n != node] or [node])
        assert m.store_bytes == cluster.store_bytes[m.region]
    if moves:
        reached("planned")


def test_a_drain_of_a_node_that_does_not_answer_is_refused_not_empty() -> None:
    cluster = ClusterDescription(
        nodes=[peer(i) for i in (1, 2, 3, 4)], holders={7: [2, 3]}, unreachable=[1]
    )
    with pytest.raises(InvalidRequest, match="node 1 does not answer"):
        plan_drain(cluster, 1)


def test_a_drain_fills_the_emptiest_node_by_bytes_and_count_breaks_ties() -> None:
    cluster = ClusterDescription(
        nodes=[peer(i) for i in (1, 2, 3, 4)],
        holders={1: [1, 2], 2: [1, 2], 3: [3], 4: [4]},
        store_bytes={1: 10, 2: 10, 3: 100, 4: 5},
    )
    moves = plan_drain(cluster, 1).moves
    # node 4 holds 5 bytes, node 3 100: region 1 goes to 4 (then 15), region 2 too (then 25)
    assert [(m.region, m.to_node) for m in moves] == [(1, 4), (2, 4)]
    even = cluster.model_copy(update={"store_bytes": dict.fromkeys(range(1, 5), 0)})
    # alike regions: by count, 3 and 4 hold one each; ties go to the lower id, then count
    assert [(m.region, m.to_node) for m in plan_drain(even, 1).moves] == [(1, 3), (2, 4)]


def test_draining_an_unknown_node_is_refused() -> None:
    cluster = ClusterDescription(nodes=[peer(1), peer(2)])
    with pytest.raises(InvalidRequest, match="node 9 is not in the cluster"):
        plan_drain(cluster, 9)


def moves_and_kept(plan: Plan) -> tuple[list[Move], dict[int, str]]:
    return plan.moves, plan.kept


def dead_node_cluster() -> ClusterDescription:
    """Node 3 does not answer: its regions show in the survivors' peer lists only."""
    return ClusterDescription(
        nodes=[peer(i) for i in (1, 2, 3, 4, 5)],
        holders={7: [1, 2], 8: [1, 4], 9: [1, 2, 5]},
        peers={7: [1, 2, 3], 8: [1, 3, 4], 9: [1, 2, 5]},
        unreachable=[3],
        store_bytes={7: 100, 8: 100, 9: 100},
    )


def test_a_repair_gives_each_region_of_the_dead_node_a_new_replica() -> None:
    moves, unrepairable = moves_and_kept(plan_repair(dead_node_cluster(), 3))
    assert unrepairable == {}
    assert [(m.region, m.from_node, m.to_node, m.sources) for m in moves] == [
        (7, 3, 4, [1, 2]),  # nodes 4 and 5 hold the least of those not holding 7: the lower id
        (8, 3, 5, [1, 4]),  # node 4 holds 8 already; node 5 (100 bytes) is lighter than 2 (200)
    ]


def test_a_repair_says_which_regions_it_cannot_repair() -> None:
    cluster = dead_node_cluster().model_copy(update={"holders": {7: [], 8: [1, 4], 9: [1, 2, 5]}})
    moves, unrepairable = moves_and_kept(plan_repair(cluster, 3))
    assert [m.region for m in moves] == [8]
    assert unrepairable == {7: "no live replica of region 7 to copy from"}


def test_a_repair_of_a_node_that_answers_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"node 2 answers.*drain it"):
        moves_and_kept(plan_repair(dead_node_cluster(), 2))


@reaching(
    "one node",
    "all down",
    "not in the cluster",
    "answers",
    "repaired",
    "on every live node",
    "fits nowhere",
)
@settings(max_examples=300)
@given(clusters(), st.data())
def test_a_repair_never_doubles_a_replica_nor_fills_a_disk(
    cluster: ClusterDescription, data: st.DataObject
) -> None:
    """Any node (or one not in the cluster) repaired: refused unless it is known and does not
    answer; then each region it is a peer of gets a new replica on a live non-peer that stays
    under the watermark, copied from its live holders, or is said unrepairable with why: every
    live node holds it, or it fits on no live node (only ever for disks)."""
    reached_shape(len(cluster.nodes), len(cluster.unreachable))
    dead = {n for peers in cluster.peers.values() for n in peers} & set(cluster.unreachable)
    node = one_of(data, "node", dead, dead, anything=any_node(cluster))
    if node > len(cluster.nodes):
        with pytest.raises(InvalidRequest, match=f"node {node} is not in the cluster"):
            moves_and_kept(plan_repair(cluster, node))
        return reached("not in the cluster")
    if node not in cluster.unreachable:
        with pytest.raises(InvalidRequest, match=f"node {node} answers.*drain it"):
            moves_and_kept(plan_repair(cluster, node))
        return reached("answers")
    moves, unrepairable = moves_and_kept(plan_repair(cluster, node))
    listed = sorted(r for r, peers in cluster.peers.items() if node in peers)
    assert sorted([m.region for m in moves] + list(unrepairable)) == listed
    for m in moves:
        assert m.from_node == node
        assert m.to_node not in cluster.peers[m.region]  # never two replicas on one node
        assert m.to_node in live(cluster)
        assert m.sources and m.sources == sorted(cluster.holders[m.region])  # all live
        assert m.store_bytes == cluster.store_bytes[m.region]
    within_watermark(cluster, moves)
    if moves:
        reached("repaired")
    for region, why in unrepairable.items():
        candidates = [n for n in live(cluster) if n not in cluster.peers[region]]
        if not candidates:
            assert why == f"region {region} is already on every live node"
            reached("on every live node")
        else:
            assert why.startswith(f"region {region} ") and "fits on no live node" in why, why
            assert all(n in cluster.disks for n in candidates)
            reached("fits nowhere")
    _, roomy = moves_and_kept(plan_repair(without_disks(cluster), node))
    assert all(why.endswith("is already on every live node") for why in roomy.values())


def test_a_region_that_fits_nowhere_is_named_with_how_full_each_node_would_be() -> None:
    cluster = ClusterDescription(
        nodes=[peer(i) for i in (1, 2, 3, 4)],
        holders={7: [1, 2, 3]},
        store_bytes={7: 2 * 10**9},
        disks={4: Disk(capacity=10 * 10**9, used=75 * 10**8)},
    )
    with pytest.raises(InvalidRequest) as refused:
        plan_drain(cluster, 1)
    assert str(refused.value) == (
        "region 7 (2000.0 MB) fits on no live node under the 90% high watermark: "
        "node 4 would be 95% full"
    )
    roomy = cluster.model_copy(update={"disks": {4: Disk(capacity=10 * 10**9, used=7 * 10**9)}})
    assert [m.to_node for m in plan_drain(roomy, 1).moves] == [4]  # 90% exactly: it fits


# What a node is to a region: a live holder (active or not), a peer that does not answer, a
# live peer with no replica yet, a live non-peer, or a non-peer that does not answer. Repeated
# to weigh them: most nodes hold the region, and most clusters have a node to move it to.
ROLES = ["active"] * 3 + ["inactive", "down", "listed"] + ["spare"] * 2 + ["down spare"]


@st.composite
def region_descriptions(draw: st.DrawFn) -> RegionDescription:
    """1 to 6 nodes, each in one of the ROLES (one active holder, one spare node and perhaps
    a dead peer, half the time), or all down at once one time in ten; as
    `describe_region` has it: a live holder describes its replica and its peers, a node that
    does not answer shows only among the unreachable."""
    nodes = list(range(1, draw(st.integers(min_value=1, max_value=6)) + 1))
    roles = {n: draw(st.sampled_from(ROLES)) for n in nodes}
    if len(nodes) > 1 and draw(st.booleans()):  # half the time, one to copy from, one to take
        order = draw(st.permutations(nodes))
        roles[order[0]], roles[order[1]] = "active", "spare"
        if len(order) > 2 and draw(st.booleans()):  # and, half of those times, a dead peer
            roles[order[2]] = "down"
    if draw(st.integers(0, 9)) == 9:
        roles = {n: "down" if role in ("active", "inactive", "listed") else "down spare"
                 for n, role in roles.items()}  # fmt: skip
    listed = [peer(n) for n, role in roles.items() if "spare" not in role]
    replicas = [
        ReplicaState(
            node_id=n,
            address=peer(n).address,
            peers=listed,
            active=role == "active",
            installed=True,
            leaving=False,
        )
        for n, role in roles.items()
        if role in ("active", "inactive")
    ]
    down = [n for n, role in roles.items() if role.startswith("down")]
    return RegionDescription(
        region=7, replicas=replicas, known_nodes=[peer(n) for n in nodes], unreachable=down
    )


@dataclass(frozen=True)
class Seen:
    """A region's description, as a property reads it to say what a plan may do (and the
    shape it has, for `reaching`)."""

    known: set[int]
    down: set[int]
    peers: set[int]  # the holders' peer lists, together
    holders: set[int]
    sources: set[int]  # live, active holders: what a new replica may be copied from

    @classmethod
    def of(cls, description: RegionDescription) -> Seen:
        reached_shape(len(description.known_nodes), len(description.unreachable))
        down = set(description.unreachable)
        return cls(
            known={n.node_id for n in description.known_nodes},
            down=down,
            peers={p.node_id for r in description.replicas for p in r.peers},
            holders=set(description.holders()),
            sources={r.node_id for r in description.replicas if r.active and r.node_id not in down},
        )


def refused(error: InvalidRequest, seen: Seen, nodes: set[int | None]) -> None:
    """A refusal for a node that does not answer names that node, one of the request's."""
    if isinstance(error, NodeUnreachable):
        assert error.node in seen.down & nodes, (error.node, seen)
        reached("refused: does not answer")
    else:
        reached("refused")


@reaching("one node", "all down", "refused", "last replica", "nothing to rebuild from", "rebuilt")
@settings(max_examples=300)
@given(region_descriptions(), st.data())
def test_a_reconstruct_rebuilds_from_a_live_active_peer_or_says_why_not(
    description: RegionDescription, data: st.DataObject
) -> None:
    """Refused unless the node is a known peer of an existing region with another peer, and
    a live, active replica but its own to copy from; then it leaves and comes back from that
    replica, with somewhere else to go that is neither a peer nor down."""
    seen = Seen.of(description)
    node = one_of(data, "node", seen.peers, seen.holders)
    sources = seen.sources - {node}
    request = ReconstructInput(region=7, node=node)
    if not description.replicas or node not in seen.known or node not in seen.peers:
        with pytest.raises(InvalidRequest):
            plan_reconstruct(description, request, random.Random(0))
        return reached("refused")
    if seen.peers == {node} or not sources:
        with pytest.raises(InvalidRequest, match=r"last replica|nothing to rebuild it from"):
            plan_reconstruct(description, request, random.Random(0))
        return reached("last replica" if seen.peers == {node} else "nothing to rebuild from")
    plan = plan_reconstruct(description, request, random.Random(0))
    assert plan.removal.leaving.node_id == node == plan.addition.new.node_id
    assert {p.node_id for p in plan.removal.remaining} == seen.peers - {node}
    assert plan.addition.coordinator.node_id in sources  # copied from a live, active replica
    elsewhere = {p.node_id for p in plan.elsewhere}
    assert not elsewhere & (seen.peers | seen.down)
    reached("rebuilt")


@reaching("one node", "all down", "refused", "refused: does not answer", "added", "asked for")
@settings(max_examples=300)
@given(region_descriptions(), st.data())
def test_an_addition_joins_a_live_non_peer_copied_from_a_live_active_holder(
    description: RegionDescription, data: st.DataObject
) -> None:
    """Refused (InvalidRequest, naming a node that does not answer if that is why) unless the
    region exists, the new peer is a known, live non-peer and there is a live, active holder
    to copy from (the one asked for, if any; never `exclude`, which callers pass only when
    they ask for none)."""
    seen = Seen.of(description)
    new = one_of(data, "new", *[seen.known - seen.peers - seen.down] * 2, seen.down - seen.peers)
    asked = data.draw(st.booleans(), label="a coordinator asked for")
    coordinator = one_of(data, "coordinator", seen.sources, seen.down) if asked else None
    exclude = 0 if coordinator is not None else one_of(data, "exclude", seen.sources)
    request = AddPeerInput(region=7, new_peer=new, coordinator=coordinator)
    can_copy = coordinator in seen.sources if coordinator else bool(seen.sources - {exclude})
    valid = (
        description.replicas
        and new in seen.known - seen.peers - seen.holders - seen.down
        and can_copy
    )
    if not valid:
        with pytest.raises(InvalidRequest) as e:
            plan_addition(description, request, random.Random(0), exclude)
        return refused(e.value, seen, {new, coordinator})
    addition = plan_addition(description, request, random.Random(0), exclude)
    assert addition.new == peer(new) and addition.region == 7 and addition.absent == ()
    assert [p.node_id for p in addition.peers] == sorted(seen.peers)
    assert addition.coordinator.node_id in seen.sources - {exclude}
    assert addition.coordinator == peer(addition.coordinator.node_id)
    if coordinator is not None:
        assert addition.coordinator.node_id == coordinator
        reached("asked for")
    reached("added")


@reaching("one node", "all down", "refused", "removed", "removed while down")
@settings(max_examples=200)
@given(region_descriptions(), st.data())
def test_a_removal_leaves_the_other_peers_and_never_the_last_replica(
    description: RegionDescription, data: st.DataObject
) -> None:
    """Any peer leaves (one that does not answer, too), the others remain; refused for a
    region that does not exist, a node that is no peer, or the last one."""
    seen = Seen.of(description)
    node = one_of(data, "node", seen.peers, seen.peers & seen.down)
    request = RemovePeerInput(region=7, peer=node)
    if not description.replicas or node not in seen.peers or seen.peers == {node}:
        with pytest.raises(InvalidRequest, match=r"does not exist|not a peer|last replica"):
            plan_removal(description, request)
        return reached("refused")
    removal = plan_removal(description, request)
    assert removal.leaving == peer(node) and not removal.rollback
    assert [p.node_id for p in removal.remaining] == sorted(seen.peers - {node})
    reached("removed while down" if node in seen.down else "removed")


@reaching(
    "one node",
    "all down",
    "refused",
    "refused: does not answer",
    "migrated",
    "migrated off a gone node",
    "copied from the leaving node",
)
@settings(max_examples=300)
@given(region_descriptions(), st.booleans(), st.integers(), st.data())
def test_a_migration_adds_a_live_non_peer_from_another_live_holder_then_removes_the_node(
    description: RegionDescription, gone: bool, seed: int, data: st.DataObject
) -> None:
    """Refused (InvalidRequest, naming a node that does not answer if that is why) unless
    `from_node` is a peer (live, or known gone), `to_node` a known, live non-peer and there is a
    live, active holder to copy from; the coordinator is the one asked for, or a live, active
    holder other than the leaving node unless that is the only one. The same seed plans the
    same (a retried workflow task)."""
    seen = Seen.of(description)
    from_node = one_of(data, "from", seen.peers, *[seen.peers & seen.down] * 2)
    to_node = one_of(data, "to", *[seen.known - seen.peers - seen.down] * 2, seen.down - seen.peers)
    asked = data.draw(st.booleans(), label="a coordinator asked for")
    coordinator = one_of(data, "coordinator", seen.sources) if asked else None
    request = MigrationInput(
        region=7, from_node=from_node, to_node=to_node, coordinator=coordinator,
        from_node_gone=gone,
    )  # fmt: skip
    can_copy = coordinator in seen.sources if coordinator else bool(seen.sources)
    valid = (
        description.replicas
        and from_node in seen.peers & seen.known
        and (from_node not in seen.down or gone)
        and to_node in seen.known - seen.peers - seen.holders - seen.down
        and can_copy
    )
    if not valid:
        with pytest.raises(InvalidRequest) as e:
            plan_migration(description, request, random.Random(seed))
        return refused(e.value, seen, {from_node, to_node, coordinator})
    plan = plan_migration(description, request, random.Random(seed))
    assert plan == plan_migration(description, request, random.Random(seed))
    chosen = plan.addition.coordinator.node_id
    assert chosen in seen.sources
    if coordinator is not None:
        assert chosen == coordinator
    elif chosen == from_node:
        assert seen.sources == {from_node}  # the leaving node copies only if no other can
        reached("copied from the leaving node")
    assert plan.addition.new == peer(to_node)
    assert [p.node_id for p in plan.addition.peers] == sorted(seen.peers)
    assert plan.removal.leaving == peer(from_node)
    assert [p.node_id for p in plan.removal.remaining] == sorted(
        seen.peers - {from_node} | {to_node}
    )
    if from_node in seen.down:
        # no channel from the gone node reaches the new replica: its writes come by catch-up
        assert plan.addition.absent == (from_node,)
        assert plan.removal.unlinked == (to_node,)
        return reached("migrated off a gone node")
    assert plan.addition.absent == () and plan.removal.unlinked == ()
    reached("migrated")


@reaching(
    "one node",
    "all down",
    "replanned",
    "moved meanwhile",
    "every live node taken",
    "fits nowhere",
    "avoided",
)
@settings(max_examples=300)
@given(clusters(), st.data())
def test_a_replanned_move_goes_to_the_least_loaded_live_non_holder_it_fits_on_and_avoids(
    cluster: ClusterDescription, data: st.DataObject
) -> None:
    """Any move (of a region that may since have moved or gone), any nodes to avoid: the same
    move to the live node, none of `avoid` nor a peer or holder of the region, that it fits on
    under the watermark, with the fewest store bytes (then replicas, then the lowest id),
    copied from the region's other live holders; None when it moved meanwhile or nowhere is
    left. Never an error."""
    reached_shape(len(cluster.nodes), len(cluster.unreachable))
    ids = [n.node_id for n in cluster.nodes]
    regions = set(cluster.peers)
    region = one_of(data, "region", *[regions] * 4, anything=st.just(99))  # 99: gone
    size = cluster.store_bytes.get(region, 0)
    holders, peers = set(cluster.holders.get(region, [])), set(cluster.peers.get(region, []))
    move = Move(
        region=region,
        from_node=one_of(data, "from", *[peers] * 3, anything=any_node(cluster)),
        to_node=data.draw(st.sampled_from(ids), label="to"),
        store_bytes=data.draw(st.sampled_from([size, 0, 10**9]), label="store_bytes"),
    )
    avoid = {n for n in ids if data.draw(st.integers(0, 2), label=f"avoid {n}") == 0}
    free = [n for n in live(cluster) if n not in holders | peers]
    candidates = [n for n in free if n not in avoid and fits(cluster, n, move.store_bytes)]
    replanned = replan_move(cluster, move, avoid)
    if move.from_node not in holders | peers:
        assert replanned is None
        return reached("moved meanwhile")
    if not candidates:
        assert replanned is None
        if not free:
            reached("every live node taken")
        elif any(n not in avoid for n in free):
            reached("fits nowhere")
        return
    assert replanned is not None
    assert replanned.model_copy(update={"to_node": 0, "sources": []}) == move.model_copy(
        update={"to_node": 0, "sources": []}
    )
    assert replanned.to_node in candidates
    held = {n: [r for r, h in cluster.holders.items() if n in h] for n in candidates}
    load = {n: (sum(cluster.store_bytes[r] for r in held[n]), len(held[n]), n) for n in held}
    assert load[replanned.to_node] == min(load.values())
    others = sorted(holders - {move.from_node})
    assert replanned.sources == (others or [move.from_node])
    assert set(replanned.sources) <= set(live(cluster)) | {move.from_node}
    reached("replanned")
    if set(free) & avoid:
        reached("avoided")


BAD_WATERMARKS = [0.0, -0.5, 1.01, float("nan"), float("inf")]


@pytest.mark.parametrize("watermark", BAD_WATERMARKS)
def test_a_watermark_that_is_no_fraction_is_refused_by_every_planner(watermark: float) -> None:
    cluster = dead_node_cluster()
    move = Move(region=7, from_node=3, to_node=4)
    for plan in (
        lambda: plan_drain(cluster, 1, watermark).moves,
        lambda: moves_and_kept(plan_repair(cluster, 3, watermark)),
        lambda: replan_move(cluster, move, set(), watermark),
    ):
        with pytest.raises(InvalidRequest, match="the high watermark is a fraction"):
            plan()
