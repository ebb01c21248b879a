"""Operating many changes at once: a list of regions, every migration, cancel all, throttles."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.directory import NodeDirectory
from activities.membership import MembershipActivities
from airctl.config import UserError
from airctl.context import Ctl
from airctl.progress import snapshot, transfer
from node.killpoints import KillPoints
from protos import air_node_pb2 as pb
from workflows.add_peer import AddPeerWorkflow
from workflows.drain import DrainNodeWorkflow
from workflows.errors import root_cause
from workflows.ids import drain_workflow_id, region_workflow_id
from workflows.migration import RegionMigrationWorkflow
from workflows.models import (
    DrainInput,
    DrainProgress,
    DrainResult,
    MigrationInput,
    Move,
    Phase,
)
from workflows.planning import InvalidRequest, plan_drain
from workflows.remove_peer import RemovePeerWorkflow
from workflows.search_attributes import NODES_KEY, PHASE_KEY, REGION_KEY, STALLED_KEY
from workflows.starter import RegionBusy, RequestRefused, Started, start_change, start_drain

TYPES = [
    w.__name__
    for w in (RegionMigrationWorkflow, AddPeerWorkflow, RemovePeerWorkflow, DrainNodeWorkflow)
]
MEMBERSHIP_QUERY = "WorkflowType IN (" + ", ".join(f"'{t}'" for t in TYPES) + ")"
# a running workflow whose worker is away answers no query: its progress shows as unknown
QUERY_TIMEOUT_S = 3.0
NO_ANSWER = "unknown (no worker answers)"


async def start(starting: Awaitable[Started]) -> Started:
    """A started workflow, or the reason it was refused as the one-line error."""
    try:
        return await starting
    except (RegionBusy, RequestRefused) as e:
        raise UserError(str(e)) from e


async def migrate_many(ctl: Ctl, regions: list[int], from_node: int, to_node: int) -> int:
    """Start a migration per region (a busy one is reported, the others go on); with --wait,
    wait for all and report each."""
    client = await ctl.temporal()
    started: dict[int, WorkflowHandle[Any, Any]] = {}
    report: dict[str, Any] = {}
    for region in regions:
        request = MigrationInput(region=region, from_node=from_node, to_node=to_node)
        try:
            change = await start(start_change(client, request, ctl.config.task_queue))
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


async def _outcome(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    try:
        result = await handle.result()
    except WorkflowFailureError as e:
        return {"ok": False, "error": str(e.cause or e)}
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
        if "/" in w.id:  # a migration's child: shown through its parent
            continue
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
        await asyncio.gather(*(_live_progress(client, r["workflow_id"], r["type"]) for r in live)),
        strict=True,
    ):
        row["progress"] = progress
        row["stalled"] = row["stalled"] if stalled is None else stalled
    ctl.emit(rows, "\n".join(map(_migration_line, rows)) or "no membership changes")
    return 0


def _migration_line(r: dict[str, Any]) -> str:
    """One aligned line: id, type, status, region, start (local time), phase, nodes, time."""
    started = datetime.fromisoformat(r["started"]).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    region = "-" if r["region"] is None else str(r["region"])
    return (
        f"{r['workflow_id']:<22} {r['type']:<24} {r['status']:<10} region {region:<5} "
        f"started {started}  {r['phase'] or '':<26} nodes {','.join(r['nodes']):<8} "
        f"{r['duration_s']:>8.2f}s  {'STALLED ' if r['stalled'] else ''}{r['progress']}"
    )


def _outcome_text(status: str, phase: str | None) -> str:
    if status == "COMPLETED":
        return "done"
    return status.lower() + (", rolled back" if phase == Phase.ROLLED_BACK else "")


async def _live_progress(client: Client, workflow_id: str, kind: str) -> tuple[str, bool | None]:
    """A running workflow's progress in a few words, and whether it stalls (None: unknown)."""
    handle = client.get_workflow_handle(workflow_id)
    if kind == DrainNodeWorkflow.__name__:
        state = await drain_state(handle)
        if state is None:
            return NO_ANSWER, None
        return drain_text(state), bool(state.stalled)
    try:
        progress = await asyncio.wait_for(snapshot(client, handle), QUERY_TIMEOUT_S)
    except (TimeoutError, RPCError, WorkflowQueryFailedError):
        return NO_ANSWER, None
    if progress is None:
        return "starting", None
    if progress.lag is None:
        return f"{len(progress.steps_done)} steps done", progress.stalled
    return transfer(progress), progress.stalled


async def drain_state(handle: WorkflowHandle[Any, Any]) -> DrainProgress | None:
    """The drain's `drain_progress` (a closed one's too), or None when no worker answers."""
    try:
        return await asyncio.wait_for(
            handle.query(DrainNodeWorkflow.drain_progress), QUERY_TIMEOUT_S
        )
    except (TimeoutError, RPCError, WorkflowQueryFailedError):
        return None


def drain_text(s: DrainProgress) -> str:
    """A drain's state in one line: moves done, running, left, failed, stalled; bytes, ETA."""
    text = f"{len(s.done)}/{len(s.planned)} moved, running {sorted(s.running)}, {s.left} left"
    text += f", {s.bytes_moved / 1e6:.1f}/{s.bytes_total / 1e6:.1f} MB"
    if s.rate_bytes_per_s > 0:
        text += f" at {s.rate_bytes_per_s / 1e6:.2f} MB/s"
    if s.eta_s is not None and s.eta_s > 0:
        text += f", ETA {s.eta_s:.0f} s"
    if s.failed:
        text += f", failed {sorted(s.failed)}"
    if s.stalled:
        text += f", stalled {sorted(s.stalled)}"
    return text + f"; at most {s.max_concurrent} at once" + (", PAUSED" if s.paused else "")


async def cancel_all(ctl: Ctl) -> int:
    """Cancel every running change; each rolls back or finishes as its phase requires.

    A child (a migration's step, a drain's move) is left to its parent, whose cancellation
    reaches it. Each report waits at most --timeout seconds.
    """
    client = await ctl.temporal()
    running = MEMBERSHIP_QUERY + " AND ExecutionStatus = 'Running'"
    changes = [w async for w in client.list_workflows(running) if w.parent_id is None]
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
    if change.workflow_type == DrainNodeWorkflow.__name__:
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
        return (await handle.describe()).status, None
    return WorkflowExecutionStatus.COMPLETED, result


def _ended(status: WorkflowExecutionStatus | None) -> str:
    if status == WorkflowExecutionStatus.CANCELED:
        return "cancelled"
    if status == WorkflowExecutionStatus.COMPLETED:
        return "finished anyway"
    return f"ended {status.name if status else 'UNKNOWN'}"


async def _drain_tally(client: Client, handle: WorkflowHandle[Any, Any]) -> str:
    """A closed drain's moves: the finished ones stay moved; the cancelled ones rolled back."""
    state = await drain_state(handle)
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
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return False
    return described.status == WorkflowExecutionStatus.CANCELED


async def cmd_throttle(ctl: Ctl) -> int:
    ctl.config.node(ctl.args.node)
    request = pb.ThrottleRequest(bytes_per_s=ctl.args.mbps * 1e6)
    reply = await ctl.stub(ctl.args.node).SetThrottle(request, timeout=10)
    limit = f"{ctl.args.mbps} MB/s" if ctl.args.mbps else "no limit"
    ctl.emit(
        {"node": ctl.args.node, "bytes_per_s": reply.bytes_per_s, "previous": reply.previous},
        f"node {ctl.args.node}: transfer throttle {limit} (was "
        f"{f'{reply.previous / 1e6:g} MB/s' if reply.previous else 'no limit'})",
    )
    return 0


async def cluster_plan(ctl: Ctl, node: int) -> list[Move]:
    """The drain's plan, computed here exactly as the workflow will (it changes nothing)."""
    ctl.config.node(node)
    directory = NodeDirectory(nodes={n.id: n.address for n in ctl.config.nodes})
    describe = MembershipActivities(
        directory, ctl.clients, KillPoints(set(), Path("."))
    ).describe_cluster
    try:
        return plan_drain(await describe(node), node)
    except InvalidRequest as e:
        raise UserError(str(e)) from e


async def cmd_plan_drain(ctl: Ctl) -> int:
    moves = await cluster_plan(ctl, ctl.args.node)
    sizes = {
        m.region: (await ctl.stub(m.from_node).Digest(pb.RegionRequest(region=m.region))).count
        for m in moves
    }
    rows = [{**m.model_dump(), "points": sizes[m.region]} for m in moves]
    lines = [
        f"region {r['region']}: node {r['from_node']} -> {r['to_node']} "
        f"({r['points']:,} points, {r['store_bytes'] / 1e6:.1f} MB)"
        for r in rows
    ]
    ctl.emit(rows, "\n".join(lines) or f"node {ctl.args.node} holds no region")
    return 0


async def cmd_drain(ctl: Ctl) -> int:
    """Start a drain, or steer the running one (pause, resume, bound); with --wait, follow it."""
    if ctl.args.action != "start":
        return await steer_drain(ctl)
    await cluster_plan(ctl, ctl.args.node)  # fail fast, before anything starts
    client = await ctl.temporal()
    request = DrainInput(node=ctl.args.node)
    if ctl.args.max_concurrent is not None:
        request.max_concurrent = ctl.args.max_concurrent
    started = await start(start_drain(client, request, ctl.config.task_queue))
    if not ctl.args.wait:
        ctl.emit_started(started)
        return 0
    return await _follow_drain(ctl, client, started.handle)


async def steer_drain(ctl: Ctl) -> int:
    """Call the running drain's update for the action; print the state it answers with."""
    action, node, bound = ctl.args.action, ctl.args.node, ctl.args.max_concurrent
    if action == "bound" and bound is None:
        raise UserError("drain bound needs --max-concurrent K")
    if action != "bound" and bound is not None:
        raise UserError(f"--max-concurrent goes with `drain` or `drain bound`, not {action}")
    client = await ctl.temporal()
    handle = client.get_workflow_handle(drain_workflow_id(node))
    try:
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            raise UserError(f"no drain of node {node} is running")
        if action == "bound":
            await handle.execute_update(DrainNodeWorkflow.set_max_concurrent, bound)
            state = await drain_state(handle)
            if state is None:
                raise UserError(f"the drain took the bound {bound}; its state is {NO_ANSWER}")
        elif action == "pause":
            state = await handle.execute_update(DrainNodeWorkflow.pause)
        else:
            state = await handle.execute_update(DrainNodeWorkflow.resume)
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise UserError(f"no drain of node {node} is running") from e
        raise UserError(f"Temporal refused the {action}: {e.message}") from e
    except WorkflowUpdateFailedError as e:
        raise UserError(f"the drain refused the {action}: {root_cause(e)}") from e
    if ctl.args.wait:
        return await _follow_drain(ctl, client, handle)
    ctl.emit(state.model_dump(mode="json"), f"drain of node {node}: {drain_text(state)}")
    return 0


async def _follow_drain(ctl: Ctl, client: Client, handle: WorkflowHandle[Any, Any]) -> int:
    """A line per change of the drain's state until it ends; then its result."""
    last = ""
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        line, _ = await _live_progress(client, handle.id, DrainNodeWorkflow.__name__)
        if line != last and not ctl.json:
            print(line, file=sys.stderr)
            last = line
        await asyncio.sleep(0.5)
    try:
        result = await client.get_workflow_handle(handle.id, result_type=DrainResult).result()
    except WorkflowFailureError as e:
        raise UserError(f"the drain failed: {e.cause or e}") from e
    ctl.emit(result.model_dump(mode="json"), result.message)
    return 0 if not result.failed else 1
