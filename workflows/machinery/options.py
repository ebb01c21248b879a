"""How a workflow runs its activities and children: timeouts, retries, local or regular."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

from contracts.errors import INVALID_REQUEST, NODE_REFUSED

R = TypeVar("R")

# A workflow task whose worker died is retried after this long (the server's default is 10 s);
# quick steps run inside workflow tasks as local activities, so this bounds their recovery.
WORKFLOW_TASK_TIMEOUT = timedelta(seconds=5)
# Regular activities heartbeat; one whose worker died is retried after this long.
HEARTBEAT = timedelta(seconds=5)


@dataclass(frozen=True)
class Options:
    """Timeouts and retries for one kind of activity."""

    start_to_close: timedelta
    schedule_to_close: timedelta | None = None
    heartbeat: timedelta | None = None
    max_interval: timedelta = timedelta(seconds=5)
    # Run inside the workflow task, without a round trip through the server: for quick steps.
    local: bool = False
    # Try it as a local activity that gives up rather than wait (`quick=True` in its input),
    # and only if it must wait, run it as this regular, heartbeating activity.
    quick_first: bool = False
    maximum_attempts: int = 0  # 0: retried until a timeout ends it


# A membership RPC: quick, so a local activity; retried while nodes are unreachable, for at
# most ten minutes.
MEMBERSHIP = Options(timedelta(seconds=30), schedule_to_close=timedelta(minutes=10), local=True)
# An attempt of a quick regular activity: the nodes' RPCs it makes at once have a 10 s
# deadline. It heartbeats as every regular activity does (activities/keep_alive.py), so a
# worker that dies holding it is known within HEARTBEAT, not only once the attempt times out.
ATTEMPT = timedelta(seconds=15)
# Describing the cluster, which an operation or a check plans from: a regular activity, so the
# result is in history before the first side effect. A local activity's result is recorded only
# when its workflow task completes, and the steps after it run in that same task: a worker dying
# in one of them makes the retried task describe again what those steps already changed, and
# plan from that.
DESCRIBE = Options(ATTEMPT, schedule_to_close=timedelta(minutes=10), heartbeat=HEARTBEAT)
# Describing the region, which a membership change plans from: a local activity, whose first
# side effect after it is a regular activity (BOUNDARY) that cannot start before the task that
# described and planned has completed; so the description is in history first, for one round
# trip less than DESCRIBE.
LOCAL_DESCRIBE = Options(timedelta(seconds=30), schedule_to_close=timedelta(minutes=10), local=True)
# A membership step that must start in a workflow task of its own: a regular activity starts
# only once the task before it completed, with every local activity of that task in history.
# A worker dying after it re-runs none of them against a region this step changed. (A timer
# would do the same, but the dev server fires timers up to a second late.)
BOUNDARY = Options(ATTEMPT, schedule_to_close=timedelta(minutes=10), heartbeat=HEARTBEAT)
# A wait slice: heartbeats, so a dead worker's slice is retried within seconds.
WAIT = Options(timedelta(seconds=60), heartbeat=HEARTBEAT)
# The first slice is a quick try, inside the workflow task: an empty or small region is done.
FIRST_WAIT = Options(timedelta(seconds=60), heartbeat=HEARTBEAT, quick_first=True)
# Survivors taking a dead peer's writes from each other: nothing to do in the common case (a
# quick try); else a heartbeating activity as long as the nodes answer (it gives up by itself
# on a node down for the step's down_timeout_s).
CATCH_UP = Options(timedelta(minutes=60), heartbeat=HEARTBEAT, quick_first=True)
# Cleanup after a failure: retried until done, however long a node stays away.
ROLLBACK = Options(timedelta(seconds=60), heartbeat=HEARTBEAT, max_interval=timedelta(seconds=30))
# A region's consistency check: reads at a bounded rate, heartbeating each range; a retry goes
# on from the last range heartbeated, and one that finds a node down reports it unchecked.
CHECK = Options(timedelta(hours=1), schedule_to_close=timedelta(hours=3), heartbeat=HEARTBEAT)
# How long a quick try waits for a node before it leaves the step to the regular activity.
QUICK_TRY = Options(timedelta(seconds=10), local=True, maximum_attempts=1)


def within(options: Options, seconds: float) -> Options:
    """`options`, given up after `seconds` however often retried: a step on a new peer that
    stays unreachable that long fails, and its addition rolls back."""
    limit = timedelta(seconds=seconds)
    return replace(
        options, schedule_to_close=limit, start_to_close=min(options.start_to_close, limit)
    )


def skippable(down_timeout_s: float) -> Options:
    """A step on a node that may be down: it waits `down_timeout_s`, then skips it."""
    return Options(timedelta(seconds=down_timeout_s + 60), heartbeat=HEARTBEAT, quick_first=True)


async def execute(
    activity: Callable[[Any, Any], Awaitable[R]], arg: Any, summary: str, options: Options
) -> R:
    """Run one step's activity (a local one for quick steps) with its kind's timeouts."""
    retry = RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        maximum_interval=options.max_interval,
        non_retryable_error_types=[NODE_REFUSED, INVALID_REQUEST],
        maximum_attempts=options.maximum_attempts,
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


async def child(
    run: Callable[[Any, Any], Awaitable[R]], arg: Any, workflow_id: str, summary: str | None = None
) -> R:
    """Run a child workflow (an operation's move; a check's reconstruction).

    Closing the parent, even by termination, cancels the child instead of terminating it, so
    a move is never left half made: it rolls back, or finishes once its removal has begun.
    """
    result: R = await workflow.execute_child_workflow(
        run,
        arg,
        id=workflow_id,
        task_timeout=WORKFLOW_TASK_TIMEOUT,
        parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
        static_summary=summary,
    )
    return result
