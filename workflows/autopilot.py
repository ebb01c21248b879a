"""AutopilotWorkflow (air-autopilot): probe every node; repair the ones that stay gone.

One per cluster, running until turned off. Every `probe_every_s` it probes the nodes, each
directly and, if it does not answer, through the live nodes (runtime/views.py), and feeds the
views to its judgement (planning/watch.py), which names the nodes down for `dead_after_s`:
their repairs start (RepairNodeWorkflow, a workflow of its own, so turning the autopilot off
leaves a running repair to finish). Each decision is in its history (a memo upsert, with the
time it was taken) and in its current details. With `check_every_s` it also starts a
consistency check of every region that often (CheckReplicasWorkflow, one at a time: a check
still running when the next is due delays it), and records what each found. Every
`PLACEMENT_EVERY` probes it counts the under-diversified regions (a gauge); a zone that did not
answer and answers again starts a rebalance, which raises what its outage left less diverse. It
continues as new before its history grows large, carrying what it knows.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, VersioningBehavior

from activities.operations import OperationActivities
from contracts.activity_models import NodeView, Reach
from contracts.ids import check_workflow_id
from contracts.locality import tier_name
from contracts.models import AutopilotInput, AutopilotState, Decision
from planning.watch import Watch
from workflows.machinery import patches

R = TypeVar("R")

CONTINUE_AFTER = 1_000  # history events: a probe costs about ten
SHOWN = 10  # decisions in the current details
UNREACHABLE_GAUGE = "air_nodes_unreachable_from_worker"
UNDER_DIVERSIFIED_GAUGE = "air_regions_under_diversified"
# the placement is judged at the first probe and every this many after (each look describes
# the whole cluster: about a minute apart at the default probe period)
PLACEMENT_EVERY = 6


# a long operation moves to the current build at its next task (patches guard changes)
@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class AutopilotWorkflow:
    @workflow.init
    def __init__(self, req: AutopilotInput) -> None:
        self._state = req.carried or AutopilotState(
            dead_after_s=req.dead_after_s,
            probe_every_s=req.probe_every_s,
            check_every_s=req.check_every_s,
            check_repair=req.check_repair,
        )
        self._watch = Watch(self._state)

    @workflow.query
    def status(self) -> AutopilotState:
        return self._state

    @workflow.update
    def set_dead_after(self, seconds: float) -> AutopilotState:
        self._state.dead_after_s = seconds
        return self._state

    @set_dead_after.validator
    def _valid_dead_after(self, seconds: float) -> None:
        if not 0 < seconds < math.inf:
            raise ValueError(f"dead_after must be above 0 seconds, not {seconds}")

    @workflow.update
    def configure(self, req: AutopilotInput) -> AutopilotState:
        """`airctl autopilot on` again: its dead_after and its checks."""
        self._state.dead_after_s = req.dead_after_s
        self._state.check_every_s = req.check_every_s
        self._state.check_repair = req.check_repair
        self._show()
        return self._state

    @configure.validator
    def _valid_configure(self, req: AutopilotInput) -> None:
        self._valid_dead_after(req.dead_after_s)
        if req.check_every_s is not None and not 0 < req.check_every_s < math.inf:
            raise ValueError(f"check_every must be above 0 seconds, not {req.check_every_s}")

    @workflow.run
    async def run(self, req: AutopilotInput) -> None:
        if req.dead_after_s <= 0 or req.probe_every_s <= 0:
            raise ValueError("dead_after_s and probe_every_s must be above 0")
        look = _views if workflow.patched(patches.INDIRECT_PROBES) else _worker_view
        self._watch.zones = workflow.patched(patches.ZONES)
        self._show()
        while workflow.info().get_current_history_length() < CONTINUE_AFTER:
            await self._probe(look)
            if self._watch.zones:
                await self._placement()
            await self._check()
            await workflow.sleep(self._state.probe_every_s)
        workflow.continue_as_new(req.model_copy(update={"carried": self._state}))

    async def _probe(self, look: Callable[[], Awaitable[dict[int, NodeView]]]) -> None:
        views = await look()
        down = [n for n, view in views.items() if view.reach is Reach.DOWN]
        draining = set(await _local(OperationActivities.draining, down)) if down else set()
        for node in self._watch.observe(views, draining, workflow.now()):
            await _local(OperationActivities.start_repair, node)
        workflow.metric_meter().create_gauge(  # not emitted again on replay
            UNREACHABLE_GAUGE, "Nodes the worker does not reach but a live node does"
        ).set(len(self._state.unreachable))
        decided = list(self._watch.new)
        for node in list(self._state.repairing):
            outcome = await _local(OperationActivities.repair_outcome, node)
            if outcome is not None:
                self._watch.repair_ended(node, outcome, workflow.now())
                decided += self._watch.new
        if decided:
            self._record(decided)

    async def _placement(self) -> None:
        """A rebalance once a zone that was down answers again (and no node is silent); the
        count of under-diversified regions every PLACEMENT_EVERY probes."""
        s = self._state
        if back := self._watch.rebalance_due():
            started = await _local(OperationActivities.start_rebalance, back)
            zones = ", ".join(tier_name(z) for z in back)
            self._record(
                [
                    self._watch.decide(
                        workflow.now(),
                        f"{zones} answers again: started {started}, which raises the regions "
                        "its outage left under-diversified, then evens bytes",
                    )
                ]
            )
        if s.probes % PLACEMENT_EVERY == 1:
            s.under_diversified = await _local(OperationActivities.under_diversified)
            workflow.metric_meter().create_gauge(  # not emitted again on replay
                UNDER_DIVERSIFIED_GAUGE,
                "Regions one move of a replica would make more diverse (zones, racks)",
            ).set(s.under_diversified)

    async def _check(self) -> None:
        """The check it started, if it ended; a new one, if one is due. (Off, it does nothing:
        no command, so a history from before the checks replays unchanged.)"""
        state = self._state
        if state.checking is not None:
            outcome = await _local(OperationActivities.check_outcome, state.checking)
            if outcome is None:
                return
            what = f"check {state.checking}: {outcome}"
            self._record([self._watch.decide(workflow.now(), what)])
            state.checking = None
        now = workflow.now()
        every = state.check_every_s
        if every is None or (
            state.last_check is not None and (now - state.last_check).total_seconds() < every
        ):
            return
        token = f"autopilot-{workflow.uuid4().hex[:8]}"  # chosen here: a retry starts no other
        state.checking = await _local(
            OperationActivities.start_check, check_workflow_id(token), state.check_repair
        )
        state.last_check = now
        self._record([self._watch.decide(now, f"started check {state.checking} of every region")])

    def _record(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            workflow.logger.info("autopilot: %s", decision.what)
        workflow.upsert_memo({"decisions": [d.what for d in decisions]})
        self._show()

    def _show(self) -> None:
        state = self._state
        lines = [
            f"**autopilot**: dead after {state.dead_after_s:g} s down, probing every "
            f"{state.probe_every_s:g} s",
            *status_lines(state, "%H:%M:%S"),
        ]
        lines += [f"{d.at:%H:%M:%S} {d.what}" for d in state.decisions[-SHOWN:]]
        workflow.set_current_details("\n\n".join(lines))


def status_lines(state: AutopilotState, stamp: str) -> list[str]:
    """What the autopilot sees and does, a line each (times as `stamp`): the nodes down and
    those repairing, those the worker does not reach, the checks, why repairs are held. Its
    current details and `airctl autopilot status` both show them."""
    down = ", ".join(f"node {n} since {t:{stamp}}" for n, t in sorted(state.down_since.items()))
    lines = [f"down: {down or 'none'}; repairing {state.repairing or 'none'}"]
    if state.unreachable or state.unconfirmed:
        lines.append(unreachable_line(state))
    if state.check_every_s is not None:
        last = f"{state.last_check:{stamp}}" if state.last_check else "none yet"
        running = state.checking or "none"
        lines.append(f"checks every {state.check_every_s:g} s (last {last}, running: {running})")
    if state.under_diversified:
        under = state.under_diversified
        lines.append(f"{under} region(s) under-diversified (airctl placement says why)")
    if state.paused:
        lines.append(f"PAUSED: {state.paused}")
    return lines


def unreachable_line(state: AutopilotState) -> str:
    """The nodes the worker does not reach that are not down: never repaired."""
    reached = [
        f"node {n} since {u.since:%H:%M:%S} (reached by {', '.join(map(str, u.reached_by))})"
        for n, u in sorted(state.unreachable.items())
    ]
    unasked = [f"node {n} (no live node could be asked)" for n in sorted(state.unconfirmed)]
    return f"unreachable from the worker, not repaired: {'; '.join(reached + unasked)}"


async def _views() -> dict[int, NodeView]:
    return await _local(OperationActivities.probe_views)


async def _worker_view() -> dict[int, NodeView]:
    """The worker's view alone, for a run started before indirect probes: each node up or
    down."""
    answering = await _local(OperationActivities.probe_nodes)
    return {n: NodeView(reach=Reach.UP if up else Reach.DOWN) for n, up in answering.items()}


async def _local(activity: Callable[..., Awaitable[R]], *args: Any) -> R:
    """A quick call (a probe, a look at a workflow), in the workflow task."""
    result: R = await workflow.execute_local_activity_method(
        activity,
        args=args,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=5)),
    )
    return result
