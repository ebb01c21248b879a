"""How a workflow shows itself: search attributes, the UI's current details, a stall gauge,
and stall reports to its parent. Membership changes and drains report through the same piece."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ApplicationError, FailureError

from contracts.activity_models import TransferProgress
from contracts.models import Phase, Progress, StallReport
from contracts.rates import limit_text
from contracts.search_attributes import KIND_KEY, NODES_KEY, PHASE_KEY, REGION_KEY, STALLED_KEY
from workflows.machinery import patches

# A workflow tells its parent when its transfer stalls or moves again (a workflow cannot query
# another): a migration tells its drain.
STALL_SIGNAL = "transfer_stall"
# phases after which no transfer of the workflow is waited on
SETTLED = {Phase.DONE, Phase.ROLLING_BACK, Phase.ROLLED_BACK}


class WorkflowCalls:
    """The calls a reporter makes to the workflow it reports for: search attributes, current
    details, time, a gauge, a patch, whether a cancel was asked, the parent told of a stall."""

    def upsert(self, updates: Sequence[SearchAttributeUpdate[Any]]) -> None:
        workflow.upsert_search_attributes(updates)

    def details(self, markdown: str) -> None:
        workflow.set_current_details(markdown)

    def now(self) -> float:
        return workflow.time()

    def gauge(self, name: str, description: str, value: int, labels: dict[str, str]) -> None:
        gauge = workflow.metric_meter().create_gauge(name, description)
        gauge.set(value, labels)

    def stalls_published(self) -> bool:
        return workflow.patched(patches.STALLS)

    def cancel_requested(self) -> bool:
        return workflow.cancellation_reason() is not None

    async def tell_parent(self, report: StallReport) -> None:
        parent = workflow.info().parent
        if parent is None or not self.stalls_published():
            return
        handle = workflow.get_external_workflow_handle(parent.workflow_id, run_id=parent.run_id)
        try:
            await handle.signal(STALL_SIGNAL, report)
        except FailureError as e:  # the parent is gone: a report must not fail the change
            workflow.logger.warning("could not report a stall to %s: %s", parent.workflow_id, e)


class NoWorkflow(WorkflowCalls):
    """Steps run outside any workflow (a benchmark's baseline, in process): nothing to show
    them to, and the wall clock for time."""

    def upsert(self, updates: Sequence[SearchAttributeUpdate[Any]]) -> None:
        pass

    def details(self, markdown: str) -> None:
        pass

    def now(self) -> float:
        return time.monotonic()

    def gauge(self, name: str, description: str, value: int, labels: dict[str, str]) -> None:
        pass

    def stalls_published(self) -> bool:
        return False

    def cancel_requested(self) -> bool:
        return False

    async def tell_parent(self, report: StallReport) -> None:
        pass


class Reporter:
    """Search attributes upserted only when their value changes (each upsert is an event)."""

    def __init__(self, workflow: WorkflowCalls | None = None) -> None:
        self.workflow = workflow or WorkflowCalls()
        self._shown: dict[str, Any] = {}

    def attributes(self, updates: Sequence[SearchAttributeUpdate[Any]]) -> None:
        changed = [u for u in updates if self._shown.get(u.key.name, _UNSET) != u.value]
        if changed:
            self._shown.update((u.key.name, u.value) for u in changed)
            self.workflow.upsert(changed)

    def stalled(self, stalled: bool) -> None:
        if self.workflow.stalls_published():
            self.attributes([STALLED_KEY.value_set(stalled)])


_UNSET = object()


class ChangeReporter(Reporter):
    """A membership change's progress: phase, steps done, lag, rate, stall."""

    def __init__(self, kind: str, workflow: WorkflowCalls | None = None) -> None:
        super().__init__(workflow)
        self.kind = kind
        self._progress: Progress | None = None
        self._entered = 0.0  # when the current phase began
        self.stall_after_s = 60.0  # a transfer whose lag is flat this long is reported stalled

    @property
    def progress(self) -> Progress:
        if self._progress is None:
            raise ApplicationError("the workflow has not started yet")
        return self._progress

    def begin(self, region: int, nodes: list[int], stall_after_s: float) -> None:
        self._progress = Progress(kind=self.kind, region=region, nodes=nodes)
        self._entered = self.workflow.now()
        self.stall_after_s = stall_after_s
        self.attributes(
            [
                REGION_KEY.value_set(region),
                NODES_KEY.value_set([str(n) for n in nodes]),
                KIND_KEY.value_set(self.kind),
                PHASE_KEY.value_set(Phase.VALIDATING.value),
            ]
        )
        self.show()

    def enter(self, phase: Phase, message: str = "") -> None:
        progress = self.progress
        if phase != progress.phase:
            now = self.workflow.now()
            spent = progress.phase_seconds.get(progress.phase, 0.0) + now - self._entered
            progress.phase_seconds[progress.phase] = round(spent, 3)
            progress.phase, self._entered = phase, now
            progress.message = ""  # a message is about its phase; a repeated step keeps it
            self.attributes([PHASE_KEY.value_set(phase.value)])
        if message:
            progress.message = message
        if phase in SETTLED and self.set_stalled(False):
            # a failed wait leaves no stale stall behind, in visibility or in the metric
            self.gauge(0)
        self.show()

    def step_done(self, summary: str) -> None:
        self.progress.steps_done.append(summary)

    def set_stalled(self, stalled: bool) -> bool:
        """Record the stall state; returns whether it changed."""
        progress = self.progress
        if progress.stalled == stalled:
            return False
        progress.stalled = stalled
        self.stalled(stalled)
        return True

    def transfer(self, slice_: TransferProgress, ids: list[int], flat_s: float) -> bool:
        """Lag and rate into the progress; a lag flat for `stall_after_s` is a stall.

        Returns whether the stall state changed.
        """
        progress = self.progress
        progress.lag, progress.rate = slice_.lag, slice_.rate
        progress.snapshot_received = slice_.snapshot_received
        progress.snapshot_limit = slice_.snapshot_limit
        progress.snapshot_limit_auto = slice_.snapshot_limit_auto
        changed = self.set_stalled(not slice_.complete and flat_s >= self.stall_after_s)
        if progress.stalled:
            progress.message = (
                f"STALLED: the lag of {slice_.lag} seqs has not shrunk for {flat_s:.0f}s; "
                + waiting_for(slice_, ids)
            )
        elif slice_.unreachable:  # shown at once: a receiver the worker cannot reach
            progress.message = f"waiting: {waiting_for(slice_, ids)}"
        elif progress.message.startswith(("STALLED", "waiting")):
            progress.message = ""
        self.gauge(int(progress.stalled))
        self.show()
        return changed

    async def tell_parent(self) -> None:
        p = self.progress
        await self.workflow.tell_parent(
            StallReport(region=p.region, stalled=p.stalled, detail=p.message)
        )

    def gauge(self, value: int) -> None:
        labels = {"region": str(self.progress.region), "kind": self.kind}
        self.workflow.gauge("air_transfer_stalled", "1 while a transfer is stalled", value, labels)

    def show(self) -> None:
        """The UI's current details: phase, lag and rate, in Markdown."""
        p = self.progress
        lines = [f"**{p.kind}** region {p.region}, nodes {p.nodes}", f"phase: **{p.phase}**"]
        if p.lag is not None:
            rate = f", {p.rate:.0f} seqs/s" if p.rate else ""
            lines.append(f"lag: {p.lag} seqs{rate}")
        if p.snapshot_received and p.phase == Phase.TRANSFERRING:
            limit = limit_text(p.snapshot_limit, p.snapshot_limit_auto)
            lines.append(
                f"snapshot: {p.snapshot_received / 1e6:.1f} MB received"
                + (f", {limit}" if limit else "")
            )
        if p.phase_seconds:
            spent = ", ".join(f"{phase} {s:.1f}s" for phase, s in p.phase_seconds.items())
            lines.append(f"seconds by phase: {spent}")
        if p.message:
            lines.append(p.message)
        self.workflow.details("\n\n".join(lines))


def waiting_for(slice_: TransferProgress, receivers: list[int]) -> str:
    """What a stalled transfer waits for, as plainly as the receivers' answers allow."""
    if slice_.unreachable:
        return f"nodes {slice_.unreachable} do not answer the worker"
    if slice_.awaiting_snapshot:
        return (
            f"nodes {slice_.awaiting_snapshot} await their snapshot from the coordinator "
            "(is it down, or throttled?)"
        )
    behind = ", ".join(f"{n} seqs from node {o}" for o, n in sorted(slice_.behind.items()))
    return f"nodes {receivers} apply nothing new" + (
        f"; still to apply: {behind}" if behind else ""
    )
