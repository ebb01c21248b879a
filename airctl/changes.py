"""Commands on membership changes: migrate (one region or many), add-peer, remove-peer, status,
cancel (one or all), and the list of every change."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.types import MethodAsyncSingleParam

from airctl.args import Commands, allow_less_diverse
from airctl.config import parse_ids
from airctl.context import Ctl
from airctl.outcome import ChangeResult, wait_result
from airctl.progress import (
    NO_ANSWER,
    OPERATIONS,
    follow_change,
    live_progress,
    operation_state,
    snapshot,
)
from client.starter import Change, ChangeIn, RegionBusy, RequestRefused, Started, start_change
from client.status import running, workflow_status
from contracts.errors import UserError, root_cause
from contracts.ids import region_workflow_id
from contracts.models import (
    AddPeerInput,
    MigrationInput,
    MigrationResult,
    Phase,
    ReconstructInput,
    RemovePeerInput,
)
from contracts.search_attributes import NODES_KEY, PHASE_KEY, REGION_KEY, STALLED_KEY
from workflows.add_peer import AddPeerWorkflow
from workflows.drain import DrainNodeWorkflow
from workflows.migration import RegionMigrationWorkflow
from workflows.rebalance import RebalanceWorkflow
from workflows.reconstruct import ReconstructRegionWorkflow
from workflows.remove_peer import RemovePeerWorkflow
from workflows.repair import RepairNodeWorkflow

TYPES = [
    w.__name__
    for w in (
        RegionMigrationWorkflow,
        AddPeerWorkflow,
        RemovePeerWorkflow,
        DrainNodeWorkflow,
        RebalanceWorkflow,
        RepairNodeWorkflow,
        ReconstructRegionWorkflow,
    )
]

W = TypeVar("W")  # a workflow class
R = TypeVar("R")  # its result
Result = TypeVar("Result", bound=ChangeResult)

MEMBERSHIP_QUERY = "WorkflowType IN (" + ", ".join(f"'{t}'" for t in TYPES) + ")"


async def start(starting: Awaitable[Started[W, R]]) -> Started[W, R]:
    """A started workflow, or the reason it was refused as the one-line error."""
    try:
        return await starting
    except (RegionBusy, RequestRefused) as e:
        raise UserError(str(e)) from e


async def start_and_maybe_wait(
    ctl: Ctl, run: MethodAsyncSingleParam[Change, ChangeIn, Result], request: ChangeIn
) -> int:
    client = await ctl.temporal()
    started = await start(start_change(client, run, request, ctl.config.task_queue))
    if not ctl.args.wait:
        ctl.emit_started(started)
        return 0
    if not ctl.json:
        print(f"started {started.handle.id}: {ctl.plan_text(started)}", file=sys.stderr)
    return await wait_result(ctl, client, started.handle, follow_change)


async def cmd_migrate(ctl: Ctl) -> int:
    a = ctl.args
    ctl.config.node(a.from_node), ctl.config.node(a.to_node)
    regions = parse_ids(a.regions, "regions")
    if len(regions) > 1:
        return await migrate_many(ctl, regions, a.from_node, a.to_node)
    request = MigrationInput(
        region=regions[0],
        from_node=a.from_node,
        to_node=a.to_node,
        allow_less_diverse=a.allow_less_diverse,
    )
    return await start_and_maybe_wait(ctl, RegionMigrationWorkflow.run, request)


async def cmd_add_peer(ctl: Ctl) -> int:
    ctl.config.node(ctl.args.node)
    request = AddPeerInput(
        region=ctl.args.region,
        new_peer=ctl.args.node,
        allow_less_diverse=ctl.args.allow_less_diverse,
    )
    return await start_and_maybe_wait(ctl, AddPeerWorkflow.run, request)


async def cmd_remove_peer(ctl: Ctl) -> int:
    ctl.config.node(ctl.args.node)
    request = RemovePeerInput(region=ctl.args.region, peer=ctl.args.node)
    return await start_and_maybe_wait(ctl, RemovePeerWorkflow.run, request)


async def cmd_reconstruct(ctl: Ctl) -> int:
    ctl.config.node(ctl.args.node)
    request = ReconstructInput(region=ctl.args.region, node=ctl.args.node)
    return await start_and_maybe_wait(ctl, ReconstructRegionWorkflow.run, request)


async def cmd_status(ctl: Ctl) -> int:
    client = await ctl.temporal()
    workflow_id = ctl.args.workflow_id or region_workflow_id(_required_region(ctl))
    handle = client.get_workflow_handle(workflow_id)
    try:
        described = await handle.describe()
    except Exception as e:
        raise UserError(f"no workflow {workflow_id}") from e
    ended = described.status
    if ctl.args.wait and ended == WorkflowExecutionStatus.RUNNING:
        if not ctl.json:
            await follow_change(client, handle)
        ended, _ = await _closed(handle)
    status = ended.name if ended else "UNKNOWN"
    progress = await snapshot(client, handle)
    data = {
        "workflow_id": workflow_id,
        "type": described.workflow_type,
        "status": status,
        "progress": progress.model_dump(mode="json") if progress else None,
        "ui": ctl.workflow_url(workflow_id),
    }
    text = f"{workflow_id} {described.workflow_type} {status}"
    if progress is not None:
        text += f" phase {progress.phase.value}; {progress.message}".rstrip("; ")
    ctl.emit(data, text + f"\n{data['ui']}")
    failed = ctl.args.wait and ended != WorkflowExecutionStatus.COMPLETED
    return 1 if failed else 0


def _required_region(ctl: Ctl) -> int:
    if ctl.args.region is None:
        raise UserError("status needs a workflow id or --region R")
    return int(ctl.args.region)


async def cmd_cancel(ctl: Ctl) -> int:
    if ctl.args.all:
        return await cancel_all(ctl)
    if ctl.args.region is None:
        raise UserError("cancel needs a region or --all")
    client = await ctl.temporal()
    handle = client.get_workflow_handle(region_workflow_id(ctl.args.region))
    try:
        is_running = await running(handle)
    except Exception:  # Temporal refusing to describe it: nothing airctl could cancel runs
        is_running = False
    if not is_running:
        raise UserError(f"no membership change of region {ctl.args.region} is running")
    await handle.cancel()
    ctl.emit(
        {"workflow_id": handle.id, "cancel_requested": True}, f"cancel requested for {handle.id}"
    )
    return 0


async def migrate_many(ctl: Ctl, regions: list[int], from_node: int, to_node: int) -> int:
    """Start a migration per region (a busy one is reported, the others go on); with --wait,
    wait for all and report each."""
    client = await ctl.temporal()
    started: dict[int, WorkflowHandle[RegionMigrationWorkflow, MigrationResult]] = {}
    report: dict[str, Any] = {}
    for region in regions:
        request = MigrationInput(
            region=region,
            from_node=from_node,
            to_node=to_node,
            allow_less_diverse=ctl.args.allow_less_diverse,
        )
        try:
            run = RegionMigrationWorkflow.run
            change = await start(start_change(client, run, request, ctl.config.task_queue))
            started[region] = change.handle
            report[str(region)] = {"workflow_id": change.handle.id, "started": True}
        except UserError as e:
            report[str(region)] = {"started": False, "error": str(e)}
    if ctl.args.wait:
        outcomes = await asyncio.gather(*(_outcome(h) for h in started.values()))
        for region, outcome in zip(started, outcomes, strict=True):
            report[str(region)].update(outcome)
    lines = [f"region {r}: {_describe(v)}" for r, v in report.items()]
    ctl.emit(report, "\n".join(lines))
    return 0 if all(v.get("ok", v["started"]) for v in report.values()) else 1


async def _outcome(
    handle: WorkflowHandle[RegionMigrationWorkflow, MigrationResult],
) -> dict[str, Any]:
    try:
        result = await handle.result()
    except WorkflowFailureError as e:
        return {"ok": False, "error": root_cause(e)}
    return {"ok": True, "message": result.message}


def _describe(entry: dict[str, Any]) -> str:
    if not entry["started"] or entry.get("ok") is False:
        return f"FAILED: {entry['error']}"
    return entry.get("message") or f"started {entry['workflow_id']}"


async def cmd_migrations(ctl: Ctl) -> int:
    """Every membership change Temporal knows, running and finished, newest first."""
    client = await ctl.temporal()
    query = MEMBERSHIP_QUERY + (" AND ExecutionStatus = 'Running'" if ctl.args.running else "")
    rows: list[dict[str, Any]] = []
    async for w in client.list_workflows(query):
        attrs = w.typed_search_attributes
        closed = w.close_time or datetime.now(w.start_time.tzinfo)
        status = w.status.name if w.status else "UNKNOWN"
        rows.append(
            {
                "workflow_id": w.id,
                "type": w.workflow_type,
                "status": status,
                "region": attrs.get(REGION_KEY),
                "phase": attrs.get(PHASE_KEY),
                "nodes": list(attrs.get(NODES_KEY) or []),
                "started": w.start_time.isoformat(),
                "duration_s": round((closed - w.start_time).total_seconds(), 2),
                "progress": _outcome_text(status, attrs.get(PHASE_KEY)),
                "stalled": bool(attrs.get(STALLED_KEY)),
            }
        )
    live = [r for r in rows if r["status"] == "RUNNING"]
    for row, (progress, stalled) in zip(
        live,
        await asyncio.gather(*(live_progress(client, r["workflow_id"], r["type"]) for r in live)),
        strict=True,
    ):
        row["progress"] = progress
        row["stalled"] = row["stalled"] if stalled is None else stalled
    columns = ["workflow", "type", "status", "region", "started", "phase", "nodes", "s", "progress"]
    ctl.emit_table(
        rows,
        "\n".join(map(_migration_line, rows)) or "no membership changes",
        "membership changes, newest first",
        columns,
        [_migration_cells(r) for r in rows],
    )
    return 0


def _migration_cells(r: dict[str, Any]) -> list[str]:
    """id, type, status, region, start (local time), phase, nodes, seconds, progress."""
    started = datetime.fromisoformat(r["started"]).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return [
        r["workflow_id"],
        r["type"],
        r["status"],
        "-" if r["region"] is None else str(r["region"]),
        started,
        r["phase"] or "",
        ",".join(r["nodes"]),
        f"{r['duration_s']:.2f}",
        ("STALLED " if r["stalled"] else "") + r["progress"],
    ]


def _migration_line(r: dict[str, Any]) -> str:
    """One aligned line of the same."""
    c = _migration_cells(r)
    return (
        f"{c[0]:<22} {c[1]:<24} {c[2]:<10} region {c[3]:<5} started {c[4]}  {c[5]:<26} "
        f"nodes {c[6]:<8} {c[7]:>8}s  {c[8]}"
    )


def _outcome_text(status: str, phase: str | None) -> str:
    if status == "COMPLETED":
        return "done"
    return status.lower() + (", rolled back" if phase == Phase.ROLLED_BACK else "")


async def cancel_all(ctl: Ctl) -> int:
    """Cancel every running change; each rolls back or finishes as its phase requires.

    A child (an operation's move, a check's reconstruction) is left to its parent, whose
    cancellation reaches it. Each report waits at most --timeout seconds.
    """
    client = await ctl.temporal()
    query = MEMBERSHIP_QUERY + " AND ExecutionStatus = 'Running'"
    changes = [w async for w in client.list_workflows(query) if w.parent_id is None]
    outcomes = await asyncio.gather(*(_cancel(client, w, ctl.args.timeout) for w in changes))
    report = dict(zip((w.id for w in changes), outcomes, strict=True))
    ctl.emit(report, "\n".join(f"{i}: {o}" for i, o in report.items()) or "nothing was running")
    return 0


async def _cancel(client: Client, change: WorkflowExecution, timeout: float) -> str:
    """Cancel one change and say how it ended."""
    handle = client.get_workflow_handle(change.id, run_id=change.run_id)
    try:
        await handle.cancel()
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:  # it ended between the list and the cancel
            return "already finished"
        return f"not cancelled: {e.message}"
    try:
        status, result = await asyncio.wait_for(_closed(handle), timeout)
    except TimeoutError:
        return f"cancel requested; still running after {timeout:g}s"
    if change.workflow_type in OPERATIONS:
        return f"{_ended(status)}: {await _drain_tally(client, handle)}"
    if status == WorkflowExecutionStatus.CANCELED:
        return "cancelled: rolled back to the cluster as it was"
    message = result.get("message") if isinstance(result, dict) else None
    return _ended(status) + (f": {message}" if message else "")


async def _closed(
    handle: WorkflowHandle[Any, Any],
) -> tuple[WorkflowExecutionStatus | None, Any]:
    """The status a workflow closed with, and its result (a plain dict) if it completed."""
    try:
        result = await handle.result()
    except WorkflowFailureError:
        return await workflow_status(handle), None
    return WorkflowExecutionStatus.COMPLETED, result


def _ended(status: WorkflowExecutionStatus | None) -> str:
    if status == WorkflowExecutionStatus.CANCELED:
        return "cancelled"
    if status == WorkflowExecutionStatus.COMPLETED:
        return "finished anyway"
    return f"ended {status.name if status else 'UNKNOWN'}"


async def _drain_tally(client: Client, handle: WorkflowHandle[Any, Any]) -> str:
    """A closed operation's moves: the finished ones stay moved; the cancelled ones rolled
    back."""
    state = await operation_state(handle)
    if state is None:
        return f"its moves are {NO_ANSWER}"
    rolled_back = [r for r in state.failed if await _cancelled(client, region_workflow_id(r))]
    unstarted = len(state.planned) - len(state.done) - len(state.failed)
    return (
        f"{len(state.done)} moved (they stay moved), {len(rolled_back)} rolled back, "
        f"{len(state.failed) - len(rolled_back)} failed"
        + (f", {unstarted} not started" if unstarted else "")
    )


async def _cancelled(client: Client, workflow_id: str) -> bool:
    try:
        status = await workflow_status(client.get_workflow_handle(workflow_id))
    except RPCError:  # Temporal refusing to describe it: not known rolled back, so failed
        return False
    return status == WorkflowExecutionStatus.CANCELED


# -- arguments --------------------------------------------------------------------------------


def register(sub: Commands) -> None:
    """Membership changes of one region: start, follow, cancel, list."""
    migrate = sub.add_parser("migrate", help="move a replica from one node to another")
    migrate.add_argument("regions", help="a region id, or several: 1,2,3")
    migrate.add_argument("--from", dest="from_node", type=int, required=True)
    migrate.add_argument("--to", dest="to_node", type=int, required=True)
    migrate.add_argument("--wait", action="store_true", help="show progress until done")
    allow_less_diverse(migrate)
    migrate.set_defaults(handler=cmd_migrate)
    one_node = {
        "add-peer": ("add a peer to a region", cmd_add_peer),
        "remove-peer": ("remove a peer from a region", cmd_remove_peer),
        "reconstruct": (
            "rebuild a node's replica of a region from the other replicas",
            cmd_reconstruct,
        ),
    }
    for name, (help, handler) in one_node.items():
        c = sub.add_parser(name, help=help)
        c.add_argument("region", type=int)
        c.add_argument("--node", type=int, required=True)
        c.add_argument("--wait", action="store_true", help="show progress until done")
        if name == "add-peer":
            allow_less_diverse(c)
        c.set_defaults(handler=handler)
    status = sub.add_parser("status", help="a membership change's state")
    status.add_argument("workflow_id", nargs="?")
    status.add_argument("--region", type=int)
    status.add_argument(
        "--wait",
        action="store_true",
        help="show progress until it ends; exit 1 unless it completed",
    )
    status.set_defaults(handler=cmd_status)
    cancel = sub.add_parser("cancel", help="cancel the running change of a region, or all")
    cancel.add_argument("region", type=int, nargs="?")
    cancel.add_argument("--all", action="store_true", help="every running membership change")
    cancel.add_argument(
        "--timeout", type=float, default=120, help="seconds --all waits for each to end"
    )
    cancel.set_defaults(handler=cmd_cancel)
    migrations = sub.add_parser("migrations", help="every membership change, newest first")
    migrations.add_argument("--running", action="store_true", help="only the running ones")
    migrations.set_defaults(handler=cmd_migrations)
