"""What the membership workflows share: ids, search attributes, activity options, progress."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributeUpdate
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.membership import MembershipActivities
    from activities.models import Peer, RegionDescription, TransferProgress, WaitTransferInput
    from workflows.models import Phase, Progress, StallReport

TASK_QUEUE = "air-replication"
# A workflow task whose worker died is retried after this long (the server's default is 10 s);
# quick steps run inside workflow tasks as local activities, so this bounds their recovery.
WORKFLOW_TASK_TIMEOUT = timedelta(seconds=5)

REGION_KEY = SearchAttributeKey.for_int("AirRegion")
PHASE_KEY = SearchAttributeKey.for_keyword("AirPhase")
NODES_KEY = SearchAttributeKey.for_keyword_list("AirNodes")
KIND_KEY = SearchAttributeKey.for_keyword("AirKind")
# true while a transfer's lag has not shrunk for stall_after_s (on the drain: any of its moves)
STALLED_KEY = SearchAttributeKey.for_bool("AirStalled")
# a drain's moves finished, and those not finished (running or waiting)
MOVES_DONE_KEY = SearchAttributeKey.for_int("AirMovesDone")
MOVES_LEFT_KEY = SearchAttributeKey.for_int("AirMovesLeft")
SEARCH_ATTRIBUTES = (
    REGION_KEY,
    PHASE_KEY,
    NODES_KEY,
    KIND_KEY,
    STALLED_KEY,
    MOVES_DONE_KEY,
    MOVES_LEFT_KEY,
)
# A child tells its parent when its transfer stalls or moves again (a workflow cannot query
# another): add-peer and remove-peer tell their migration, which tells its drain.
STALL_SIGNAL = "transfer_stall"
# Workflows started by a worker that did not publish stalls replay without those commands.
STALL_PATCH = "publish-stalls"
# phases after which no transfer of the workflow is waited on
_SETTLED = {Phase.DONE, Phase.ROLLING_BACK, Phase.ROLLED_BACK}

R = TypeVar("R")


def waiting_for(slice_: TransferProgress, receivers: list[int]) -> str:
    """What a stalled transfer waits for, as plainly as the receivers' answers allow."""
    if slice_.unreachable:
        return f"nodes {slice_.unreachable} do not answer"
    if slice_.awaiting_snapshot:
        return (
            f"nodes {slice_.awaiting_snapshot} await their snapshot from the coordinator "
            "(is it down, or throttled?)"
        )
    behind = ", ".join(f"{n} seqs from node {o}" for o, n in sorted(slice_.behind.items()))
    return f"nodes {receivers} apply nothing new" + (
        f"; still to apply: {behind}" if behind else ""
    )


def region_workflow_id(region: int) -> str:
    """One membership change per region at a time: every kind of change uses this id."""
    return f"air-region-{region}"


@dataclass(frozen=True)
class Options:
    """Timeouts and retries for one kind of activity."""

    start_to_close: timedelta
    schedule_to_close: timedelta | None = None
    heartbeat: timedelta | None = None
    max_interval: timedelta = timedelta(seconds=5)
    # Run inside the workflow task, without a round trip through the server: for quick steps.
    local: bool = False


# Activities that wait heartbeat; one whose worker died is retried after this long.
HEARTBEAT = timedelta(seconds=5)
# A membership RPC: quick, so a local activity; retried while nodes are unreachable, for at
# most ten minutes.
MEMBERSHIP = Options(timedelta(seconds=30), schedule_to_close=timedelta(minutes=10), local=True)
# Describing the region, which each workflow plans from: a regular activity, so the result is in
# history before the first side effect. A local activity's result is recorded only when its
# workflow task completes, and the quick steps after it run in that same task: a worker dying in
# one of them made the retried task describe the region again, already changed by those steps,
# and plan from that (the retried addition refused its own new peer as "already a peer").
DESCRIBE = Options(timedelta(seconds=30), schedule_to_close=timedelta(minutes=10))
# A wait slice: heartbeats, so a dead worker's slice is retried within seconds.
WAIT = Options(timedelta(seconds=60), heartbeat=HEARTBEAT)
# Cleanup after a failure: retried until done, however long a node stays away.
ROLLBACK = Options(timedelta(seconds=60), heartbeat=HEARTBEAT, max_interval=timedelta(seconds=30))


def skippable(down_timeout_s: float) -> Options:
    """A step on a node that may be down: it waits `down_timeout_s`, then skips it."""
    return Options(timedelta(seconds=down_timeout_s + 60), heartbeat=HEARTBEAT)


def root_cause(error: BaseException) -> str:
    """The innermost cause's message: what went wrong, under the layers that carried it."""
    while (inner := getattr(error, "cause", None) or error.__cause__) is not None:
        error = inner
    return getattr(error, "message", None) or str(error) or type(error).__name__


def invalid(message: str) -> ApplicationError:
    """Bad input: fail at once, change nothing."""
    return ApplicationError(message, type="InvalidRequest", non_retryable=True)


def require_node(description: RegionDescription, node_id: int, role: str) -> Peer:
    node = description.node(node_id)
    if node is None:
        known = ", ".join(str(n.node_id) for n in description.known_nodes) or "none"
        raise invalid(f"{role} node {node_id} is not in the cluster (known nodes: {known})")
    return node


def region_peers(description: RegionDescription) -> list[Peer]:
    """The region's peer list, as its holders know it (their union, by node id)."""
    if not description.replicas:
        unreachable = description.unreachable
        hint = f" (unreachable nodes: {unreachable})" if unreachable else ""
        raise invalid(f"region {description.region} does not exist on any known node{hint}")
    peers: dict[int, Peer] = {}
    for replica in description.replicas:
        for p in replica.peers:
            peers.setdefault(p.node_id, p)
    return [peers[i] for i in sorted(peers)]


async def execute(
    activity: Callable[[Any, Any], Awaitable[R]], arg: Any, summary: str, options: Options
) -> R:
    """Run one step's activity (a local one for quick steps) with its kind's timeouts."""
    retry = RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        maximum_interval=options.max_interval,
        non_retryable_error_types=["NodeRefused", "InvalidRequest"],
    )
    if options.local:
        local: R = await workflow.execute_local_activity_method(
            activity,
            arg,
            summary=summary,
            start_to_close_timeout=options.start_to_close,
            schedule_to_close_timeout=options.schedule_to_close,
            retry_policy=retry,
        )
        return local
    result: R = await workflow.execute_activity_method(
        activity,
        arg,
        summary=summary,
        start_to_close_timeout=options.start_to_close,
        schedule_to_close_timeout=options.schedule_to_close,
        heartbeat_timeout=options.heartbeat,
        retry_policy=retry,
    )
    return result


async def child(run: Callable[[Any, Any], Awaitable[R]], arg: Any, workflow_id: str) -> R:
    """Run a child membership workflow (a migration's step, a drain's move).

    Closing the parent, even by termination, cancels the child instead of terminating it, so
    a move is never left half made: it rolls back, or finishes once its removal has begun.
    """
    result: R = await workflow.execute_child_workflow(
        run,
        arg,
        id=workflow_id,
        task_timeout=WORKFLOW_TASK_TIMEOUT,
        parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
    )
    return result


class MembershipWorkflow:
    """Base of the three workflows: progress, phases, and one-line steps."""

    kind: ClassVar[str]

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self.stall_after_s = 60.0  # a transfer whose lag is flat this long is reported stalled

    @workflow.query
    def progress(self) -> Progress:
        if self._progress is None:
            raise ApplicationError("the workflow has not started yet")
        return self._progress

    def begin(self, region: int, nodes: list[int]) -> Progress:
        self._progress = Progress(kind=self.kind, region=region, nodes=nodes)
        self.publish(
            [
                REGION_KEY.value_set(region),
                NODES_KEY.value_set([str(n) for n in nodes]),
                KIND_KEY.value_set(self.kind),
                PHASE_KEY.value_set(Phase.VALIDATING.value),
            ]
        )
        self.show()
        return self._progress

    def enter(self, phase: Phase, message: str = "") -> None:
        progress = self.progress()
        if phase != progress.phase:
            progress.phase = phase
            progress.message = ""  # a message is about its phase; a repeated step keeps it
            self.publish([PHASE_KEY.value_set(phase.value)])
        if message:
            progress.message = message
        if phase in _SETTLED and self.set_stalled(False):
            # a failed wait leaves no stale stall behind, in visibility or in the metric
            self.publish_metric("air_transfer_stalled", 0)
        self.show()

    def set_stalled(self, stalled: bool) -> bool:
        """Record the stall state; the search attribute is upserted only when it changes."""
        progress = self.progress()
        if progress.stalled == stalled:
            return False
        progress.stalled = stalled
        self.publish_stall(stalled)
        return True

    async def relay_stall(self, report: StallReport) -> None:
        """A child's stall report: shown here, and passed on to this workflow's parent."""
        if self._progress is None or not self.set_stalled(report.stalled):
            return
        progress = self.progress()
        if report.stalled:
            progress.message = report.detail
        elif progress.message.startswith("STALLED"):
            progress.message = ""
        self.show()
        await self.report_stall(report)

    # The ways the steps touch Temporal; bench/migrate.py runs them without it.

    def publish(self, updates: Sequence[SearchAttributeUpdate[Any]]) -> None:
        workflow.upsert_search_attributes(updates)

    def publish_details(self, details: str) -> None:
        workflow.set_current_details(details)

    def now(self) -> float:
        return workflow.time()

    async def run_activity(
        self, activity: Callable[[Any, Any], Awaitable[R]], arg: Any, summary: str, options: Options
    ) -> R:
        return await execute(activity, arg, summary, options)

    def publish_stall(self, stalled: bool) -> None:
        if workflow.patched(STALL_PATCH):
            self.publish([STALLED_KEY.value_set(stalled)])

    async def report_stall(self, report: StallReport) -> None:
        """Tell the parent workflow, if any, that a transfer stalled or moves again."""
        parent = workflow.info().parent
        if parent is None or not workflow.patched(STALL_PATCH):
            return
        handle = workflow.get_external_workflow_handle(parent.workflow_id, run_id=parent.run_id)
        try:
            await handle.signal(STALL_SIGNAL, report)
        except FailureError as e:  # the parent is gone: a report must not fail the change
            workflow.logger.warning("could not report a stall to %s: %s", parent.workflow_id, e)

    def show(self) -> None:
        """The UI's current details: phase, lag and rate, in Markdown."""
        p = self.progress()
        lines = [f"**{p.kind}** region {p.region}, nodes {p.nodes}", f"phase: **{p.phase}**"]
        if p.lag is not None:
            rate = f", {p.rate:.0f} seqs/s" if p.rate else ""
            lines.append(f"lag: {p.lag} seqs{rate}")
        if p.message:
            lines.append(p.message)
        self.publish_details("\n\n".join(lines))

    def report_transfer(self, slice_: TransferProgress, ids: list[int], flat_s: float) -> bool:
        """Lag and rate into the progress; a lag flat for `stall_after_s` is a stall.

        Returns whether the stall state changed.
        """
        progress = self.progress()
        progress.lag, progress.rate = slice_.lag, slice_.rate
        changed = self.set_stalled(not slice_.complete and flat_s >= self.stall_after_s)
        if progress.stalled:
            waiting = waiting_for(slice_, ids)
            progress.message = (
                f"STALLED: the lag of {slice_.lag} seqs has not shrunk for {flat_s:.0f}s; {waiting}"
            )
        elif progress.message.startswith("STALLED"):
            progress.message = ""
        self.publish_metric("air_transfer_stalled", int(progress.stalled))
        self.show()
        return changed

    def publish_metric(self, name: str, value: int) -> None:
        gauge = workflow.metric_meter().create_gauge(name, "1 while a transfer is stalled")
        gauge.set(value, {"region": str(self.progress().region), "kind": self.kind})

    async def step(
        self,
        phase: Phase,
        activity: Callable[[Any, Any], Awaitable[R]],
        arg: Any,
        summary: str,
        options: Options = MEMBERSHIP,
    ) -> R:
        """One step: enter its phase, run its activity (shown with `summary` in the UI)."""
        self.enter(phase)
        result = await self.run_activity(activity, arg, summary, options)
        self.progress().steps_done.append(summary)
        return result

    async def wait_transfer(
        self, phase: Phase, receivers: list[Peer], target: dict[int, int], down_timeout_s: float
    ) -> None:
        """Wait, slice by slice, until `receivers` have applied `target`, showing lag and rate.

        A receiver unreachable for `down_timeout_s` (workflow time, so it survives any crash)
        fails the wait: an unreachable peer never counts as complete.
        """
        ids = [r.node_id for r in receivers]
        down_since: timedelta | None = None
        best: tuple[int, timedelta] | None = None  # the smallest lag seen, and when
        slice_s = min(5.0, max(0.5, self.stall_after_s / 2))
        while True:
            slice_ = await self.step(
                phase,
                MembershipActivities.wait_transfer_complete,
                WaitTransferInput(
                    region=self.progress().region,
                    receivers=receivers,
                    target=target,
                    slice_s=slice_s,
                ),
                f"wait until nodes {ids} applied {target}",
                WAIT,
            )
            now = timedelta(seconds=self.now())
            if best is None or slice_.lag < best[0]:
                best = (slice_.lag, now)
            if self.report_transfer(slice_, ids, (now - best[1]).total_seconds()):
                progress = self.progress()
                await self.report_stall(
                    StallReport(
                        region=progress.region, stalled=progress.stalled, detail=progress.message
                    )
                )
            if slice_.complete:
                return
            down_since = (down_since or now) if slice_.unreachable else None
            if down_since is not None and now - down_since > timedelta(seconds=down_timeout_s):
                raise ApplicationError(
                    f"nodes {slice_.unreachable} unreachable for over {down_timeout_s:.0f}s "
                    "while waiting for the transfer",
                    type="NodeDown",
                    non_retryable=True,
                )
