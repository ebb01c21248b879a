"""The rebalance planner, without a cluster: properties that hold for any cluster."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.activity_models import ClusterDescription, Disk, Peer
from contracts.errors import InvalidRequest
from contracts.models import HIGH_WATERMARK, Move
from planning.balance import MAX_ROUNDS, TOLERANCE, after, plan_rebalance, plan_rounds, spread
from tests.unit.reach import reached, reaching


def cluster_of(
    holders: dict[int, list[int]], sizes: dict[int, int], nodes: int
) -> ClusterDescription:
    return ClusterDescription(
        nodes=[Peer(node_id=i, address=f"127.0.0.1:{i}") for i in range(1, nodes + 1)],
        holders=holders,
        store_bytes=sizes,
    )


@st.composite
def clusters(draw: st.DrawFn) -> ClusterDescription:
    """1-7 nodes, all live, up to 40 regions of 1-3 replicas each, sizes from empty to 10 MB."""
    nodes = draw(st.integers(1, 7))
    count = draw(st.integers(0, 40))
    holders, sizes = {}, {}
    for region in range(1, count + 1):
        factor = draw(st.integers(1, min(3, nodes)))
        holders[region] = sorted(draw(st.permutations(range(1, nodes + 1)))[:factor])
        sizes[region] = draw(st.integers(0, 10_000_000))
    return cluster_of(holders, sizes, nodes)


@st.composite
def round_robin(draw: st.DrawFn) -> ClusterDescription:
    """A balanced cluster: 1-7 nodes, regions of one size (empty too) dealt out in turn, each
    on 1-3 nodes: every node within one replica, and one region's bytes, of the others."""
    nodes = draw(st.integers(1, 7))
    width = draw(st.integers(1, min(3, nodes)))
    regions = range(draw(st.integers(0, 40)))
    holders = {r: sorted((r * width + i) % nodes + 1 for i in range(width)) for r in regions}
    return cluster_of(holders, dict.fromkeys(regions, draw(st.integers(0, 10_000_000))), nodes)


def with_down(cluster: ClusterDescription, down: set[int]) -> ClusterDescription:
    """The cluster as `describe_cluster` sees it with `down` not answering: their replicas
    unseen, a region none of the others holds unknown."""
    holders = {r: [n for n in h if n not in down] for r, h in cluster.holders.items()}
    holders = {r: h for r, h in holders.items() if h}
    sizes = {r: cluster.store_bytes[r] for r in holders}
    return cluster.model_copy(
        update={"holders": holders, "store_bytes": sizes, "unreachable": sorted(down)}
    )


def balanced(cluster: ClusterDescription) -> bool:
    """Every node within the tolerance of the mean bytes and one replica of the others."""
    now = spread(cluster)
    mean = sum(now.bytes.values()) / len(now.bytes)
    tolerance = max(TOLERANCE * mean, max(cluster.store_bytes.values(), default=0))
    return now.count_range <= 1 and all(abs(b - mean) <= tolerance for b in now.bytes.values())


def alike(nodes: int, empty: int, regions: int, size: int = 1000) -> ClusterDescription:
    """`regions` regions of one size, each on `nodes` full nodes, with `empty` nodes added."""
    holders = {r: list(range(1, nodes + 1)) for r in range(1, regions + 1)}
    return cluster_of(holders, dict.fromkeys(holders, size), nodes + empty)


def replay(cluster: ClusterDescription, moves: list[Move]) -> dict[int, set[int]]:
    """Each region's holders after the moves, asserting each move was legal when made."""
    holders = {r: set(h) for r, h in cluster.holders.items()}
    sizes = cluster.store_bytes
    by_node = {n.node_id: 0 for n in cluster.nodes}
    for region, on in holders.items():
        for n in on:
            by_node[n] += sizes[region]
    for move in moves:
        assert move.from_node in holders[move.region]
        assert move.to_node not in holders[move.region]  # never two replicas on one node
        size = sizes[move.region]
        assert by_node[move.from_node] - size >= by_node[move.to_node] + size  # no oscillation
        assert move.sources and move.to_node not in move.sources
        holders[move.region] = (holders[move.region] - {move.from_node}) | {move.to_node}
        by_node[move.from_node] -= size
        by_node[move.to_node] += size
    return holders


def squared_deviation(values: dict[int, int]) -> float:
    mean = sum(values.values()) / len(values)
    return sum((v - mean) ** 2 for v in values.values())


@reaching("one node", "planned")
@settings(max_examples=300)
@given(clusters())
def test_every_move_is_legal_and_the_spread_only_narrows(cluster: ClusterDescription) -> None:
    if len(cluster.nodes) == 1:
        reached("one node")
    moves = plan_rebalance(cluster).moves
    if moves:
        reached("planned")
    replay(cluster, moves)
    assert len({m.region for m in moves}) == len(moves)  # a region moves at most once
    before, after = spread(cluster), spread(cluster, moves)
    assert squared_deviation(after.bytes) <= squared_deviation(before.bytes)
    assert sum(after.counts.values()) == sum(before.counts.values())


@settings(max_examples=200)
@given(clusters(), st.data())
def test_no_round_takes_a_disk_past_the_watermark(
    cluster: ClusterDescription, data: st.DataObject
) -> None:
    """Disks sized around what each node holds: every round, each node that reports one ends
    under the watermark, or no worse than it began (a move only ever leaves such a node)."""
    held = spread(cluster).bytes
    disks = {}
    for n, used in held.items():
        if data.draw(st.booleans()):
            capacity = data.draw(st.integers(max(used, 1), max(used, 1) * 3))
            disks[n] = Disk(capacity=capacity, used=used)
    cluster = cluster.model_copy(update={"disks": disks})
    for moves in [p.moves for p in plan_rounds(cluster)]:
        later = after(cluster, moves)
        for n, disk in disks.items():
            now = later.disks[n].used
            assert now <= HIGH_WATERMARK * disk.capacity or now <= disk.used, (n, disk, now)
        cluster = later


@reaching("planned", "unknown destination")
@settings(max_examples=100)
@given(clusters(), st.data())
def test_replicas_go_only_to_the_nodes_asked_for(
    cluster: ClusterDescription, data: st.DataObject
) -> None:
    ids = [n.node_id for n in cluster.nodes]
    unknown = len(ids) + 1
    wanted = data.draw(st.lists(st.sampled_from([*ids, unknown]), min_size=1, unique=True))
    if unknown in wanted:
        with pytest.raises(InvalidRequest, match=rf"destination node\(s\) \[{unknown}\]"):
            plan_rebalance(cluster, wanted)
        return reached("unknown destination")
    moves = plan_rebalance(cluster, wanted).moves
    assert {m.to_node for m in moves} <= set(wanted)
    if moves:
        reached("planned")


@reaching("one node", "all down", "some down", "none down")
@settings(max_examples=100)
@given(clusters(), st.data())
def test_a_rebalance_never_plans_while_a_node_does_not_answer(
    cluster: ClusterDescription, data: st.DataObject
) -> None:
    """Any nodes down (all of them, too): refused, naming them, with or without destinations,
    rather than move to or from a node that does not answer, or fill the others while its
    regions are a repair's to restore; none down: it plans."""
    ids = [n.node_id for n in cluster.nodes]
    down = set(data.draw(st.permutations(ids))[: data.draw(st.integers(0, len(ids)))])
    described = with_down(cluster, down)
    if len(ids) == 1:
        reached("one node")
    if not down:
        replay(described, plan_rebalance(described).moves)
        return reached("none down")
    reached("all down" if down == set(ids) else "some down")
    refusal = re.escape(f"node(s) {sorted(down)} do not answer")
    for destinations in (None, ids, sorted(down)):
        with pytest.raises(InvalidRequest, match=refusal):
            plan_rebalance(described, destinations)
    with pytest.raises(InvalidRequest, match=refusal):
        [p.moves for p in plan_rounds(described)]


@reaching("one node", "balanced", "unbalanced")
@settings(max_examples=200)
@given(st.tuples(clusters(), st.just(False)) | st.tuples(round_robin(), st.just(True)))
def test_a_cluster_within_the_tolerance_plans_nothing(
    drawn: tuple[ClusterDescription, bool],
) -> None:
    """A cluster whose nodes are each within the tolerance of the mean bytes and within one
    replica of each other plans no move (and regions dealt out in turn make such a cluster)."""
    cluster, dealt = drawn
    if len(cluster.nodes) == 1:
        reached("one node")
    if not balanced(cluster):
        assert not dealt
        return reached("unbalanced")
    assert plan_rebalance(cluster).moves == []
    if len(cluster.nodes) > 1 and cluster.holders:
        reached("balanced")


@settings(max_examples=50)
@given(st.integers(1, 3), st.integers(1, 60))
def test_alike_regions_end_within_one_replica_and_the_tolerance(empty: int, regions: int) -> None:
    cluster = alike(3, empty, regions)
    rounds = [p.moves for p in plan_rounds(cluster)]
    assert len(rounds) < MAX_ROUNDS  # the last round left nothing to plan
    final = spread(cluster, [m for moves in rounds for m in moves])
    assert final.count_range <= 1
    mean = sum(final.bytes.values()) / len(final.bytes)
    assert all(abs(b - mean) <= max(TOLERANCE * mean, 1000) for b in final.bytes.values())


def test_a_balanced_cluster_plans_nothing() -> None:
    assert plan_rebalance(alike(3, 0, 10)).moves == []
    cluster = alike(3, 2, 10)
    rounds = [p.moves for p in plan_rounds(cluster)]
    assert [len(moves) for moves in rounds] == [10, 2]  # 12 of the 30 replicas move
    done = cluster
    for moves in rounds:
        replay(done, moves)
        done = after(done, moves)
    assert plan_rebalance(done).moves == []


def test_large_regions_move_first_and_fill_the_empty_node_by_bytes() -> None:
    sizes = {1: 4_000, 2: 1_000, 3: 1_000, 4: 1_000, 5: 1_000}
    cluster = cluster_of({r: [1, 2] for r in sizes}, sizes, 3)
    moves = plan_rebalance(cluster).moves
    assert moves[0].region == 1 and moves[0].to_node == 3


def test_a_node_that_does_not_answer_refuses_the_rebalance() -> None:
    cluster = alike(3, 2, 10).model_copy(update={"unreachable": [2]})
    with pytest.raises(InvalidRequest, match=r"node\(s\) \[2\] do not answer"):
        plan_rebalance(cluster)


def test_an_unknown_destination_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"destination node\(s\) \[9\]"):
        plan_rebalance(alike(3, 2, 10), [4, 9])


@pytest.mark.parametrize("watermark", [0.0, -0.5, 1.01, float("nan"), float("inf")])
def test_a_watermark_that_is_no_fraction_is_refused(watermark: float) -> None:
    with pytest.raises(InvalidRequest, match="the high watermark is a fraction"):
        plan_rebalance(alike(3, 2, 10), watermark=watermark)
