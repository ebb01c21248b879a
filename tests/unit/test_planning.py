"""The plans, without a cluster: what a migration and a drain decide from a description."""

from __future__ import annotations

import random

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
from contracts.models import HIGH_WATERMARK, MigrationInput, Move, ReconstructInput
from planning.placement import plan_drain, plan_migration, plan_reconstruct, plan_repair


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


@st.composite
def clusters(draw: st.DrawFn) -> ClusterDescription:
    """3 to 7 nodes, some down (never node 1), regions of 1 to 3 replicas, one always on 1."""
    count = draw(st.integers(min_value=3, max_value=7))
    nodes = list(range(1, count + 1))
    down = draw(st.sets(st.sampled_from(nodes[2:]), max_size=count - 3))
    holders: dict[int, list[int]] = {}
    for region in range(draw(st.integers(min_value=0, max_value=30))):
        width = draw(st.integers(min_value=1, max_value=3))
        on = draw(st.lists(st.sampled_from(nodes), min_size=width, max_size=width, unique=True))
        holders[region] = sorted(on)
    sizes = {r: draw(st.integers(min_value=0, max_value=10**9)) for r in holders}
    return ClusterDescription(
        nodes=[peer(i) for i in nodes],
        holders=holders,
        unreachable=sorted(down),
        store_bytes=sizes,
        disks={n: draw(disks()) for n in nodes if n not in down and draw(st.booleans())},
    )


@st.composite
def disks(draw: st.DrawFn) -> Disk:
    """A disk of 1 to 40 GB, from empty to full (a node reporting none has room for all)."""
    capacity = draw(st.integers(min_value=10**9, max_value=4 * 10**10))
    return Disk(capacity=capacity, used=draw(st.integers(min_value=0, max_value=capacity)))


def within_watermark(cluster: ClusterDescription, moves: list[Move]) -> None:
    """No node the moves go to ends past the high watermark."""
    taken: dict[int, int] = {}
    for m in moves:
        taken[m.to_node] = taken.get(m.to_node, 0) + m.store_bytes
    for node, size in taken.items():
        if (disk := cluster.disks.get(node)) is not None:
            assert disk.used + size <= HIGH_WATERMARK * disk.capacity, (node, disk, size)


@given(clusters())
def test_a_drain_moves_every_region_off_the_node_and_never_doubles_a_replica(
    cluster: ClusterDescription,
) -> None:
    try:
        moves = plan_drain(cluster, 1)
    except InvalidRequest as e:
        assert "no node to move to" in str(e) or "fits on no live node" in str(e)
        return
    within_watermark(cluster, moves)
    on_1 = sorted(r for r, h in cluster.holders.items() if 1 in h)
    assert [m.region for m in moves] == on_1
    for m in moves:
        holders = cluster.holders[m.region]
        assert m.to_node not in holders  # never two replicas of a region on one node
        assert m.to_node not in cluster.unreachable and m.to_node != 1
        assert m.sources and set(m.sources) <= {*holders} - set(cluster.unreachable)
        assert m.store_bytes == cluster.store_bytes[m.region]


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
    moves = plan_drain(cluster, 1)
    # node 4 holds 5 bytes, node 3 100: region 1 goes to 4 (then 15), region 2 too (then 25)
    assert [(m.region, m.to_node) for m in moves] == [(1, 4), (2, 4)]
    even = cluster.model_copy(update={"store_bytes": dict.fromkeys(range(1, 5), 0)})
    # alike regions: by count, 3 and 4 hold one each; ties go to the lower id, then count
    assert [(m.region, m.to_node) for m in plan_drain(even, 1)] == [(1, 3), (2, 4)]


def test_draining_an_unknown_node_is_refused() -> None:
    cluster = ClusterDescription(nodes=[peer(1), peer(2)])
    with pytest.raises(InvalidRequest, match="node 9 is not in the cluster"):
        plan_drain(cluster, 9)


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
    moves, unrepairable = plan_repair(dead_node_cluster(), 3)
    assert unrepairable == {}
    assert [(m.region, m.from_node, m.to_node, m.sources) for m in moves] == [
        (7, 3, 4, [1, 2]),  # nodes 4 and 5 hold the least of those not holding 7: the lower id
        (8, 3, 5, [1, 4]),  # node 4 holds 8 already; node 5 (100 bytes) is lighter than 2 (200)
    ]


def test_a_repair_says_which_regions_it_cannot_repair() -> None:
    cluster = dead_node_cluster().model_copy(update={"holders": {7: [], 8: [1, 4], 9: [1, 2, 5]}})
    moves, unrepairable = plan_repair(cluster, 3)
    assert [m.region for m in moves] == [8]
    assert unrepairable == {7: "no live replica of region 7 to copy from"}


def test_a_repair_of_a_node_that_answers_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"node 2 answers.*drain it"):
        plan_repair(dead_node_cluster(), 2)


@given(clusters(), st.data())
def test_a_repair_never_doubles_a_replica_nor_fills_a_disk(
    cluster: ClusterDescription, data: st.DataObject
) -> None:
    """Any node taken as dead: each of its regions is repaired onto a live non-peer that
    stays under the watermark, or said unrepairable with why."""
    dead = data.draw(st.sampled_from([n.node_id for n in cluster.nodes]))
    cluster = cluster.model_copy(
        update={
            "unreachable": sorted({*cluster.unreachable, dead}),
            "peers": {r: list(h) for r, h in cluster.holders.items()},
            "holders": {r: [n for n in h if n != dead] for r, h in cluster.holders.items()},
        }
    )
    moves, unrepairable = plan_repair(cluster, dead)
    listed = sorted(r for r, peers in cluster.peers.items() if dead in peers)
    assert sorted([m.region for m in moves] + list(unrepairable)) == listed
    for m in moves:
        assert m.to_node not in cluster.peers[m.region]
        assert m.to_node not in cluster.unreachable
        assert m.sources and set(m.sources) <= set(cluster.holders[m.region])
    within_watermark(cluster, moves)


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
    assert [m.to_node for m in plan_drain(roomy, 1)] == [4]  # 90% exactly: it fits


@st.composite
def region_descriptions(draw: st.DrawFn) -> RegionDescription:
    """1 to 6 nodes, any of them down (all, too), the region listed on any of them; a listed
    live node holds a replica (most do; none may), active or not."""
    nodes = list(range(1, draw(st.integers(min_value=1, max_value=6)) + 1))
    down = {n for n in nodes if draw(st.integers(0, 3)) == 0}  # each down one time in four
    listed = draw(st.lists(st.sampled_from(nodes), min_size=1, unique=True))
    holding = [n for n in listed if n not in down and draw(st.integers(0, 3)) > 0]
    replicas = [
        ReplicaState(
            node_id=n,
            address=peer(n).address,
            peers=[peer(i) for i in sorted(listed)],
            active=draw(st.booleans()),
            installed=True,
            leaving=False,
        )
        for n in holding
    ]
    return RegionDescription(
        region=7, replicas=replicas, known_nodes=[peer(n) for n in nodes], unreachable=sorted(down)
    )


@settings(max_examples=300)
@given(region_descriptions(), st.data())
def test_a_reconstruct_rebuilds_from_a_live_active_peer_or_says_why_not(
    description: RegionDescription, data: st.DataObject
) -> None:
    node = data.draw(st.integers(min_value=1, max_value=7))  # 7: never in the cluster
    peers = {p.node_id for r in description.replicas for p in r.peers}
    sources = {
        r.node_id
        for r in description.replicas
        if r.active and r.node_id != node and r.node_id not in description.unreachable
    }
    request = ReconstructInput(region=7, node=node)
    if not description.replicas or description.node(node) is None or node not in peers:
        with pytest.raises(InvalidRequest):
            plan_reconstruct(description, request, random.Random(0))
        return
    if peers == {node} or not sources:
        with pytest.raises(InvalidRequest, match=r"last replica|nothing to rebuild it from"):
            plan_reconstruct(description, request, random.Random(0))
        return
    plan = plan_reconstruct(description, request, random.Random(0))
    assert plan.removal.leaving.node_id == node == plan.addition.new.node_id
    assert {p.node_id for p in plan.removal.remaining} == peers - {node}
    assert plan.addition.coordinator.node_id in sources  # copied from a live, active replica
    elsewhere = {p.node_id for p in plan.elsewhere}
    assert not elsewhere & (peers | set(description.unreachable))
