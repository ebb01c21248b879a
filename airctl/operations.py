"""Commands on operations of many moves: plan a drain, drain a node, steer it (pause, resume,
bound) and follow it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.directory import NodeDirectory
from activities.membership import MembershipActivities
from airctl.changes import start
from airctl.config import UserError
from airctl.context import Ctl
from airctl.display import Bars
from airctl.progress import NO_ANSWER, follow_operation, moves_text, operation_state
from node.killpoints import KillPoints
from protos import air_node_pb2 as pb
from workflows.drain import DrainNodeWorkflow
from workflows.errors import root_cause
from workflows.ids import drain_workflow_id
from workflows.models import (
    DrainInput,
    DrainResult,
    Move,
)
from workflows.planning import InvalidRequest, plan_drain
from workflows.starter import start_drain


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
    cells = [
        [str(r["region"]), str(r["from_node"]), str(r["to_node"]), f"{r['points']:,}",
         f"{r['store_bytes'] / 1e6:.1f}"]
        for r in rows
    ]  # fmt: skip
    plain = "\n".join(lines) or f"node {ctl.args.node} holds no region"
    columns = ["region", "from", "to", "points", "MB"]
    ctl.emit_table(rows, plain, f"draining node {ctl.args.node}", columns, cells)
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
            state = await operation_state(handle)
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
    ctl.emit(state.model_dump(mode="json"), f"drain of node {node}: {moves_text(state)}")
    return 0


async def _follow_drain(ctl: Ctl, client: Client, handle: WorkflowHandle[Any, Any]) -> int:
    """The drain's progress until it ends (with --json, silence); then its result."""
    if not ctl.json:
        with Bars() as bars:
            await follow_operation(client, handle, bars)
    try:
        result = await client.get_workflow_handle(handle.id, result_type=DrainResult).result()
    except WorkflowFailureError as e:
        raise UserError(f"the drain failed: {e.cause or e}") from e
    ctl.emit(result.model_dump(mode="json"), result.message)
    return 0 if not result.failed else 1
