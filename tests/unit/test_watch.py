"""The autopilot's judgement, probe by probe, without Temporal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.activity_models import NodeView, Reach
from contracts.models import AutopilotState
from planning.watch import KEEP_DECISIONS, Watch
from runtime.views import classify
from tests.unit.reach import reached, reaching

T0 = datetime(2026, 12, 1, tzinfo=UTC)
NODES = (1, 2, 3, 4)
UP = NodeView(reach=Reach.UP)
ALL_UP = dict.fromkeys(NODES, UP)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def down_for(since: float, now: float) -> float:
    """Seconds down as the watch counts them: between datetimes (to the microsecond), so a
    float difference of 59.99999999999998 is not taken for less than a minute."""
    return (at(now) - at(since)).total_seconds()


def views(reach: dict[int, Reach]) -> dict[int, NodeView]:
    """Each node as the two-step probe sees it, the nodes up being the live nodes asked about
    the others (an unreachable one is reached by the first of them)."""
    live = [n for n, r in sorted(reach.items()) if r is Reach.UP]
    seen = {
        Reach.UP: UP,
        Reach.UNREACHABLE: NodeView(reach=Reach.UNREACHABLE, reached_by=live[:1], asked=live),
        Reach.DOWN: NodeView(reach=Reach.DOWN, asked=live),
        Reach.UNCONFIRMED: NodeView(reach=Reach.UNCONFIRMED),
    }
    return {n: seen[r] for n, r in reach.items()}


def seen_as(reach: Reach, *nodes: int) -> dict[int, NodeView]:
    """`nodes` seen so, the others of NODES up."""
    return views({n: reach if n in nodes else Reach.UP for n in NODES})


def down(*nodes: int) -> dict[int, NodeView]:
    return seen_as(Reach.DOWN, *nodes)


def unreachable(*nodes: int) -> dict[int, NodeView]:
    return seen_as(Reach.UNREACHABLE, *nodes)


def unconfirmed(*nodes: int) -> dict[int, NodeView]:
    return seen_as(Reach.UNCONFIRMED, *nodes)


def watch() -> Watch:
    return Watch(AutopilotState(dead_after_s=60))


def test_a_node_back_before_dead_after_costs_nothing() -> None:
    w = watch()
    assert w.observe(down(3), set(), at(0)) == []
    assert w.observe(down(3), set(), at(59)) == []
    assert w.observe(ALL_UP, set(), at(61)) == []
    assert [d.what for d in w.state.decisions] == [
        "node 3 does not answer, nor does any node asked reach it (nodes 1, 2, 4)",
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


def test_a_node_a_peer_reaches_is_never_declared_dead_however_long() -> None:
    w = watch()
    for t in range(0, 6000, 10):  # a hundred times dead_after
        assert w.observe(unreachable(3), set(), at(t)) == []
    assert [d.what for d in w.state.decisions] == [
        "node 3 does not answer the worker, but node 1 reaches it: not repaired"
    ]
    assert w.state.unreachable[3].since == at(0) and w.state.unreachable[3].reached_by == [1]
    assert w.state.down_since == {} and w.state.repairing == [] and not w.state.paused
    w.observe(ALL_UP, set(), at(6000))
    assert w.new[0].what == "node 3 answers the worker again" and w.state.unreachable == {}


def test_a_node_no_view_reaches_is_declared_dead_after_dead_after() -> None:
    w = watch()
    assert w.observe(down(3), set(), at(0)) == []
    assert w.observe(down(3), set(), at(59)) == []
    assert w.observe(down(3), set(), at(60)) == [3]
    assert w.state.repairing == [3]


def test_a_node_moving_between_states_counts_only_its_time_down() -> None:
    w = watch()
    w.observe(unreachable(3), set(), at(0))
    assert w.observe(down(3), set(), at(100)) == []  # down from now: not since 0
    assert w.state.unreachable == {} and w.state.down_since == {3: at(100)}
    assert w.observe(unreachable(3), set(), at(150)) == []  # reached again: the count restarts
    assert w.new[0].what == "node 3 is reached by node 1 again after 50 s: nothing to do"
    assert w.new[1].what == "node 3 does not answer the worker, but node 1 reaches it: not repaired"
    assert w.observe(down(3), set(), at(200)) == []
    # no live node could be asked: not confirmed, never repaired; the count of its time down
    # goes on, and it is dead once a live node confirms it
    assert w.observe(unconfirmed(3), set(), at(300)) == []
    assert w.state.unconfirmed == [3] and w.state.down_since == {3: at(200)}
    assert w.observe(down(3), set(), at(301)) == [3]
    assert w.state.unconfirmed == []


def test_unconfirmed_starts_no_count() -> None:
    w = watch()
    assert w.observe(unconfirmed(3), set(), at(0)) == []
    assert w.observe(unconfirmed(3), set(), at(600)) == []
    assert w.state.down_since == {} and w.state.unconfirmed == [3]
    assert w.observe(down(3), set(), at(601)) == []  # down from now
    assert w.observe(down(3), set(), at(661)) == [3]


def test_a_node_unreachable_from_the_worker_holds_the_repair_of_another() -> None:
    """Two nodes the worker does not reach at once: a partition, whatever the live nodes say."""
    w = watch()
    both = views({1: Reach.UP, 2: Reach.UNREACHABLE, 3: Reach.DOWN, 4: Reach.UP})
    w.observe(both, set(), at(0))
    assert w.observe(both, set(), at(120)) == []
    assert w.state.paused.startswith("nodes [2, 3] do not answer at once: a partition")
    assert w.observe(down(3), set(), at(121)) == [3]  # node 2 answers again


ANSWERS, REACHED, CUT = "answers", "reached", "cut"  # to the worker; by a live node; by none


@dataclass(frozen=True)
class Probe:
    at: float  # seconds from T0
    views: dict[int, NodeView]
    draining: set[int]
    ending: set[int]  # the running repairs of these nodes end after this probe


@st.composite
def probe_runs(draw: st.DrawFn) -> list[Probe]:
    """Probes a second to a minute apart over 1 to 4 nodes, each answering the worker, reached
    by the live nodes only, or cut from every one at first, and then turning one probe in three
    (one node, all silent, flapping, spells past `dead_after_s`); one probe in eight the live
    nodes cannot be asked; some nodes being drained, and each running repair ending at a probe
    or going on. The views come from the rule itself (runtime/views.py `classify`)."""
    nodes = list(range(1, draw(st.integers(1, 4)) + 1))
    states = [ANSWERS, ANSWERS, ANSWERS, CUT, CUT, REACHED]  # most answer: lone deaths come up
    truth = {n: draw(st.sampled_from(states)) for n in nodes}
    now, runs = 0.0, []
    for _ in range(draw(st.integers(1, 30))):
        now += draw(st.floats(1, 60))
        truth = {
            n: draw(st.sampled_from(states)) if draw(st.integers(0, 2)) == 2 else t
            for n, t in truth.items()
        }
        live = [n for n, t in truth.items() if t == ANSWERS]
        asked = live if draw(st.integers(0, 7)) else []
        views = {
            n: NodeView(
                reach=classify(t == ANSWERS, by := asked if t == REACHED else [], asked),
                reached_by=by,
                asked=asked,
            )
            for n, t in truth.items()
        }
        draining = {n for n in nodes if draw(st.integers(0, 3)) == 3}
        ending = {n for n in nodes if draw(st.booleans())}
        runs.append(Probe(now, views, draining, ending))
    return runs


@reaching(
    "one node",
    "all silent",
    "repaired",
    "held back: several silent",
    "held back: draining",
    "held back: unconfirmed",
    "unreachable past dead_after",
    "its repair still runs",
    "back during its repair",
)
@settings(max_examples=300)
@given(probe_runs())
def test_only_a_lone_node_down_for_dead_after_and_not_draining_is_repaired_once_a_spell(
    runs: list[Probe],
) -> None:
    """A repair starts only for a node down now (no view reaches it), down for `dead_after_s`
    (counted from when it was first down, through spells no live node could be asked about,
    restarted when it answers or a live node reaches it), not being drained, the only node that
    does not answer the worker (a partition is not a death, and the watch says it holds back),
    never while a repair of it runs nor twice a spell down. A node a live node reaches is never
    repaired, however long. And a lone node down long enough always is repaired, or has a
    repair running."""
    if len(runs[0].views) == 1:
        reached("one node")
    w = watch()
    since: dict[int, float] = {}  # node -> when it was first seen down, this spell
    reached_since: dict[int, float] = {}  # node -> when it was first seen unreachable
    covered: set[int] = set()  # down nodes whose repair started or ran in this spell
    running: set[int] = set()
    for probe in runs:
        for n, view in probe.views.items():
            if view.reach in (Reach.UP, Reach.UNREACHABLE):
                since.pop(n, None)
                covered.discard(n)  # back: a later death is a new one
                if n in running:
                    reached("back during its repair")
            elif view.reach is Reach.DOWN:
                since.setdefault(n, probe.at)
            if view.reach is Reach.UNREACHABLE:
                reached_since.setdefault(n, probe.at)
            else:
                reached_since.pop(n, None)
        covered |= running & set(since)
        silent = {n for n, v in probe.views.items() if v.reach is not Reach.UP} | set(since)
        if len(probe.views) > 1 and len(silent) == len(probe.views):
            reached("all silent")
        started = w.observe(probe.views, probe.draining, at(probe.at))
        dead = {n for n, t in since.items() if down_for(t, probe.at) >= w.state.dead_after_s}
        for node in started:
            assert silent == {node}, (silent, started)  # never while another is silent
            assert probe.views[node].reach is Reach.DOWN, probe.views[node]
            assert node in dead and node not in probe.draining
            assert node not in running and node not in covered  # never two repairs of a node
            reached("repaired")
        if any(down_for(t, probe.at) >= w.state.dead_after_s for t in reached_since.values()):
            reached("unreachable past dead_after")  # and not repaired, as asserted above
        assert bool(w.state.paused) == (len(silent) > 1), (silent, w.state.paused)
        assert set(w.state.unreachable) == set(reached_since), w.state
        running |= set(started)
        covered |= set(started)
        if len(silent) > 1 and dead - covered - probe.draining:
            reached("held back: several silent")
        if len(silent) == 1:  # a lone node down long enough, not drained: it is repaired
            (node,) = silent
            if node in dead - covered:
                if probe.views[node].reach is Reach.UNCONFIRMED:
                    reached("held back: unconfirmed")
                else:
                    assert node in probe.draining, (node, probe, w.state)
                    reached("held back: draining")
            elif node in dead and node in running and not started:
                reached("its repair still runs")
        for node in sorted(running & probe.ending):
            w.repair_ended(node, "done", at(probe.at))
            running.discard(node)
        assert len(w.state.decisions) <= KEEP_DECISIONS


def zoned(views: dict[int, NodeView]) -> dict[int, NodeView]:
    """Nodes 1-6 in zones a, b, c (1 and 4 in a, 2 and 5 in b, 3 and 6 in c)."""
    return {
        n: v.model_copy(update={"zone": f"zone={'abc'[(n - 1) % 3]}"}) for n, v in views.items()
    }


def six(reach: dict[int, Reach]) -> dict[int, NodeView]:
    return zoned(views({n: reach.get(n, Reach.UP) for n in range(1, 7)}))


def test_a_zone_that_does_not_answer_is_a_partition_and_its_return_starts_a_rebalance() -> None:
    w = Watch(AutopilotState(dead_after_s=60), zones=True)
    assert w.observe(six({2: Reach.DOWN}), set(), at(0)) == []
    assert w.observe(six({2: Reach.DOWN, 5: Reach.DOWN}), set(), at(10)) == []
    assert w.state.zones_down == ["zone=b"]
    assert w.state.paused.startswith("zone b does not answer: a partition is not a death")
    assert w.observe(six({2: Reach.DOWN, 5: Reach.DOWN}), set(), at(120)) == []  # past dead_after
    assert w.rebalance_due() == []
    w.observe(six({5: Reach.DOWN}), set(), at(130))  # one back: the zone answers again
    assert w.rebalance_due() == []  # node 5 still silent: a rebalance would be refused
    w.observe(six({}), set(), at(140))
    assert w.rebalance_due() == ["zone=b"]
    assert w.rebalance_due() == []  # taken once
    said = [d.what for d in w.state.decisions]
    assert "zone b does not answer: every node of it is down" in said
    assert "zone b answers again" in said


def test_a_zone_the_worker_alone_cannot_reach_is_no_zone_down() -> None:
    """Nodes a live node reaches are unreachable from the worker, not down: their zone is not
    said silent (two nodes at once still hold the repairs back)."""
    w = Watch(AutopilotState(dead_after_s=60), zones=True)
    w.observe(six({2: Reach.UNREACHABLE, 5: Reach.UNREACHABLE}), set(), at(0))
    assert w.state.zones_down == []
    assert w.state.paused.startswith("nodes [2, 5] do not answer at once")


def test_a_single_dead_node_of_a_zone_of_one_is_repaired_and_no_zone_is_said_down() -> None:
    w = Watch(AutopilotState(dead_after_s=60), zones=True)
    alone = {n: v.model_copy(update={"zone": f"zone={n}"}) for n, v in down(3).items()}
    w.observe(alone, set(), at(0))
    assert w.observe(alone, set(), at(61)) == [3]
    assert w.state.zones_down == []


def test_a_run_that_does_not_judge_zones_holds_back_as_before() -> None:
    w = watch()  # started before zones were judged (patches.ZONES): nodes, not zones
    w.observe(six({2: Reach.DOWN, 5: Reach.DOWN}), set(), at(0))
    assert w.state.zones_down == []
    assert w.state.paused.startswith("nodes [2, 5] do not answer at once")


def test_a_dead_node_taken_out_of_the_directory_holds_nothing_back() -> None:
    w = Watch(AutopilotState(dead_after_s=60), zones=True)
    w.observe(down(3), set(), at(0))
    assert w.observe(down(3), set(), at(61)) == [3]
    w.repair_ended(3, "done", at(70))
    forgotten = {n: v for n, v in ALL_UP.items() if n != 3}  # airctl node forget 3
    w.observe(forgotten, set(), at(80))
    assert w.state.down_since == {} and w.state.repaired == []
    w.observe({**forgotten, 4: NodeView(reach=Reach.DOWN, asked=[1, 2])}, set(), at(90))
    assert w.state.paused == ""  # node 4 alone is down: not a partition
