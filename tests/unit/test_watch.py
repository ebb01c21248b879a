"""The autopilot's judgement, probe by probe, without Temporal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.models import AutopilotState
from planning.watch import KEEP_DECISIONS, Watch
from tests.unit.reach import reached, reaching

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


@dataclass(frozen=True)
class Probe:
    at: float  # seconds from T0
    up: dict[int, bool]  # node -> whether it answered
    draining: set[int]
    ending: set[int]  # the running repairs of these nodes end after this probe


@st.composite
def probe_runs(draw: st.DrawFn) -> list[Probe]:
    """Probes a second to a minute apart over 1 to 4 nodes, each up or down at first and then
    turning one probe in three (one node, all down, flapping, spells past `dead_after_s`), some
    nodes being drained, and each running repair ending at a probe or going on."""
    nodes = list(range(1, draw(st.integers(1, 4)) + 1))
    up = {n: draw(st.booleans()) for n in nodes}
    now, runs = 0.0, []
    for _ in range(draw(st.integers(1, 30))):
        now += draw(st.floats(1, 60))
        up = {n: answers != (draw(st.integers(0, 2)) == 2) for n, answers in up.items()}
        draining = {n for n in nodes if draw(st.integers(0, 3)) == 3}
        ending = {n for n in nodes if draw(st.booleans())}
        runs.append(Probe(now, up, draining, ending))
    return runs


@reaching(
    "one node",
    "all down",
    "repaired",
    "held back: several down",
    "held back: draining",
    "its repair still runs",
    "back during its repair",
)
@settings(max_examples=300)
@given(probe_runs())
def test_only_a_lone_node_down_for_dead_after_and_not_draining_is_repaired_once_a_spell(
    runs: list[Probe],
) -> None:
    """A repair starts only for the one node down (none while more than one is: a partition
    is not a death, and the watch says it holds back), down for `dead_after_s`, not being
    drained, never while a repair of it runs nor twice a spell down; and such a node always
    is repaired, or has a repair running."""
    if len(runs[0].up) == 1:
        reached("one node")
    w = watch()
    since: dict[int, float] = {}  # node -> when it was first seen down, this spell
    covered: set[int] = set()  # down nodes whose repair started or ran in this spell
    running: set[int] = set()
    for probe in runs:
        for n, answers in probe.up.items():
            if answers:
                since.pop(n, None)
                covered.discard(n)  # back: a later death is a new one
                if n in running:
                    reached("back during its repair")
            else:
                since.setdefault(n, probe.at)
        covered |= running & set(since)
        if len(probe.up) > 1 and not any(probe.up.values()):
            reached("all down")
        started = w.observe(probe.up, probe.draining, at(probe.at))
        dead = {n for n, t in since.items() if down_for(t, probe.at) >= w.state.dead_after_s}
        for node in started:
            assert len(since) == 1, (since, started)  # never while more than one is down
            assert node in dead and node not in probe.draining
            assert node not in running and node not in covered  # never two repairs of a node
            reached("repaired")
        assert bool(w.state.paused) == (len(since) > 1), (since, w.state.paused)
        running |= set(started)
        covered |= set(started)
        if len(since) > 1 and dead - covered - probe.draining:
            reached("held back: several down")
        if len(since) == 1:  # a lone node down long enough, not drained: it is repaired
            ((node, _),) = since.items()
            if node in dead - covered:
                assert node in probe.draining, (node, probe, w.state)
                reached("held back: draining")
            elif node in dead and node in running and not started:
                reached("its repair still runs")
        for node in sorted(running & probe.ending):
            w.repair_ended(node, "done", at(probe.at))
            running.discard(node)
        assert len(w.state.decisions) <= KEEP_DECISIONS
