"""Failure domains in the plans, without a cluster: the diversity score, and properties over
random clusters with random localities (1 to 4 tiers), sizes, loads and watermarks: no plan
lowers a region's diversity where an alternative existed, every plan keeps the watermark, a
plan made from a conformant cluster leaves it conformant, a repair restores the replica count
wherever a node fits."""

from __future__ import annotations

import random
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
from contracts.errors import InvalidRequest
from contracts.locality import BadLocality, parse_locality
from contracts.models import AddPeerInput, MigrationInput
from planning.balance import after, plan_rebalance, under_diversified
from planning.diversity import Places, apart
from planning.load import loads
from planning.placement import (
    Plan,
    Room,
    members,
    place_region,
    plan_addition,
    plan_drain,
    plan_migration,
    plan_repair,
)
from stack.local import round_robin
from tests.unit.reach import reached, reaching

KEYS = ["region", "zone", "rack", "host"]


def peer(i: int) -> Peer:
    return Peer(node_id=i, address=f"127.0.0.1:{i}")


# -- the score -------------------------------------------------------------------------------


def test_replicas_in_other_zones_stand_further_apart_than_in_other_racks() -> None:
    a1, a2, b1 = ("zone=a", "rack=1"), ("zone=a", "rack=2"), ("zone=b", "rack=1")
    assert apart(a1, b1) == 1.0  # the first tier differs
    assert apart(a1, a2) == 0.5  # the second of two
    assert apart(a1, a1) == 0.0
    assert apart((), a1) == apart((), ()) == 1.0  # no locality: apart from every other
    assert apart(("zone=a",), a1) == 0.5  # the shorter one's tiers shared: 1/(1+1)
    places = Places({1: list(a1), 2: list(a2), 3: list(b1), 4: list(a1)})
    assert places.diversity([1, 3, 4]) < places.diversity([1, 2, 3]) < 1.0
    assert places.diversity([1]) == 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zone", "'zone' is not key=value"),
        ("zone=a,,rack=r1", "an empty tier"),
        ("zone=", "has an empty value"),
        ("=a", "has an empty key"),
        ("zone=a,zone=b", "the key 'zone' is given twice"),
    ],
)
def test_a_bad_locality_is_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(BadLocality, match=message) as refused:
        parse_locality(text)
    assert "\n" not in str(refused.value)


def test_a_locality_reads_as_its_tiers() -> None:
    assert parse_locality(" zone=eu-1a , rack=r7") == ["zone=eu-1a", "rack=r7"]
    assert parse_locality("") == []


# -- clusters with localities ----------------------------------------------------------------


@st.composite
def localities(draw: st.DrawFn, nodes: list[int]) -> dict[int, list[str]]:
    """1 to 4 tiers, the same keys on every node, a few values per tier (so nodes share
    places); now and then a node that names none. Mixed tier counts only when `mixed`."""
    tiers = draw(st.integers(1, 4))
    found = {}
    for n in nodes:
        if draw(st.integers(0, 9)) == 0:
            continue  # it names none: apart from every other
        found[n] = [f"{k}={draw(st.sampled_from('abc'))}" for k in KEYS[:tiers]]
    return found


@st.composite
def located(draw: st.DrawFn, down: int = 0) -> ClusterDescription:
    """2 to 8 nodes (`down` of them not answering), each somewhere; 1 to 10 regions of 1 to 3
    replicas, 0 to 1 GB; disks on most live nodes, from empty to full; described as
    `describe_cluster` does (the localities of the nodes down from the directory)."""
    count = draw(st.integers(max(2, down + 1), 8))
    nodes = list(range(1, count + 1))
    gone = set(draw(st.permutations(nodes))[:down])
    placed: dict[int, list[int]] = {}
    sizes: dict[int, int] = {}
    for region in range(1, draw(st.integers(1, 10)) + 1):
        width = draw(st.integers(1, min(3, count)))
        placed[region] = sorted(draw(st.permutations(nodes))[:width])
        sizes[region] = draw(st.sampled_from([0, 10**6, 10**8, 5 * 10**8, 10**9]))
    disks = {}
    for n in nodes:
        if n not in gone and draw(st.integers(0, 3)):
            capacity = draw(st.sampled_from([10**9, 2 * 10**9, 10**10]))
            disks[n] = Disk(capacity=capacity, used=draw(st.integers(0, capacity)))
    holders = {r: [n for n in on if n not in gone] for r, on in placed.items()}
    return ClusterDescription(
        nodes=[peer(i) for i in nodes],
        holders={r: h for r, h in holders.items() if h},
        peers={r: on for r, on in placed.items() if holders[r]},
        unreachable=sorted(gone),
        store_bytes={r: s for r, s in sizes.items() if holders[r]},
        disks=disks,
        localities=draw(localities(nodes)),
    )


def fitting(cluster: ClusterDescription, room: Room, region: int, excluded: set[int]) -> list[int]:
    size = cluster.store_bytes.get(region, 0)
    return [n for n in sorted(loads(cluster)) if n not in excluded and room.fits(n, size)]


def within_watermark(cluster: ClusterDescription, plan: Plan, give_back: bool = False) -> None:
    room = Room(cluster)
    for m in plan.moves:
        assert room.fits(m.to_node, m.store_bytes), m
        room.take(m.to_node, m.store_bytes)
        if give_back:
            room.give(m.from_node, m.store_bytes)


def conformant(cluster: ClusterDescription) -> bool:
    return not under_diversified(cluster)


# -- properties ------------------------------------------------------------------------------


@reaching("moved", "kept", "allowed lower", "conformant kept so")
@settings(max_examples=400)
@given(located(), st.booleans(), st.data())
def test_a_drain_never_lowers_a_region_while_a_place_that_does_not_fits(
    cluster: ClusterDescription, allow: bool, data: st.DataObject
) -> None:
    """Each region of the drained node goes to the most diverse node it fits on (counting
    the moves before it); lower than it was only if allowed, else it is kept, and then every
    node it fits on would have lowered it. The watermark holds; a conformant cluster stays
    so; a move copies from a holder in its destination's zone when one is there."""
    holding = sorted({n for h in cluster.holders.values() for n in h})
    node = data.draw(st.sampled_from(holding), label="node")
    try:
        plan = plan_drain(cluster, node, allow_less_diverse=allow)
    except InvalidRequest:
        return  # on every live node, or fits nowhere: tests/unit/test_planning.py
    places, room = Places(cluster.localities), Room(cluster)
    moved = {m.region: m for m in plan.moves}
    for region in sorted(r for r, h in cluster.holders.items() if node in h):
        around = members(cluster, region)
        rest = [n for n in around if n != node]
        before = places.diversity(around)
        roomy = fitting(cluster, room, region, set(cluster.holders[region]))
        options = places.with_each(rest, roomy)
        best = max(options.values())
        if region in moved:
            m = moved[region]
            assert options[m.to_node] == best  # the most diverse that fits
            assert allow or best >= before
            if best < before:
                assert region in plan.under_diversified
                reached("allowed lower")
            zone = places.zone.get(m.to_node)
            near = [s for s in (*cluster.holders[region],) if places.zone.get(s) == zone]
            if zone is not None and near:
                assert set(m.sources) <= set(near), (m, near)
            room.take(m.to_node, m.store_bytes)
            reached("moved")
        else:
            assert not allow and best < before, (region, plan.kept)
            assert "would fall from" in plan.kept[region]
            reached("kept")
    within_watermark(cluster, plan)
    if conformant(cluster) and not plan.under_diversified:
        assert conformant(after(cluster, plan.moves))
        reached("conformant kept so")


@reaching("repaired", "repaired less diverse", "in the dead node's zone", "conformant kept so")
@settings(max_examples=400)
@given(located(down=1))
def test_a_repair_restores_the_replica_count_wherever_a_node_fits(
    cluster: ClusterDescription,
) -> None:
    """Every region of the dead node with a live replica and a live non-peer it fits on gets
    a new replica: on the most diverse such node, in the dead node's zone among those as
    diverse; said under-diversified exactly when that lowers the region. The watermark holds;
    a conformant cluster stays so when nothing was left under-diversified."""
    dead = cluster.unreachable[0]
    plan = plan_repair(cluster, dead)
    places, room = Places(cluster.localities), Room(cluster)
    moved = {m.region: m for m in plan.moves}
    for region, peers in sorted(cluster.peers.items()):
        if dead not in peers:
            continue
        around = members(cluster, region)
        rest = [n for n in around if n != dead]
        options = places.with_each(rest, fitting(cluster, room, region, set(around)))
        if not options:
            assert region in plan.kept
            continue
        m = moved[region]  # it fits somewhere: repaired
        best = max(options.values())
        assert options[m.to_node] == best
        if any(places.same_zone(n, dead) for n, d in options.items() if d == best):
            assert places.same_zone(m.to_node, dead)
            reached("in the dead node's zone")
        if best < places.diversity(around):
            assert region in plan.under_diversified
            reached("repaired less diverse")
        else:
            assert region not in plan.under_diversified
        room.take(m.to_node, m.store_bytes)
        reached("repaired")
    within_watermark(cluster, plan)
    if conformant(cluster) and not plan.under_diversified:
        assert conformant(after(cluster, plan.moves))
        reached("conformant kept so")


@reaching("raised", "conformant kept so", "kept")
@settings(max_examples=400)
@given(located())
def test_a_rebalance_raises_regions_first_and_never_lowers_one(
    cluster: ClusterDescription,
) -> None:
    """No move lowers its region's diversity; a region moves once; the watermark holds; a
    conformant cluster stays so; an under-diversified region that one move raising it fits is
    raised."""
    plan = plan_rebalance(cluster)
    places = Places(cluster.localities)
    assert len({m.region for m in plan.moves}) == len(plan.moves)
    for m in plan.moves:
        around = members(cluster, m.region)
        rest = [n for n in around if n != m.from_node]
        now, then = places.diversity(around), places.with_each(rest, [m.to_node])[m.to_node]
        assert then >= now, m
        if then > now:
            reached("raised")
    within_watermark(cluster, plan, give_back=True)
    if plan.kept:
        reached("kept")
    if conformant(cluster):
        assert conformant(after(cluster, plan.moves))
        reached("conformant kept so")
    moved = {m.region for m in plan.moves}
    for region in under_diversified(cluster):
        assert region in moved or region in plan.under_diversified


@reaching("refused", "accepted")
@settings(max_examples=300)
@given(located(), st.data())
def test_a_migration_to_a_less_diverse_node_is_refused_naming_a_better_one(
    cluster: ClusterDescription, data: st.DataObject
) -> None:
    """A migration or an addition is refused exactly when another live non-peer it fits on
    would leave the region more diverse, naming it; allowed, it is accepted."""
    region = data.draw(st.sampled_from(sorted(cluster.holders)), label="region")
    description = region_description(cluster, region)
    peers = members(cluster, region)
    others = [n for n in loads(cluster) if n not in peers]
    if not others:
        return
    to = data.draw(st.sampled_from(others), label="to")
    leaving = data.draw(st.sampled_from(peers), label="from")
    rest = [n for n in peers if n != leaving]
    places, room = Places(cluster.localities), Room(cluster)
    size = cluster.store_bytes.get(region, 0)
    fit = [n for n in others if n != to and room.fits(n, size)]
    scores = places.with_each(rest, [to, *fit])
    better = [n for n in fit if scores[n] > scores[to]]
    request = MigrationInput(region=region, from_node=leaving, to_node=to)
    rng = random.Random(0)
    if leaving in cluster.unreachable:
        return  # refused for that: tests/unit/test_planning.py
    if better:
        with pytest.raises(InvalidRequest, match="would leave it more diverse") as refused:
            plan_migration(description, request, rng)
        assert any(f"{n}" in str(refused.value) for n in better)
        reached("refused")
    else:
        plan_migration(description, request, rng)
        reached("accepted")
    allowed = request.model_copy(update={"allow_less_diverse": True})
    plan_migration(description, allowed, rng)
    addition = AddPeerInput(region=region, new_peer=to)
    added = places.with_each(peers, [to, *fit])
    if any(added[n] > added[to] for n in fit):
        with pytest.raises(InvalidRequest, match="would leave it more diverse"):
            plan_addition(description, addition, rng)
    else:
        plan_addition(description, addition, rng)


def region_description(cluster: ClusterDescription, region: int) -> RegionDescription:
    """`region` as `describe_region` describes it, from the cluster's description."""
    peers = [peer(n) for n in members(cluster, region)]
    return RegionDescription(
        region=region,
        replicas=[
            ReplicaState(
                node_id=n,
                address=peer(n).address,
                peers=peers,
                active=True,
                installed=True,
                leaving=False,
            )
            for n in cluster.holders[region]
        ],
        known_nodes=cluster.nodes,
        unreachable=cluster.unreachable,
        localities=cluster.localities,
        disks=cluster.disks,
        store_bytes=cluster.store_bytes.get(region, 0),
    )


@settings(max_examples=300)
@given(located(), st.integers(1, 4))
def test_a_new_region_spreads_as_widely_as_the_cluster_allows(
    cluster: ClusterDescription, replicas: int
) -> None:
    """No choice of `replicas` live nodes (with room) is more diverse than the one made."""
    live = sorted(loads(cluster))
    room, places = Room(cluster), Places(cluster.localities)
    roomy = [n for n in live if room.fits(n, 0)]
    if len(roomy) < replicas:
        with pytest.raises(InvalidRequest, match=r"live nodes|fits on no live node"):
            place_region(cluster, 99, replicas)
        return
    chosen = place_region(cluster, 99, replicas)
    assert len(set(chosen)) == replicas
    best = max(places.diversity(c) for c in combinations(roomy, replicas))
    assert places.diversity(chosen) == best


def test_three_zones_of_two_drained_and_repaired_keep_three_zones() -> None:
    """Six nodes in zones a, b, c: a drained node's regions go to its zone's other node, and
    copy from it; a dead node's regions too; region placement spans the three zones."""
    zones = {n: [f"zone={'abc'[(n - 1) % 3]}"] for n in range(1, 7)}
    cluster = ClusterDescription(
        nodes=[peer(n) for n in range(1, 7)],
        holders={7: [1, 2, 3], 8: [4, 5, 6]},
        peers={7: [1, 2, 3], 8: [4, 5, 6]},
        store_bytes={7: 100, 8: 100},
        localities=zones,
    )
    assert sorted(zones[n][0] for n in place_region(cluster, 9, 3)) == [
        "zone=a",
        "zone=b",
        "zone=c",
    ]
    drained = plan_drain(cluster, 1)
    assert [(m.region, m.to_node, m.sources) for m in drained.moves] == [(7, 4, [1])]
    dead = cluster.model_copy(update={"unreachable": [1], "holders": {7: [2, 3], 8: [4, 5, 6]}})
    repaired = plan_repair(dead, 1)
    assert [(m.region, m.to_node) for m in repaired.moves] == [(7, 4)]
    assert not repaired.under_diversified


def test_up_deals_the_nodes_into_zones_and_racks_in_turn() -> None:
    """`airctl up --nodes 7 --zones 3 --racks 2`: every zone gets a node before any gets two."""
    dealt = round_robin(7, 3, 2)
    assert [dealt[n] for n in (1, 2, 3, 4, 7)] == [
        ["zone=a", "rack=r1"],
        ["zone=b", "rack=r1"],
        ["zone=c", "rack=r1"],
        ["zone=a", "rack=r2"],
        ["zone=a", "rack=r1"],
    ]
    assert round_robin(4, 0) == {}
    assert round_robin(2, 2) == {1: ["zone=a"], 2: ["zone=b"]}
