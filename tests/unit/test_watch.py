"""The autopilot's judgement, probe by probe, without Temporal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflows.models import AutopilotState
from workflows.watch import Watch

T0 = datetime(2026, 12, 1, tzinfo=UTC)
ALL_UP = {1: True, 2: True, 3: True, 4: True}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


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
