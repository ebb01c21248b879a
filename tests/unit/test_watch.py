"""The autopilot's judgement, probe by probe, without Temporal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.models import AutopilotState
from planning.watch import Watch

T0 = datetime(2026, 12, 1, tzinfo=UTC)
ALL_UP = {1: True, 2: True, 3: True, 4: True}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def down_for(since: float, now: float) -> float:
    """Seconds down as the watch counts them: between datetimes (to the microsecond), so a
    float difference of 59.99999999999998 is not taken for less than a minute."""
    return (at(now) - at(since)).total_seconds()


def down(*nodes: int) -> dict[int, bool]:
    return {n: n not in nodes for n in ALL_UP}


def watch() -> Watch:
    return Watch(AutopilotState(dead_after_s=60))


def test_a_node_back_before_dead_after_costs_nothing() -> None:
    w = watch()
    assert w.observe(down(3), set(), at(0)) == []
    assert w.observe(down(3), set(), at(59)) == []
    assert w.observe(ALL_UP, set(), at(61)) == []
    assert [d.what for d in w.state.decisions] == [
        "node 3 does not answer",
        "node 3 answers again after 61 s: nothing to do",
    ]


def test_a_node_down_for_dead_after_is_repaired_once() -> None:
    w = watch()
    w.observe(down(3), set(), at(0))
    assert w.observe(down(3), set(), at(60)) == [3]
    assert w.new[0].what == "node 3 declared dead after 60 s down: repairing it"
    assert w.observe(down(3), set(), at(70)) == []  # its repair runs
    w.repair_ended(3, "4 region(s) back to full replication", at(80))
    assert w.observe(down(3), set(), at(90)) == []  # repaired: never twice
    w.observe(ALL_UP, set(), at(100))
    assert w.new[0].what.endswith("it was repaired meanwhile: its stale replicas delete themselves")


def test_two_nodes_down_pause_the_repairs_until_one_is_back() -> None:
    w = watch()
    w.observe(down(2, 3), set(), at(0))
    assert w.observe(down(2, 3), set(), at(120)) == []
    assert w.state.paused.startswith("nodes [2, 3] do not answer at once: a partition")
    assert w.observe(down(3), set(), at(121)) == [3]  # node 2 is back; 3 was down 121 s
    assert w.state.paused == ""


def test_a_node_being_drained_is_left_to_its_drain() -> None:
    w = watch()
    w.observe(down(3), {3}, at(0))
    assert w.observe(down(3), {3}, at(600)) == []
    assert w.observe(down(3), set(), at(601)) == [3]  # its drain ended: now it is repaired


@st.composite
def probe_runs(draw: st.DrawFn) -> list[tuple[float, dict[int, bool], set[int]]]:
    """Probes a second to a minute apart over 1 to 4 nodes, each up or down at each probe
    (one node, all down, flapping: all reachable), some nodes being drained."""
    nodes = list(range(1, draw(st.integers(1, 4)) + 1))
    now, runs = 0.0, []
    for _ in range(draw(st.integers(1, 30))):
        now += draw(st.floats(1, 60))
        up = {n: draw(st.booleans()) for n in nodes}
        draining = set(draw(st.lists(st.sampled_from(nodes), max_size=len(nodes))))
        runs.append((now, up, draining))
    return runs


@settings(max_examples=300)
@given(probe_runs())
def test_only_a_lone_node_down_for_dead_after_and_not_draining_is_repaired_once_a_spell(
    runs: list[tuple[float, dict[int, bool], set[int]]],
) -> None:
    w = watch()
    repaired: list[int] = []  # in their current spell down
    since: dict[int, float] = {}  # node -> when it was first seen down, this spell
    for now, up, draining in runs:
        for n, answers in up.items():
            if answers:
                since.pop(n, None)
                repaired = [r for r in repaired if r != n]  # back: a later death is a new one
            else:
                since.setdefault(n, now)
        started = w.observe(up, draining, at(now))
        for node in started:
            assert len(since) == 1, (since, started)  # never while more than one is down
            assert down_for(since[node], now) >= w.state.dead_after_s
            assert node not in draining and node not in repaired
        repaired += started
        if len(since) == 1:  # a lone node down long enough, not drained: it is repaired
            ((node, down_at),) = since.items()
            if down_for(down_at, now) >= w.state.dead_after_s and node not in draining:
                assert node in repaired, (node, now, w.state)
        for node in started:  # each repair ends at once, the node still down
            w.repair_ended(node, "done", at(now))
