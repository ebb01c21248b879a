"""Commands on operations of many moves: plan a drain or a rebalance, start one, steer the
running one (pause, resume, bound) and follow it."""

from __future__ import annotations

import argparse
from typing import TypeVar

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.types import MethodAsyncSingleParam

from airctl.args import (
    Commands,
    allow_less_diverse,
    count,
    duration,
    high_watermark,
    positive,
)
from airctl.changes import start
from airctl.context import Ctl
from airctl.data import DIGEST_TIMEOUT_S
from airctl.outcome import OperationResult, wait_result
from airctl.progress import NO_ANSWER, follow_operation, moves_text, operation_state
from client.starter import (
    Operation,
    OperationIn,
    operation_id,
    start_autopilot,
    start_operation,
)
from client.status import running
from contracts.activity_models import ClusterDescription
from contracts.errors import InvalidRequest, UserError, root_cause
from contracts.ids import AUTOPILOT_WORKFLOW_ID
from contracts.models import (
    AutopilotInput,
    AutopilotState,
    DrainInput,
    RebalanceInput,
    RepairInput,
)
from planning.balance import after, plan_rebalance, plan_rounds, spread, under_diversified
from planning.placement import Plan, plan_drain
from protos import air_node_pb2 as pb
from workflows.autopilot import AutopilotWorkflow, status_lines
from workflows.drain import DrainNodeWorkflow
from workflows.machinery.operation import MovesWorkflow
from workflows.rebalance import RebalanceWorkflow
from workflows.repair import RepairNodeWorkflow

Result = TypeVar("Result", bound=OperationResult)

# -- planning -------------------------------------------------------------------------------


async def cluster_plan(ctl: Ctl, node: int) -> Plan:
    """The drain's plan, computed here exactly as the workflow will (it changes nothing)."""
    ctl.config.node(node)
    try:
        return plan_drain(
            await ctl.describe(), node, watermark(ctl), ctl.args.allow_less_diverse, nearest(ctl)
        )
    except InvalidRequest as e:
        raise UserError(str(e)) from e


async def rebalance_plan(ctl: Ctl) -> tuple[ClusterDescription, list[Plan]]:
    """The rebalance's rounds, as the workflow will plan them if nothing else changes."""
    cluster = await ctl.describe()
    try:
        rounds = plan_rounds(
            cluster, destinations(ctl), watermark(ctl), ctl.args.allow_less_diverse
        )
    except InvalidRequest as e:
        raise UserError(str(e)) from e
    return cluster, rounds


def nearest(ctl: Ctl) -> bool:
    """--snapshot-from: each new replica's snapshot from a holder in its own zone, or any."""
    return getattr(ctl.args, "snapshot_from", "zone") == "zone"


def watermark(ctl: Ctl) -> float:
    """--high-watermark PERCENT, as the fraction the planners take."""
    return float(ctl.args.high_watermark) / 100


def destinations(ctl: Ctl) -> list[int]:
    if not ctl.args.nodes:
        return []
    try:
        return [int(n) for n in ctl.args.nodes.split(",")]
    except ValueError:
        raise UserError(f"--nodes takes node ids, e.g. 4,5; not {ctl.args.nodes!r}") from None


async def cmd_plan(ctl: Ctl) -> int:
    if ctl.args.plan == "rebalance":
        return await cmd_plan_rebalance(ctl)
    return await cmd_plan_drain(ctl)


async def cmd_plan_drain(ctl: Ctl) -> int:
    plan = await cluster_plan(ctl, ctl.args.node)
    moves = plan.moves
    sizes = {
        m.region: (
            await ctl.stub(m.from_node).Digest(
                pb.RegionRequest(region=m.region), timeout=DIGEST_TIMEOUT_S
            )
        ).count
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
    kept = [f"region {r}: kept on node {ctl.args.node}: {why}" for r, why in plan.kept.items()]
    less = [f"region {r}: under-diversified: {why}" for r, why in plan.under_diversified.items()]
    plain = "\n".join(lines + kept + less) or f"node {ctl.args.node} holds no region"
    columns = ["region", "from", "to", "points", "MB"]
    if ctl.json:
        data = {"moves": rows, "kept": plan.kept, "under_diversified": plan.under_diversified}
        ctl.emit(data, plain)
        return 0
    ctl.emit_table(rows, plain, f"draining node {ctl.args.node}", columns, cells)
    if cells and (kept or less):
        print("\n".join(kept + less))
    return 0


async def cmd_plan_rebalance(ctl: Ctl) -> int:
    """The rounds of moves, then each node's replicas and bytes now and after."""
    cluster, plans = await rebalance_plan(ctl)
    rounds = [plan.moves for plan in plans]
    moves = [m for moves in rounds for m in moves]
    end = after(cluster, moves)
    left = under_diversified(end, watermark(ctl))
    # what a round after the last would keep where it is (a move would lower diversity)
    kept = plan_rebalance(end, destinations(ctl), watermark(ctl)).kept
    now, later = spread(cluster), spread(cluster, moves)
    nodes = [
        {"node": n, "replicas": now.counts[n], "bytes": now.bytes[n],
         "replicas_after": later.counts[n], "bytes_after": later.bytes[n]}
        for n in now.counts
    ]  # fmt: skip
    data = {
        "rounds": [[m.model_dump() for m in moves] for moves in rounds],
        "nodes": nodes,
        "max_over_min_bytes": {"now": now.max_over_min_bytes, "after": later.max_over_min_bytes},
        "kept": kept,
        "under_diversified_after": left,
    }
    notes = [f"region {r}: kept: {why}" for r, why in kept.items()]
    notes += [f"region {r}: under-diversified after: {why}" for r, why in left.items()]
    if not moves:
        ctl.emit(data, "\n".join(["the cluster is balanced: nothing to move", *notes]))
        return 0
    lines = [
        f"round {i}: region {m.region}: node {m.from_node} -> {m.to_node} "
        f"({m.store_bytes / 1e6:.1f} MB)"
        for i, moves in enumerate(rounds, 1)
        for m in moves
    ]
    lines += [
        f"node {n['node']}: {n['replicas']} -> {n['replicas_after']} replicas, "
        f"{n['bytes'] / 1e6:.1f} -> {n['bytes_after'] / 1e6:.1f} MB"
        for n in nodes
    ] + notes
    cells = [
        [str(i), str(m.region), str(m.from_node), str(m.to_node), f"{m.store_bytes / 1e6:.1f}"]
        for i, moves in enumerate(rounds, 1)
        for m in moves
    ]
    ctl.emit_table(
        data, "\n".join(lines), "rebalancing", ["round", "region", "from", "to", "MB"], cells
    )
    if not ctl.json:
        print("\n".join(lines[len(cells) :]))
    return 0


# -- starting and steering ------------------------------------------------------------------


async def cmd_drain(ctl: Ctl) -> int:
    """Start a drain, or steer the running one (pause, resume, bound); with --wait, follow it."""
    node = ctl.args.node
    if ctl.args.action == "start":
        await cluster_plan(ctl, node)  # fail fast, before anything starts
    request = DrainInput.model_validate(
        {"node": node, **bounds(ctl), "nearest_source": nearest(ctl), **diversity(ctl)}
    )
    return await operate(ctl, DrainNodeWorkflow.run, request, f"drain of node {node}")


async def cmd_rebalance(ctl: Ctl) -> int:
    """Start a rebalance, or steer the running one; with --wait, follow it."""
    request = RebalanceInput.model_validate(
        {"nodes": destinations(ctl), **bounds(ctl), **diversity(ctl)}
    )
    return await operate(ctl, RebalanceWorkflow.run, request, "rebalance")


async def cmd_repair(ctl: Ctl) -> int:
    """Start repairing a dead node, or steer the running repair; with --wait, follow it."""
    ctl.config.node(ctl.args.node)
    request = RepairInput.model_validate({"node": ctl.args.node, **bounds(ctl)})
    return await operate(ctl, RepairNodeWorkflow.run, request, f"repair of node {ctl.args.node}")


async def operate(
    ctl: Ctl,
    run: MethodAsyncSingleParam[Operation, OperationIn, Result],
    request: OperationIn,
    what: str,
) -> int:
    """Start the operation, or steer the running one of its id; with --wait, follow it."""
    client = await ctl.temporal()
    if ctl.args.action != "start":
        handle = client.get_workflow_handle_for(run, operation_id(request))
        return await steer(ctl, client, handle, what)
    started = await start(start_operation(client, run, request, ctl.config.task_queue))
    if not ctl.args.wait:
        ctl.emit_started(started)
        return 0
    return await wait_result(ctl, client, started.handle, follow_operation)


def bounds(ctl: Ctl) -> dict[str, float]:
    """The bounds given on the command line (the workflow's defaults for the others)."""
    given = {"max_concurrent": ctl.args.max_concurrent, "max_per_node": ctl.args.max_per_node}
    bounds: dict[str, float] = {name: value for name, value in given.items() if value is not None}
    return bounds | {"high_watermark": watermark(ctl)}


def diversity(ctl: Ctl) -> dict[str, bool]:
    """--allow-less-diverse, when given (the workflow refuses such moves without it)."""
    return {"allow_less_diverse": True} if ctl.args.allow_less_diverse else {}


async def steer(
    ctl: Ctl, client: Client, handle: WorkflowHandle[Operation, Result], what: str
) -> int:
    """Call the running operation's update for the action; print the state it answers with."""
    action, bound = ctl.args.action, ctl.args.max_concurrent
    if action == "bound" and bound is None:
        raise UserError(f"{ctl.args.command} bound needs --max-concurrent K")
    if action != "bound" and bound is not None:
        raise UserError(
            f"--max-concurrent goes with `{ctl.args.command}` or `{ctl.args.command} bound`, "
            f"not {action}"
        )
    try:
        if not await running(handle):
            raise UserError(f"no {what} is running")
        if action == "bound":
            await handle.execute_update(MovesWorkflow.set_max_concurrent, bound)
            state = await operation_state(handle)
            if state is None:
                raise UserError(f"the {what} took the bound {bound}; its state is {NO_ANSWER}")
        elif action == "pause":
            state = await handle.execute_update(MovesWorkflow.pause)
        else:
            state = await handle.execute_update(MovesWorkflow.resume)
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise UserError(f"no {what} is running") from e
        raise UserError(f"Temporal refused the {action}: {e.message}") from e
    except WorkflowUpdateFailedError as e:
        raise UserError(f"the {what} refused the {action}: {root_cause(e)}") from e
    if ctl.args.wait:
        return await wait_result(ctl, client, handle, follow_operation)
    ctl.emit(state.model_dump(mode="json"), f"{what}: {moves_text(state)}")
    return 0


# -- the autopilot --------------------------------------------------------------------------


async def cmd_autopilot(ctl: Ctl) -> int:
    """Turn the autopilot on (or change the running one's settings), off, or show it."""
    client = await ctl.temporal()
    handle = client.get_workflow_handle_for(AutopilotWorkflow.run, AUTOPILOT_WORKFLOW_ID)
    if ctl.args.switch == "on":
        request = await _autopilot_request(ctl, handle)
        await start_autopilot(client, request, ctl.config.task_queue)
        url = ctl.workflow_url(AUTOPILOT_WORKFLOW_ID)
        text = f"autopilot on: a node gone for {request.dead_after_s:g} s is repaired"
        if request.check_every_s is not None:
            text += f"; every region checked every {request.check_every_s:g} s" + (
                ", a clear minority rebuilt" if request.check_repair else ""
            )
        data = {"on": True, "ui": url, **request.model_dump(exclude={"carried"})}
        ctl.emit(data, f"{text}\n{url}")
        return 0
    if not await running(handle):
        ctl.emit({"on": False}, "autopilot off")
        return 0
    if ctl.args.switch == "off":
        await handle.cancel()  # a repair it started is a workflow of its own: it finishes
        ctl.emit({"on": False}, "autopilot turned off (a repair it started goes on)")
        return 0
    state = await handle.query(AutopilotWorkflow.status)
    ctl.emit({"on": True, **state.model_dump(mode="json")}, autopilot_text(state))
    return 0


async def _autopilot_request(
    ctl: Ctl, handle: WorkflowHandle[AutopilotWorkflow, None]
) -> AutopilotInput:
    """What `on` asks for: the flags given, and for those not given what the running autopilot
    has (a new one: the defaults). `--check-every off` stops the checks."""
    a = ctl.args
    if a.check_repair and a.check_every in (None, "off"):
        raise UserError("--check-repair goes with --check-every DURATION")
    every = a.check_every
    check_every_s = (
        None
        if every in (None, "off")
        else duration(every, "--check-every", "(or off)").total_seconds()
    )
    current = (
        await handle.query(AutopilotWorkflow.status) if await running(handle) else None
    ) or AutopilotState()
    return AutopilotInput(
        dead_after_s=current.dead_after_s if a.dead_after is None else a.dead_after,
        check_every_s=current.check_every_s if every is None else check_every_s,
        check_repair=current.check_repair if every is None else a.check_repair,
    )


def autopilot_text(state: AutopilotState) -> str:
    """The autopilot's settings, what it sees and every decision it kept, dated."""
    stamp = "%Y-%m-%d %H:%M:%S"
    lines = [
        f"autopilot on: dead after {state.dead_after_s:g} s down, probing every "
        f"{state.probe_every_s:g} s",
        *status_lines(state, stamp),
    ]
    lines += [f"{d.at:{stamp}} {d.what}" for d in state.decisions]
    return "\n".join(lines)


# -- arguments --------------------------------------------------------------------------------


def register(sub: Commands) -> None:
    """Operations of many moves: plan, drain, rebalance, repair; the autopilot."""
    plan = sub.add_parser("plan", help="what an operation would do, changing nothing")
    plans = plan.add_subparsers(dest="plan", required=True)
    plan_drain = plans.add_parser("drain", help="the moves that drain a node")
    plan_drain.add_argument("--node", type=int, required=True)
    plan_rebalance = plans.add_parser("rebalance", help="the moves that even out the nodes")
    plan_rebalance.add_argument("--nodes", help="move replicas only onto these nodes, e.g. 4,5")
    for c in (plan_drain, plan_rebalance):
        high_watermark(c)
        allow_less_diverse(c)
        c.set_defaults(handler=cmd_plan)
    drain = _operation(sub, "drain", "move every replica off a node, or steer that drain")
    drain.add_argument("--node", type=int, required=True)
    drain.set_defaults(handler=cmd_drain)
    for c in (plan_drain, drain):
        c.add_argument(
            "--snapshot-from",
            choices=["zone", "any"],
            default="zone",
            help="zone (the default): each new replica copies from a holder in its own zone "
            "when one is there, the least busy of them; any: the least busy live holder",
        )
    rebalance = _operation(
        sub, "rebalance", "move replicas from the fullest nodes to the emptiest, or steer that"
    )
    rebalance.add_argument("--nodes", help="move replicas only onto these nodes, e.g. 4,5")
    rebalance.set_defaults(handler=cmd_rebalance)
    repair = _operation(
        sub, "repair", "a new replica elsewhere for each region of a node that is gone"
    )
    repair.add_argument("--node", type=int, required=True)
    repair.set_defaults(handler=cmd_repair)
    autopilot = sub.add_parser("autopilot", help="repair a node gone for good, by itself")
    autopilot.add_argument("switch", choices=["on", "off", "status"])
    autopilot.add_argument(
        "--dead-after",
        type=positive,
        help="seconds a node must stay unreachable to be declared dead (default 300; `on` "
        "again without it keeps the running autopilot's)",
    )
    autopilot.add_argument(
        "--check-every",
        metavar="DURATION",
        help="also check every region's replicas this often, e.g. 24h, or off (default: no "
        "checks; `on` again without it keeps the running autopilot's; `airctl check --every` "
        "schedules checks without the autopilot)",
    )
    autopilot.add_argument(
        "--check-repair",
        action="store_true",
        help="a check that finds a clear minority replica rebuilds it",
    )
    autopilot.set_defaults(handler=cmd_autopilot)


def _operation(sub: Commands, name: str, help: str) -> argparse.ArgumentParser:
    """A command that starts an operation of many moves, or steers the running one."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help)
    p.add_argument(
        "action",
        nargs="?",
        default="start",
        choices=["start", "pause", "resume", "bound"],
        help=f"start (the default); or, on the running {name}: pause, resume, "
        "bound (a new --max-concurrent)",
    )
    p.add_argument("--max-concurrent", type=count, help="migrations at once (default 2)")
    p.add_argument(
        "--max-per-node", type=count, help="migrations at once from or into a node (default 2)"
    )
    p.add_argument("--wait", action="store_true", help="show progress until done")
    high_watermark(p)
    allow_less_diverse(p)
    return p
