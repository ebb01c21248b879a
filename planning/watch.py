"""The autopilot's judgement: which nodes are dead and get repaired, from what probes saw.

Pure, no Temporal: the workflow feeds it each probe's views (runtime/views.py: up, unreachable
from the worker, down, unconfirmed) and starts the repairs it names. Only a node down (no view
reaches it: neither the worker nor any live node asked) for `dead_after_s` is declared dead and
repaired, once; a node that a live node reaches is shown unreachable from the worker and never
repaired, however long; a node no live node could be asked about is held, neither down nor up.
A node back before `dead_after_s` costs nothing; a node back after its repair cleans its stale
replicas by itself. While more than one node does not answer the worker nothing is repaired: a
partition is not a death. Every node of a zone (of two or more) silent at once is said so: the
zone does not answer; once it answers again, a rebalance is due (the outage may have left
regions less diverse: placed while it was away). A node being drained is left to its drain.
"""

from __future__ import annotations

from datetime import datetime

from contracts.activity_models import NodeView, Reach
from contracts.locality import tier_name
from contracts.models import AutopilotState, Decision, Unreachable
from runtime.views import reaching

KEEP_DECISIONS = 50  # in the state; every one is in the history too


class Watch:
    def __init__(self, state: AutopilotState, zones: bool = False) -> None:
        self.state = state
        self.new: list[Decision] = []  # taken by the last call, for the history
        # judge zones, and forget nodes gone from the directory (patches.ZONES: a run started
        # before does neither)
        self.zones = zones

    def observe(self, views: dict[int, NodeView], draining: set[int], now: datetime) -> list[int]:
        """Take in one probe (node -> how it looks); return the nodes to repair now."""
        self.new = []
        state = self.state
        state.probes += 1
        if self.zones:
            self._forget(set(views))
        for node, view in sorted(views.items()):
            self._see(node, view, now)
        silent = {n for n, view in views.items() if view.reach is not Reach.UP}
        down = sorted(state.down_since.keys() | silent)
        if self.zones:
            self._zones(views, now)
        if len(down) > 1:
            what = (
                self._zones_silent(views, down)
                if state.zones_down and self.zones
                else f"nodes {down} do not answer at once"
            )
            reason = (
                f"{what}: a partition is not a death; no repair starts until at most one is down"
            )
            if state.paused != reason:
                state.paused = reason
                self.decide(now, reason)
            return []
        if state.paused:
            state.paused = ""
            self.decide(now, "at most one node is down: repairs may start again")
        return [
            node
            for node in sorted(state.down_since)
            if node not in state.unconfirmed and self._dead(node, draining, now)
        ]

    def _see(self, node: int, view: NodeView, now: datetime) -> None:
        """One node's view; where it starts or stops being down, unreachable from the worker
        or unconfirmed, a decision says so."""
        state = self.state
        unreachable = state.unreachable.pop(node, None)
        unconfirmed = node in state.unconfirmed
        if unconfirmed:
            state.unconfirmed.remove(node)
        if view.reach is Reach.UP:
            if node in state.down_since:
                self._back(node, now, "answers")
            elif unreachable or unconfirmed:
                self.decide(now, f"node {node} answers the worker again")
        elif view.reach is Reach.UNREACHABLE:
            by = view.reached_by
            if node in state.down_since:
                self._back(node, now, f"is reached by {_nodes(by)}")
            if unreachable is None:
                self.decide(
                    now, f"node {node} does not answer the worker, but {reaching(by)}: not repaired"
                )
            since = now if unreachable is None else unreachable.since
            state.unreachable[node] = Unreachable(since=since, reached_by=by)
        elif view.reach is Reach.DOWN:
            if node not in state.down_since:
                state.down_since[node] = now
                asked = f", nor does any node asked reach it ({_nodes(view.asked)})"
                self.decide(now, f"node {node} does not answer" + (asked if view.asked else ""))
        else:  # unconfirmed: a dead_after already counting goes on, none starts
            state.unconfirmed.append(node)
            if not unconfirmed:
                self.decide(
                    now,
                    f"node {node} does not answer the worker and no live node could be asked "
                    "about it: not confirmed down, not repaired",
                )

    def _forget(self, known: set[int]) -> None:
        """Nodes taken out of the directory (`airctl node forget`) are no longer down, held or
        repaired: a forgotten dead node would hold every later repair back, and a rebalance
        (which it would refuse) would never be due. A repair still running is still watched."""
        state = self.state
        for node in [n for n in state.down_since if n not in known]:
            del state.down_since[node]
        state.repaired = [n for n in state.repaired if n in known]
        state.unconfirmed = [n for n in state.unconfirmed if n in known]
        for node in [n for n in state.unreachable if n not in known]:
            del state.unreachable[node]

    def _zones(self, views: dict[int, NodeView], now: datetime) -> None:
        """The zones (of two nodes or more) none of whose nodes any view reaches, and those
        back since."""
        state = self.state
        unseen = {n for n, v in views.items() if v.reach in (Reach.DOWN, Reach.UNCONFIRMED)}
        members: dict[str, list[int]] = {}
        for node, view in views.items():
            if view.zone:
                members.setdefault(view.zone, []).append(node)
        silent = sorted(z for z, on in members.items() if len(on) > 1 and set(on) <= unseen)
        for zone in silent:
            if zone not in state.zones_down:
                self.decide(now, f"{tier_name(zone)} does not answer: every node of it is down")
        for zone in state.zones_down:
            if zone not in silent and zone in members:
                state.zones_back.append(zone)
                self.decide(now, f"{tier_name(zone)} answers again")
        state.zones_down = silent

    def _zones_silent(self, views: dict[int, NodeView], down: list[int]) -> str:
        """`zone b does not answer`, and the other nodes down beside it."""
        zones = self.state.zones_down
        what = (
            f"{', '.join(map(tier_name, zones))} {'does' if len(zones) == 1 else 'do'} not answer"
        )
        others = [n for n in down if n not in views or views[n].zone not in zones]
        return what + (f", nor do nodes {others}" if others else "")

    def rebalance_due(self) -> list[str]:
        """The zones back since they were down, once no node is silent (a rebalance refuses
        while one is): a rebalance raises what their outage left less diverse. Taken: the
        caller starts it."""
        state = self.state
        if not state.zones_back or state.down_since or state.unreachable or state.unconfirmed:
            return []
        back, state.zones_back = state.zones_back, []
        return back

    def repair_ended(self, node: int, outcome: str, now: datetime) -> None:
        state = self.state
        state.repairing.remove(node)
        if node in state.down_since:
            state.repaired.append(node)
        self.decide(now, f"the repair of node {node} ended: {outcome}")

    def _dead(self, node: int, draining: set[int], now: datetime) -> bool:
        state = self.state
        if node in state.repairing or node in state.repaired:
            return False
        down_for = (now - state.down_since[node]).total_seconds()
        if down_for < state.dead_after_s:
            return False
        if node in draining:
            return False  # its drain moves its regions (skipping it while it is down)
        state.repairing.append(node)
        self.decide(now, f"node {node} declared dead after {down_for:.0f} s down: repairing it")
        return True

    def _back(self, node: int, now: datetime, how: str) -> None:
        state = self.state
        down_for = (now - state.down_since.pop(node)).total_seconds()
        if node in state.repaired:
            state.repaired.remove(node)
            outcome = "it was repaired meanwhile: its stale replicas delete themselves"
        elif node in state.repairing:
            outcome = "its repair goes on: its stale replicas delete themselves"
        else:
            outcome = "nothing to do"
        self.decide(now, f"node {node} {how} again after {down_for:.0f} s: {outcome}")

    def decide(self, now: datetime, what: str) -> Decision:
        """A decision, kept in the state (the latest KEEP_DECISIONS) and in `new`."""
        decision = Decision(at=now, what=what)
        self.new.append(decision)
        self.state.decisions = [*self.state.decisions, decision][-KEEP_DECISIONS:]
        return decision


def _nodes(ids: list[int]) -> str:
    return f"node {ids[0]}" if len(ids) == 1 else f"nodes {', '.join(map(str, ids))}"
