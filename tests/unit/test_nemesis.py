"""The nemesis's pure parts: a seed gives one schedule; the checker names what it sees."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bench.nemesis.checker import Region, Replica, anomalies
from bench.nemesis.schedule import FaultKind, plan

NODES = [1, 2, 3, 4, 5]


def test_the_same_seed_plans_the_same_schedule_and_another_seed_another() -> None:
    assert plan(7, 600, NODES, 20) == plan(7, 600, NODES, 20)
    assert plan(7, 600, NODES, 20) != plan(8, 600, NODES, 20)


@given(seed=st.integers(0, 1 << 32), seconds=st.floats(30, 1200))
def test_faults_come_one_at_a_time_and_all_are_healed_before_the_end(
    seed: int, seconds: float
) -> None:
    schedule = plan(seed, seconds, NODES, 20)
    ends = 0.0
    for fault in schedule.faults:
        assert fault.at_s >= ends and fault.ends_s <= seconds, fault
        assert set(fault.nodes) | set(fault.others) <= set(NODES)
        if fault.kind is FaultKind.PARTITION:
            assert fault.nodes and fault.others and not set(fault.nodes) & set(fault.others)
        ends = fault.ends_s
    assert all(0 <= op.at_s < seconds for op in schedule.operations)


def test_some_isolations_outlast_dead_after_so_repairs_happen() -> None:
    long = [
        f
        for seed in range(40)
        for f in plan(seed, 600, NODES, 20).faults
        if f.kind is FaultKind.ISOLATE and f.duration_s > 20
    ]
    assert long, "no isolation long enough for the autopilot to act on"


def replica(node: int, peers: tuple[int, ...] = (1, 2, 3), **kwargs: object) -> Replica:
    fields: dict[str, object] = {"active": True, "installed": True, "leaving": False}
    fields |= {"count": 10, "hash": "h"} | kwargs
    return Replica(node, peers, **fields)  # type: ignore[arg-type]


def region(*replicas: Replica, **kwargs: object) -> Region:
    return Region(7, {r.node: r for r in replicas}, **kwargs)  # type: ignore[arg-type]


def kinds(found: list[dict[str, object]]) -> list[str]:
    return sorted(str(a["kind"]) for a in found)


def test_a_healthy_region_has_no_anomaly() -> None:
    healthy = region(replica(1), replica(2), replica(3))
    assert anomalies([healthy], 3, [], []) == []


def test_each_anomaly_is_named() -> None:
    lost = region(
        replica(1),
        replica(2),
        replica(3),
        missing={"one": {2: [("s", 1, 0.5)]}},
        missing_counts={"one": {2: 1}},
    )
    assert kinds(anomalies([lost], 3, [], [])) == ["lost"]
    stale = region(replica(1), replica(2), replica(3), replica(4, (1, 2, 4)))
    assert kinds(anomalies([stale], 3, [], [])) == ["stale-replica"]
    unequal = region(replica(1), replica(2), replica(3, hash="other"))
    assert kinds(anomalies([unequal], 3, [], [])) == ["unequal"]
    short = region(replica(1, (1, 2)), replica(2, (1, 2)))
    assert kinds(anomalies([short], 3, [], [])) == ["under-replicated"]
    half = region(replica(1), replica(2), replica(3, leaving=True, active=False))
    assert kinds(anomalies([half], 3, [], [])) == ["half-made"]
    disagreeing = region(replica(1), replica(2), replica(3, (1, 3, 4)))
    assert kinds(anomalies([disagreeing], 3, [], [])) == ["half-made"]
    assert kinds(anomalies([], 3, ["air-region-7"], [4])) == ["open-operation", "unreachable"]
