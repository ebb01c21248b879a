"""The autopilot's judgement: which nodes are dead and get repaired, from what probes saw.

Pure, no Temporal: the workflow feeds it each probe and starts the repairs it names. A node
that does not answer for `dead_after_s` is declared dead and repaired once; a node back before
then costs nothing; a node back after its repair cleans its stale replicas by itself. While
more than one node is down nothing is repaired: a partition is not a death. A node being
drained is left to its drain.
"""

from __future__ import annotations

from datetime import datetime

from contracts.models import AutopilotState, Decision

KEEP_DECISIONS = 50  # in the state; every one is in the history too


class Watch:
    def __init__(self, state: AutopilotState) -> None:
        self.state = state
        self.new: list[Decision] = []  # taken by the last call, for the history

    def observe(self, answering: dict[int, bool], draining: set[int], now: datetime) -> list[int]:
        """Take in one probe (node -> answered); return the nodes to repair now."""
        self.new = []
        s = self.state
        s.probes += 1
        for node, up in sorted(answering.items()):
            if not up and node not in s.down_since:
                s.down_since[node] = now
                self.decide(now, f"node {node} does not answer")
            elif up and node in s.down_since:
                self._back(node, now)
        down = sorted(s.down_since)
        if len(down) > 1:
            reason = (
                f"nodes {down} do not answer at once: a partition is not a death; "
                "no repair starts until at most one is down"
            )
            if s.paused != reason:
                s.paused = reason
                self.decide(now, reason)
            return []
        if s.paused:
            s.paused = ""
            self.decide(now, "at most one node is down: repairs may start again")
        return [node for node in down if self._dead(node, draining, now)]

    def repair_ended(self, node: int, outcome: str, now: datetime) -> None:
        s = self.state
        s.repairing.remove(node)
        if node in s.down_since:
            s.repaired.append(node)
        self.decide(now, f"the repair of node {node} ended: {outcome}")

    def _dead(self, node: int, draining: set[int], now: datetime) -> bool:
        s = self.state
        if node in s.repairing or node in s.repaired:
            return False
        down_for = (now - s.down_since[node]).total_seconds()
        if down_for < s.dead_after_s:
            return False
        if node in draining:
            return False  # its drain moves its regions (skipping it while it is down)
        s.repairing.append(node)
        self.decide(now, f"node {node} declared dead after {down_for:.0f} s down: repairing it")
        return True

    def _back(self, node: int, now: datetime) -> None:
        s = self.state
        down_for = (now - s.down_since.pop(node)).total_seconds()
        if node in s.repaired:
            s.repaired.remove(node)
            outcome = "it was repaired meanwhile: its stale replicas delete themselves"
        elif node in s.repairing:
            outcome = "its repair goes on: its stale replicas delete themselves"
        else:
            outcome = "nothing to do"
        self.decide(now, f"node {node} answers again after {down_for:.0f} s: {outcome}")

    def decide(self, now: datetime, what: str) -> Decision:
        """A decision, kept in the state (the latest KEEP_DECISIONS) and in `new`."""
        decision = Decision(at=now, what=what)
        self.new.append(decision)
        self.state.decisions = [*self.state.decisions, decision][-KEEP_DECISIONS:]
        return decision
