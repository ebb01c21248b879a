"""airctl check: compare the replicas of regions, once (`--wait` for the verdict) or on a
Temporal Schedule (`--every 24h`, `--every off`).

Exit status with --wait: 0 every replica checked is equal, 1 a region diverged, 3 some region
could not be checked (a node down), 2 an error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowHandle,
)
from temporalio.service import RPCError, RPCStatusCode

from airctl.args import Commands, duration, positive
from airctl.config import parse_ids
from airctl.context import Ctl
from airctl.progress import follow
from client.starter import start_check
from contracts.check import DEFAULT_CPU_SHARE, DEFAULT_RATE_MB_S, CheckInput, CheckProgress
from contracts.errors import UserError
from contracts.ids import CHECK_SCHEDULE_ID, check_workflow_id
from workflows.check import CheckReplicasWorkflow

EQUAL, DIVERGED, ERROR, UNCHECKED = 0, 1, 2, 3


def register(sub: Commands) -> None:
    """The command's arguments, beside its handler."""
    p: argparse.ArgumentParser = sub.add_parser(
        "check", help="compare the replicas of regions: equal, or which one differs"
    )
    p.add_argument("regions", nargs="?", help="regions to check, e.g. 1,2,3")
    p.add_argument("--all", action="store_true", help="every region of the cluster")
    p.add_argument(
        "--rate",
        type=positive,
        default=DEFAULT_RATE_MB_S,
        metavar="MB_PER_S",
        help=f"store read per node per second (default {DEFAULT_RATE_MB_S:g})",
    )
    p.add_argument(
        "--cpu",
        type=positive,
        default=DEFAULT_CPU_SHARE,
        metavar="CORES",
        help="CPU per node, as a share of one core; 1 or more: no CPU bound "
        f"(default {DEFAULT_CPU_SHARE:g})",
    )
    p.add_argument(
        "--repair", action="store_true", help="reconstruct a replica that differs from a majority"
    )
    p.add_argument("--wait", action="store_true", help="show progress and wait for the verdict")
    p.add_argument(
        "--every",
        metavar="DURATION",
        help=f"check on a schedule ({CHECK_SCHEDULE_ID}), e.g. 24h, 30m; `off` removes it",
    )
    p.set_defaults(handler=cmd_check)


async def cmd_check(ctl: Ctl) -> int:
    args = ctl.args
    if args.every == "off":
        return await _unschedule(ctl)
    request = _request(args)
    interval = duration(args.every, "--every", "(or off)") if args.every is not None else None
    client = await ctl.temporal()
    if interval is not None:
        return await _schedule(ctl, client, request, interval)
    handle = await start_check(
        client, request, check_workflow_id(uuid.uuid4().hex[:8]), ctl.config.task_queue
    )
    url = ctl.workflow_url(handle.id)
    if not args.wait:
        ctl.emit({"workflow_id": handle.id, "ui": url}, f"started {handle.id}\n{url}")
        return 0
    result = await _follow(ctl, handle)
    return _verdict(ctl, handle.id, result)


def _request(args: argparse.Namespace) -> CheckInput:
    if args.all == bool(args.regions):
        raise UserError("name the regions to check (e.g. 1,2,3) or --all, one of the two")
    regions = parse_ids(args.regions, "regions") if args.regions else []
    return CheckInput(regions=regions, rate_mb_s=args.rate, cpu_share=args.cpu, repair=args.repair)


async def _follow(
    ctl: Ctl, handle: WorkflowHandle[CheckReplicasWorkflow, CheckProgress]
) -> CheckProgress:
    """Wait for the result, showing how far the check is on stderr (a terminal's one line)."""
    task = asyncio.ensure_future(handle.result())
    shown = ""

    async def finished() -> bool:
        """Waits up to a second for the result itself: the verdict comes as soon as it does."""
        await asyncio.wait([task], timeout=1.0)
        return task.done()

    async def read() -> CheckProgress | None:
        """Off a terminal, or once the verdict is in, nothing to show."""
        if task.done() or not sys.stderr.isatty():
            return None
        return await handle.query(CheckReplicasWorkflow.progress)

    async def show(p: CheckProgress) -> None:
        nonlocal shown
        line = f"checked {p.checked} of {p.total} regions ({len(p.diverged)} diverged)"
        if line != shown:
            print(f"\r{line}", end="", file=sys.stderr, flush=True)
            shown = line

    await follow(finished, read, show, interval=0)
    if shown:
        print(file=sys.stderr)
    return await task


def _verdict(ctl: Ctl, workflow_id: str, p: CheckProgress) -> int:
    code = DIVERGED if p.diverged else UNCHECKED if p.unchecked else EQUAL
    lines = [f.line() for f in [*p.diverged, *p.unchecked]]
    lines.append(
        f"{p.checked} region(s) checked: {p.equal} equal, {len(p.diverged)} diverged, "
        f"{len(p.unchecked)} not checked ({workflow_id})"
    )
    ctl.emit({"workflow_id": workflow_id, **p.model_dump(mode="json")}, "\n".join(lines))
    return code


async def _schedule(ctl: Ctl, client: Client, request: CheckInput, interval: timedelta) -> int:
    """Create the schedule, or give the existing one this interval and request."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            CheckReplicasWorkflow.run,
            request,
            id=CHECK_SCHEDULE_ID,
            task_queue=ctl.config.task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),  # never two at once
    )
    try:
        await client.create_schedule(CHECK_SCHEDULE_ID, schedule)
        what = "created"
    except ScheduleAlreadyRunningError:

        def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(CHECK_SCHEDULE_ID).update(update)
        what = "changed"
    data = {"schedule": CHECK_SCHEDULE_ID, "every_s": interval.total_seconds(), "what": what}
    ctl.emit(data, f"schedule {CHECK_SCHEDULE_ID} {what}: a check every {interval}")
    return 0


async def _unschedule(ctl: Ctl) -> int:
    client = await ctl.temporal()
    try:
        await client.get_schedule_handle(CHECK_SCHEDULE_ID).delete()
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            raise
        ctl.emit({"schedule": CHECK_SCHEDULE_ID, "what": "none"}, "no check was scheduled")
        return 0
    ctl.emit({"schedule": CHECK_SCHEDULE_ID, "what": "removed"}, "scheduled check removed")
    return 0
