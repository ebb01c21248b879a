"""Operating many changes at once: a list of regions, every migration, cancel all, throttles."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.directory import NodeDirectory
from activities.membership import MembershipActivities
from airctl.config import UserError
from airctl.context import Ctl
from airctl.progress import snapshot, transfer
from node.killpoints import KillPoints
from protos import air_node_pb2 as pb
from workflows.add_peer import AddPeerWorkflow
from workflows.common import NODES_KEY, PHASE_KEY, REGION_KEY, STALLED_KEY, root_cause
from workflows.drain import DrainNodeWorkflow, plan_drain
from workflows.migration import RegionMigrationWorkflow
from workflows.models import (
    DrainInput,
    DrainProgress,
    DrainResult,
    MigrationInput,
    Move,
    Phase,
)
from workflows.remove_peer import RemovePeerWorkflow
from workflows.starter import RegionBusy, drain_workflow_id, start_change, start_drain

TYPES = [
    w.__name__
    for w in (RegionMigrationWorkflow, AddPeerWorkflow, RemovePeerWorkflow, DrainNodeWorkflow)
]
MEMBERSHIP_QUERY = "WorkflowType IN (" + ", ".join(f"'{t}'" for t in TYPES) + ")"
# a running workflow whose worker is away answers no query: its progress shows as unknown
QUERY_TIMEOUT_S = 3.0
# airctl drain ACTION: the drain's Temporal update for each way of steering it
DRAIN_UPDATES = {"pause": "pause", "resume": "resume", "bound": "set_max_concurrent"}


async def migrate_many(ctl: Ctl, regions: list[int], from_node: int, to_node: int) -> int:
    """Start a migration per region (a busy one is reported, the others go on); with --wait,
    wait for all and report each."""
    client = await ctl.temporal()
    started: dict[int, WorkflowHandle[Any, Any]] = {}
    report: dict[str, Any] = {}
    for region in regions:
        request = MigrationInput(region=region, from_node=from_node, to_node=to_node)
        try:
            started[region] = await start_change(client, request, ctl.config.task_queue)
            report[str(region)] = {"workflow_id": started[region].id, "started": True}
        except RegionBusy as e:
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
    lines = [
        f"{r['workflow_id']:<22} {r['type']:<24} {r['status']:<10} {r['phase'] or '':<26} "
        f"nodes {r['nodes']}  {r['duration_s']}s  "
        + ("STALLED " if r["stalled"] else "")
        + r["progress"]
        for r in rows
    ]
    ctl.emit(rows, "\n".join(lines) or "no membership changes")
    return 0


def _outcome_text(status: str, phase: str | None) -> str:
    if status == "COMPLETED":
        return "done"
    return status.lower() + (", rolled back" if phase == Phase.ROLLED_BACK else "")


async def _live_progress(client: Client, workflow_id: str, kind: str) -> tuple[str, bool | None]:
    """A running workflow's progress in a few words, and whether it stalls (None: unknown)."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        if kind == DrainNodeWorkflow.__name__:
            state = await asyncio.wait_for(
                handle.query("drain_progress", result_type=DrainProgress), QUERY_TIMEOUT_S
            )
            return drain_text(state), bool(state.stalled)
        progress = await asyncio.wait_for(snapshot(client, handle), QUERY_TIMEOUT_S)
    except (TimeoutError, RPCError, WorkflowQueryFailedError):
        return "unknown (no worker answers)", None
    if progress is None:
        return "starting", None
    if progress.lag is None:
        return f"{len(progress.steps_done)} steps done", progress.stalled
    return transfer(progress), progress.stalled


def drain_text(s: DrainProgress) -> str:
    """A drain's state in one line: moves done, running, left, failed, stalled."""
    text = f"{len(s.done)}/{len(s.planned)} moved, running {sorted(s.running)}, {s.left} left"
    if s.failed:
        text += f", failed {sorted(s.failed)}"
    if s.stalled:
        text += f", stalled {sorted(s.stalled)}"
    return text + f"; at most {s.max_concurrent} at once" + (", PAUSED" if s.paused else "")


async def cancel_all(ctl: Ctl) -> int:
    """Cancel every running change; each rolls back or finishes as its phase requires."""
    client = await ctl.temporal()
    handles = [
        client.get_workflow_handle(w.id)
        async for w in client.list_workflows(MEMBERSHIP_QUERY + " AND ExecutionStatus = 'Running'")
        if "/" not in w.id
    ]
    for handle in handles:
        await handle.cancel()
    outcomes = await asyncio.gather(*(_after_cancel(h) for h in handles))
    report = dict(zip((h.id for h in handles), outcomes, strict=True))
    ctl.emit(report, "\n".join(f"{i}: {o}" for i, o in report.items()) or "nothing was running")
    return 0


async def _after_cancel(handle: WorkflowHandle[Any, Any]) -> str:
    try:
        result = await handle.result()
    except WorkflowFailureError:
        status = (await handle.describe()).status
        if status == WorkflowExecutionStatus.CANCELED:
            return "cancelled: rolled back to the cluster as it was"
        return f"ended {status.name if status else 'UNKNOWN'}"
    return f"finished anyway: {result.message}"


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
    except ApplicationError as e:
        raise UserError(e.message) from e


async def cmd_plan_drain(ctl: Ctl) -> int:
    moves = await cluster_plan(ctl, ctl.args.node)
    sizes = {
        m.region: (await ctl.stub(m.from_node).Digest(pb.RegionRequest(region=m.region))).count
        for m in moves
    }
    rows = [{**m.model_dump(), "points": sizes[m.region]} for m in moves]
    lines = [
        f"region {r['region']}: node {r['from_node']} -> {r['to_node']} ({r['points']:,} points)"
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
    try:
        handle = await start_drain(client, request, ctl.config.task_queue)
    except RegionBusy as e:
        raise UserError(str(e)) from e
    if not ctl.args.wait:
        ctl.emit(
            {"workflow_id": handle.id, "ui": ctl.workflow_url(handle.id)},
            f"started {handle.id}\n{ctl.workflow_url(handle.id)}",
        )
        return 0
    return await _follow_drain(ctl, client, handle)


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
        update = DRAIN_UPDATES[action]
        if action == "bound":
            await handle.execute_update(update, bound, result_type=int)
            state = await handle.query("drain_progress", result_type=DrainProgress)
        else:
            state = await handle.execute_update(update, result_type=DrainProgress)
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
        line = drain_text(await handle.query("drain_progress", result_type=DrainProgress))
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
