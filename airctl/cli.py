"""airctl: one front door to the local stack and to membership changes.

Every command takes --cluster (default .air/cluster.json, or AIR_CLUSTER) and --json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import grpc
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError

from airctl.config import UserError, parse_ids
from airctl.context import Ctl
from airctl.load import AckedLog, LoadWriter, missing_points
from airctl.local_stack import LocalStack
from airctl.operations import (
    cancel_all,
    cmd_drain,
    cmd_migrations,
    cmd_plan_drain,
    cmd_throttle,
    migrate_many,
    start,
)
from airctl.progress import follow, snapshot
from protos import air_node_pb2 as pb
from workflows import connection
from workflows.errors import root_cause
from workflows.ids import region_workflow_id
from workflows.models import AddPeerInput, MigrationInput, RemovePeerInput
from workflows.starter import start_change

# -- nodes and data -------------------------------------------------------------------------


async def region_holders(ctl: Ctl, region: int) -> dict[int, pb.RegionInfo]:
    holders = {}
    for node in ctl.config.nodes:
        reply = await ctl.stub(node.id).ListRegions(pb.ListRegionsRequest(), timeout=5)
        for info in reply.regions:
            if info.region == region:
                holders[node.id] = info
    if not holders:
        raise UserError(f"unknown region {region}: no node holds it")
    return holders


async def create_region(ctl: Ctl, region: int, ids: list[int]) -> list[pb.MembershipReply]:
    """The region's replica on each of `ids`, active, with the full peer list."""
    peers = [pb.Peer(node_id=i, address=ctl.config.node(i).address) for i in ids]
    request = pb.CreateLocalPeerRequest(region=region, peers=peers, active=True)
    return [await ctl.stub(i).CreateLocalPeer(request, timeout=10) for i in ids]


async def cmd_region_create(ctl: Ctl) -> int:
    ids = parse_ids(ctl.args.peers, "--peers")
    replies = await create_region(ctl, ctl.args.region, ids)
    ctl.emit(
        {"region": ctl.args.region, "peers": ids, "created": [r.changed for r in replies]},
        f"region {ctl.args.region} on nodes {ids}",
    )
    return 0


async def cmd_regions(ctl: Ctl) -> int:
    table: dict[int, dict[int, dict[str, bool]]] = {}
    for node in ctl.config.nodes:
        reply = await ctl.stub(node.id).ListRegions(pb.ListRegionsRequest(), timeout=5)
        for r in reply.regions:
            state = {"active": r.active, "installed": r.installed, "leaving": r.leaving}
            table.setdefault(r.region, {})[node.id] = state
    lines = [f"{'region':>8}  replicas (node: state)"]
    for region, replicas in sorted(table.items()):
        cells = [f"{n}:{_state(s)}" for n, s in sorted(replicas.items())]
        lines.append(f"{region:>8}  {'  '.join(cells)}")
    ctl.emit({str(k): v for k, v in table.items()}, "\n".join(lines))
    return 0


def _state(s: dict[str, bool]) -> str:
    if s["leaving"]:
        return "leaving"
    if not s["installed"]:
        return "awaiting-snapshot"
    return "active" if s["active"] else "inactive"


async def cmd_write(ctl: Ctl) -> int:
    holders = await region_holders(ctl, ctl.args.region)
    targets = [ctl.args.via] if ctl.args.via else sorted(holders)
    if ctl.args.via:
        ctl.config.node(ctl.args.via)
    writer = LoadWriter(ctl.stub, ctl.args.region, targets, log=AckedLog(ctl.args.acked_log))
    began = time.monotonic()
    await asyncio.wait_for(writer.run(count=ctl.args.count), timeout=ctl.args.timeout)
    elapsed = time.monotonic() - began
    ctl.emit(
        {"region": ctl.args.region, "acked": len(writer.acked), "series": writer.series},
        f"{len(writer.acked)} points acknowledged in {elapsed:.1f}s (series {writer.series})",
    )
    return 0


async def cmd_load(ctl: Ctl) -> int:
    holders = await region_holders(ctl, ctl.args.region)
    writer = LoadWriter(
        ctl.stub, ctl.args.region, sorted(holders), log=AckedLog(ctl.args.acked_log)
    )
    writer.start(rate=ctl.args.rate)
    await asyncio.sleep(ctl.args.seconds)
    await writer.stop()
    ctl.emit(
        {"region": ctl.args.region, "acked": len(writer.acked), "refusals": writer.refusals},
        f"{len(writer.acked)} points acknowledged in {ctl.args.seconds}s "
        f"({writer.refusals} refusals failed over)",
    )
    return 0


async def digests(ctl: Ctl, region: int) -> dict[int, pb.DigestReply]:
    holders = await region_holders(ctl, region)
    request = pb.RegionRequest(region=region)
    return {i: await ctl.stub(i).Digest(request, timeout=30) for i in sorted(holders)}


async def cmd_digest(ctl: Ctl) -> int:
    found = await digests(ctl, ctl.args.region)
    data = {
        str(i): {"count": d.count, "hash": d.hash, "active": d.active} for i, d in found.items()
    }
    lines = [
        f"node {i}: {d.count} points  {d.hash[:16]}  active={d.active}" for i, d in found.items()
    ]
    ctl.emit(data, "\n".join(lines))
    return 0


async def verify(ctl: Ctl, region: int, log: Path, timeout: float) -> tuple[bool, dict[str, Any]]:
    """Equal digests on every replica (awaited) and every acknowledged point on each."""
    acked = AckedLog.read(log)
    deadline = time.monotonic() + timeout
    while True:
        found = await digests(ctl, region)
        if len({(d.count, d.hash) for d in found.values()}) == 1 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    missing = {i: len(await missing_points(ctl.stub(i), region, acked)) for i in found}
    equal = len({(d.count, d.hash) for d in found.values()}) == 1
    ok = equal and not any(missing.values())
    report = {
        "region": region,
        "ok": ok,
        "acked": len(acked),
        "replicas": {str(i): {"count": d.count, "hash": d.hash} for i, d in found.items()},
        "missing": {str(i): m for i, m in missing.items()},
        "equal": equal,
    }
    return ok, report


async def cmd_verify(ctl: Ctl) -> int:
    if not ctl.args.acked_log.exists():
        raise UserError(f"no acked log at {ctl.args.acked_log}")
    ok, report = await verify(ctl, ctl.args.region, ctl.args.acked_log, ctl.args.timeout)
    replicas = ", ".join(f"node {n} {r['count']}" for n, r in report["replicas"].items())
    verdict = "OK" if ok else "FAILED"
    text = (
        f"{verdict}: {report['acked']} acknowledged points; replicas {replicas}; "
        f"digests {'equal' if report['equal'] else 'DIFFER'}; "
        f"missing {sum(report['missing'].values())}"
    )
    ctl.emit(report, text)
    return 0 if ok else 1


# -- membership changes ---------------------------------------------------------------------


async def start_and_maybe_wait(
    ctl: Ctl, request: MigrationInput | AddPeerInput | RemovePeerInput
) -> int:
    client = await ctl.temporal()
    started = await start(start_change(client, request, ctl.config.task_queue))
    if not ctl.args.wait:
        ctl.emit_started(started)
        return 0
    if not ctl.json:
        print(f"started {started.handle.id}: {ctl.plan_text(started)}", file=sys.stderr)
    return await wait_result(ctl, client, started.handle)


async def wait_result(ctl: Ctl, client: Client, handle: WorkflowHandle[Any, Any]) -> int:
    began = time.monotonic()
    if not ctl.json:
        await follow(client, handle)
    try:
        result = await handle.result()
    except WorkflowFailureError as e:
        reason = root_cause(e)
        ctl.emit(
            {"workflow_id": handle.id, "ok": False, "error": reason},
            f"{handle.id} failed: {reason}",
        )
        return 1
    data = result.model_dump(mode="json")
    seconds = time.monotonic() - began
    ctl.emit(
        {"workflow_id": handle.id, "ok": True, "seconds": round(seconds, 3), "result": data},
        f"{handle.id} done in {seconds:.2f}s: {getattr(result, 'message', '') or data}",
    )
    return 0


async def cmd_migrate(ctl: Ctl) -> int:
    a = ctl.args
    ctl.config.node(a.from_node), ctl.config.node(a.to_node)
    regions = parse_ids(a.regions, "regions")
    if len(regions) > 1:
        return await migrate_many(ctl, regions, a.from_node, a.to_node)
    return await start_and_maybe_wait(
        ctl, MigrationInput(region=regions[0], from_node=a.from_node, to_node=a.to_node)
    )


async def cmd_add_peer(ctl: Ctl) -> int:
    ctl.config.node(ctl.args.node)
    return await start_and_maybe_wait(
        ctl, AddPeerInput(region=ctl.args.region, new_peer=ctl.args.node)
    )


async def cmd_remove_peer(ctl: Ctl) -> int:
    ctl.config.node(ctl.args.node)
    return await start_and_maybe_wait(
        ctl, RemovePeerInput(region=ctl.args.region, peer=ctl.args.node)
    )


async def cmd_status(ctl: Ctl) -> int:
    client = await ctl.temporal()
    workflow_id = ctl.args.workflow_id or region_workflow_id(_required_region(ctl))
    handle = client.get_workflow_handle(workflow_id)
    try:
        described = await handle.describe()
    except Exception as e:
        raise UserError(f"no workflow {workflow_id}") from e
    status = described.status.name if described.status else "UNKNOWN"
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
    return 0


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
        running = (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    except Exception:
        running = False
    if not running:
        raise UserError(f"no membership change of region {ctl.args.region} is running")
    await handle.cancel()
    ctl.emit(
        {"workflow_id": handle.id, "cancel_requested": True}, f"cancel requested for {handle.id}"
    )
    return 0


# -- the local stack ------------------------------------------------------------------------


def stack_from(args: argparse.Namespace, data_dir: Path, cluster_file: Path) -> LocalStack:
    return LocalStack(
        data_dir,
        nodes=args.nodes,
        temporal_port=args.temporal_port,
        ui_port=args.ui_port,
        base_port=args.base_port,
        cluster_file=cluster_file,
        node_args=(
            ["--transfer-rate-limit", str(args.transfer_rate_limit)]
            if args.transfer_rate_limit
            else None
        ),
        tls=args.tls,
    )


def cmd_up(ctl: Ctl) -> int:
    stack = stack_from(ctl.args, ctl.args.data_dir, ctl.path)
    stack.start()
    ctl.emit(
        stack.config.model_dump(),
        f"stack up: Temporal UI {stack.config.ui_url}\n"
        f"cluster file {ctl.path}; Ctrl-C stops everything",
    )
    sys.stdout.flush()
    try:
        stack.run_until_signalled()
    finally:
        stack.stop()
    return 0


async def run_demo(ctl: Ctl, stack: LocalStack) -> int:
    region, log = 1, stack.data_dir / "acked.log"

    def say(text: str) -> None:
        if not ctl.json:
            print(text, file=sys.stderr)

    say(f"stack up; Temporal UI: {stack.config.ui_url}")
    await create_region(ctl, region, [1, 2, 3])
    writer = LoadWriter(ctl.stub, region, [1, 2, 3, 4], batch=50, log=AckedLog(log))
    writer.start(rate=ctl.args.rate)
    await writer.wait_acked(ctl.args.rate, timeout=60)
    say(f"region {region} on nodes 1,2,3 under load ({ctl.args.rate} points/s); migrating 1 -> 4")
    client = await ctl.temporal()
    request = MigrationInput(region=region, from_node=1, to_node=4)
    handle = (await start(start_change(client, request))).handle
    began = time.monotonic()
    if not ctl.json:
        await follow(client, handle)
    result = await handle.result()
    seconds = time.monotonic() - began
    await writer.wait_acked(len(writer.acked) + ctl.args.rate // 2, timeout=60)
    await writer.stop()
    ok, report = await verify(ctl, region, log, timeout=60)
    summary = {
        "migration_s": round(seconds, 2),
        "result": result.message,
        "verify": report,
        "ui": ctl.workflow_url(handle.id),
    }
    ctl.emit(
        summary,
        f"migrated in {seconds:.2f}s: {result.message}\n"
        f"verify: {'OK' if ok else 'FAILED'}: {report['acked']} acknowledged points on "
        f"every replica of {sorted(int(n) for n in report['replicas'])}, digests "
        f"{'equal' if report['equal'] else 'DIFFER'}\n"
        f"see it in the Temporal UI: {summary['ui']}",
    )
    return 0 if ok else 1


def cmd_demo(ctl: Ctl) -> int:
    data_dir: Path = ctl.args.data_dir
    shutil.rmtree(data_dir, ignore_errors=True)  # a demo starts from nothing
    stack = stack_from(ctl.args, data_dir, ctl.path)
    stack.start()
    try:
        status = _run(ctl, lambda: run_demo(ctl, stack))
        if ctl.args.keep:
            print(
                f"the stack stays up for the UI ({stack.config.ui_url}); Ctrl-C stops it",
                file=sys.stderr,
            )
            stack.run_until_signalled()
        return status
    finally:
        stack.stop()


# -- argument parsing -----------------------------------------------------------------------


def count(text: str) -> int:
    """An argparse type: a count that must be positive."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive(text: str) -> float:
    """An argparse type: a duration or rate that must be above zero."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {value}")
    return value


class Parser(argparse.ArgumentParser):
    """Bad arguments are one line, like every other airctl error (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"airctl: {message} (see {self.prog} --help)\n")


def global_options(p: argparse.ArgumentParser, *, after_command: bool, temporal: bool) -> None:
    """--cluster, --json and the Temporal connection flags: before the command, or after it
    (there they override nothing they are not given)."""
    unset: Any = argparse.SUPPRESS
    p.add_argument(
        "--cluster",
        type=Path,
        default=unset if after_command else None,
        help="cluster file (default .air/cluster.json)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        default=unset if after_command else False,
        help="machine-readable output",
    )
    if temporal:
        connection.add_arguments(p, suppress_defaults=after_command)


class CommandParser(Parser):
    """A command's parser: it takes the global options too (`up` and `demo` have their own
    --tls, for the stack, and reach Temporal by the stack's settings alone)."""

    def __init__(self, *, temporal_flags: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        global_options(self, after_command=True, temporal=temporal_flags)


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="airctl", description=__doc__)
    global_options(p, after_command=False, temporal=True)
    sub = p.add_subparsers(dest="command", required=True, parser_class=CommandParser)

    def stack_options(c: argparse.ArgumentParser, data_dir: str) -> None:
        c.add_argument("--nodes", type=count, default=4)
        c.add_argument("--data-dir", type=Path, default=Path(data_dir))
        c.add_argument("--temporal-port", type=int, default=7233)
        c.add_argument("--ui-port", type=int, default=8233)
        c.add_argument("--base-port", type=int, default=50051)
        c.add_argument(
            "--transfer-rate-limit", type=float, metavar="MB_PER_S", help="node migration throttle"
        )
        c.add_argument(
            "--tls",
            action="store_true",
            help="mutual TLS between nodes, worker and airctl (a throwaway CA in DATA_DIR/tls)",
        )

    up = sub.add_parser("up", help="run the local stack in the foreground", temporal_flags=False)
    stack_options(up, ".air")
    demo = sub.add_parser(
        "demo", help="stack, region, load, migration, verification", temporal_flags=False
    )
    stack_options(demo, ".air/demo")
    demo.add_argument("--rate", type=count, default=1000, help="points/s written during the demo")
    demo.add_argument(
        "--no-keep",
        dest="keep",
        action="store_false",
        help="exit with the verification's status instead of keeping the stack",
    )

    regions = sub.add_parser("region", help="region commands")
    region = regions.add_subparsers(dest="action", required=True)
    create = region.add_parser("create", help="create a region on some nodes")
    create.add_argument("region", type=int)
    create.add_argument("--peers", required=True, help="node ids, e.g. 1,2,3")
    sub.add_parser("regions", help="regions, their replicas and states")

    write = sub.add_parser("write", help="write N unique points")
    write.add_argument("region", type=int)
    write.add_argument("--count", type=count, required=True)
    write.add_argument("--via", type=int, help="write through this node only")
    write.add_argument("--acked-log", type=Path)
    write.add_argument("--timeout", type=positive, default=120)
    load = sub.add_parser("load", help="write without pause for a while")
    load.add_argument("region", type=int)
    load.add_argument("--seconds", type=positive, required=True)
    load.add_argument("--rate", type=positive, help="points/s (default: as fast as acknowledged)")
    load.add_argument("--acked-log", type=Path, required=True)
    digest = sub.add_parser("digest", help="count and hash per replica")
    digest.add_argument("region", type=int)
    ver = sub.add_parser("verify", help="equal replicas holding every acknowledged point")
    ver.add_argument("region", type=int)
    ver.add_argument("--acked-log", type=Path, required=True)
    ver.add_argument("--timeout", type=float, default=30, help="seconds to await convergence")

    migrate = sub.add_parser("migrate", help="move a replica from one node to another")
    migrate.add_argument("regions", help="a region id, or several: 1,2,3")
    migrate.add_argument("--from", dest="from_node", type=int, required=True)
    migrate.add_argument("--to", dest="to_node", type=int, required=True)
    migrate.add_argument("--wait", action="store_true", help="show progress until done")
    for name in ("add-peer", "remove-peer"):
        c = sub.add_parser(name, help=f"{name.replace('-', ' ')} of a region")
        c.add_argument("region", type=int)
        c.add_argument("--node", type=int, required=True)
        c.add_argument("--wait", action="store_true", help="show progress until done")
    status = sub.add_parser("status", help="a membership change's state")
    status.add_argument("workflow_id", nargs="?")
    status.add_argument("--region", type=int)
    cancel = sub.add_parser("cancel", help="cancel the running change of a region, or all")
    cancel.add_argument("region", type=int, nargs="?")
    cancel.add_argument("--all", action="store_true", help="every running membership change")
    cancel.add_argument(
        "--timeout", type=float, default=120, help="seconds --all waits for each to end"
    )
    plan = sub.add_parser("plan", help="what a change would do, changing nothing")
    plans = plan.add_subparsers(dest="plan", required=True)
    plans.add_parser("drain", help="the moves that drain a node").add_argument(
        "--node", type=int, required=True
    )
    drain = sub.add_parser("drain", help="move every replica off a node, or steer that drain")
    drain.add_argument(
        "action",
        nargs="?",
        default="start",
        choices=["start", "pause", "resume", "bound"],
        help="start (the default); or, on the running drain: pause, resume, "
        "bound (a new --max-concurrent)",
    )
    drain.add_argument("--node", type=int, required=True)
    drain.add_argument("--max-concurrent", type=count, help="migrations at once (default 2)")
    drain.add_argument("--wait", action="store_true", help="show progress until done")
    migrations = sub.add_parser("migrations", help="every membership change, newest first")
    migrations.add_argument("--running", action="store_true", help="only the running ones")
    throttle = sub.add_parser("throttle", help="a node's transfer throttle, at run time")
    throttle.add_argument("--node", type=int, required=True)
    throttle.add_argument("--mbps", type=float, required=True, help="MB/s; 0 lifts the limit")
    return p


ASYNC: dict[str, Callable[[Ctl], Awaitable[int]]] = {
    "regions": cmd_regions,
    "write": cmd_write,
    "load": cmd_load,
    "digest": cmd_digest,
    "verify": cmd_verify,
    "migrate": cmd_migrate,
    "add-peer": cmd_add_peer,
    "remove-peer": cmd_remove_peer,
    "status": cmd_status,
    "cancel": cmd_cancel,
    "migrations": cmd_migrations,
    "throttle": cmd_throttle,
    "plan": cmd_plan_drain,
    "drain": cmd_drain,
}


def _run(ctl: Ctl, make: Callable[[], Awaitable[int]]) -> int:
    async def go() -> int:
        try:
            return await make()
        finally:
            await ctl.close()

    return asyncio.run(go())


def dispatch(ctl: Ctl) -> int:
    command = ctl.args.command
    if command == "up":
        return cmd_up(ctl)
    if command == "demo":
        return cmd_demo(ctl)
    if command == "region":
        return _run(ctl, lambda: cmd_region_create(ctl))
    return _run(ctl, lambda: ASYNC[command](ctl))


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    ctl = Ctl(args)
    try:
        code = dispatch(ctl)
    except UserError as e:
        print(f"airctl: {e}", file=sys.stderr)
        code = 2
    except grpc.aio.AioRpcError as e:
        print(f"airctl: a node answered {e.code().name}: {e.details()}", file=sys.stderr)
        code = 2
    except RPCError as e:
        print(f"airctl: Temporal answered {e.status.name}: {e.message}", file=sys.stderr)
        code = 2
    except WorkflowQueryFailedError as e:
        print(f"airctl: the workflow refused a query: {e.message}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    # Exit without interpreter finalization: with the Temporal SDK's native runtime and
    # grpc's both loaded, their threads can crash the process while Python tears down
    # (seen as SIGABRT/SIGSEGV after the command had finished). Everything is done and
    # flushed here, so skipping the teardown loses nothing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
