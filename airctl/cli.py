"""airctl: one front door to the local stack and to membership changes: the arguments, and
which module runs each command (up.py: the local stack; data.py: nodes and data; changes.py:
membership changes; operations.py: operations of many moves; check.py: the consistency check,
which registers its own arguments).

Every command takes --cluster (default .air/cluster.json, or AIR_CLUSTER), --json and the
Temporal connection flags, before or after the command.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import grpc
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from airctl import check
from airctl.changes import (
    cmd_add_peer,
    cmd_cancel,
    cmd_migrate,
    cmd_migrations,
    cmd_reconstruct,
    cmd_remove_peer,
    cmd_status,
)
from airctl.context import Ctl
from airctl.data import (
    ACKS,
    cmd_digest,
    cmd_load,
    cmd_node_forget,
    cmd_region_create,
    cmd_regions,
    cmd_throttle,
    cmd_verify,
    cmd_write,
)
from airctl.operations import (
    cmd_autopilot,
    cmd_drain,
    cmd_plan,
    cmd_rebalance,
    cmd_repair,
)
from airctl.up import cmd_demo, cmd_up
from client import connection
from contracts.errors import UserError
from contracts.models import HIGH_WATERMARK

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


def percent(text: str) -> float:
    """An argparse type: a percentage above 0, at most 100."""
    value = float(text)
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(
            f"must be a percentage above 0 and at most 100, not {text}"
        )
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
        c.add_argument("--workers", type=count, default=1, help="worker processes")
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
        "--chaos",
        action="store_true",
        help="SIGKILL the worker at a random moment of the migration (the stack restarts it)",
    )
    demo.add_argument("--seed", type=int, help="--chaos: the seed of its random moments")
    demo.add_argument(
        "--kill-destination",
        action="store_true",
        help="--chaos: SIGKILL the destination node mid-transfer too",
    )
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
    regions = sub.add_parser("regions", help="regions, their replicas' states and sizes; nodes")
    regions.add_argument(
        "--by-node", action="store_true", help="only each node's replicas and bytes"
    )

    nodes = sub.add_parser("node", help="node commands")
    node = nodes.add_subparsers(dest="action", required=True)
    forget = node.add_parser(
        "forget", help="take a node that holds no replica out of the cluster's directory"
    )
    forget.add_argument("node", type=int)

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
    for c in (write, load):
        c.add_argument(
            "--acks",
            choices=list(ACKS),
            default="one",
            help="replicas that must apply each write before it is acknowledged (default one)",
        )
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
    helps = {
        "add-peer": "add a peer to a region",
        "remove-peer": "remove a peer from a region",
        "reconstruct": "rebuild a node's replica of a region from the other replicas",
    }
    for name, help in helps.items():
        c = sub.add_parser(name, help=help)
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
    plan = sub.add_parser("plan", help="what an operation would do, changing nothing")
    plans = plan.add_subparsers(dest="plan", required=True)
    plan_drain = plans.add_parser("drain", help="the moves that drain a node")
    plan_drain.add_argument("--node", type=int, required=True)
    plan_rebalance = plans.add_parser("rebalance", help="the moves that even out the nodes")
    plan_rebalance.add_argument("--nodes", help="move replicas only onto these nodes, e.g. 4,5")
    for c in (plan_drain, plan_rebalance):
        high_watermark(c)
    drain = operation(sub, "drain", "move every replica off a node, or steer that drain")
    drain.add_argument("--node", type=int, required=True)
    rebalance = operation(
        sub, "rebalance", "move replicas from the fullest nodes to the emptiest, or steer that"
    )
    rebalance.add_argument("--nodes", help="move replicas only onto these nodes, e.g. 4,5")
    repair = operation(
        sub, "repair", "a new replica elsewhere for each region of a node that is gone"
    )
    repair.add_argument("--node", type=int, required=True)
    autopilot = sub.add_parser("autopilot", help="repair a node gone for good, by itself")
    autopilot.add_argument("switch", choices=["on", "off", "status"])
    autopilot.add_argument(
        "--dead-after",
        type=positive,
        default=300.0,
        help="seconds a node must stay unreachable to be declared dead (default 300)",
    )
    migrations = sub.add_parser("migrations", help="every membership change, newest first")
    migrations.add_argument("--running", action="store_true", help="only the running ones")
    throttle = sub.add_parser("throttle", help="a node's transfer throttle, at run time")
    throttle.add_argument("--node", type=int, required=True)
    throttle.add_argument("--mbps", type=float, required=True, help="MB/s; 0 lifts the limit")
    check.register(sub)  # a command module that registers its own arguments and handler
    return p


def operation(sub: Any, name: str, help: str) -> argparse.ArgumentParser:
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
    return p


def high_watermark(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--high-watermark",
        type=percent,
        default=HIGH_WATERMARK * 100,
        metavar="PERCENT",
        help=f"no move takes a node's disk past this (default {HIGH_WATERMARK:.0%})",
    )


ASYNC: dict[str, Callable[[Ctl], Awaitable[int]]] = {
    "regions": cmd_regions,
    "write": cmd_write,
    "load": cmd_load,
    "digest": cmd_digest,
    "verify": cmd_verify,
    "migrate": cmd_migrate,
    "add-peer": cmd_add_peer,
    "remove-peer": cmd_remove_peer,
    "reconstruct": cmd_reconstruct,
    "status": cmd_status,
    "cancel": cmd_cancel,
    "migrations": cmd_migrations,
    "throttle": cmd_throttle,
    "plan": cmd_plan,
    "drain": cmd_drain,
    "rebalance": cmd_rebalance,
    "repair": cmd_repair,
    "autopilot": cmd_autopilot,
}


def dispatch(ctl: Ctl) -> int:
    command = ctl.args.command
    if command == "up":
        return cmd_up(ctl)
    if command == "demo":
        return cmd_demo(ctl)
    if command == "region":
        return ctl.run(lambda: cmd_region_create(ctl))
    if command == "node":
        return ctl.run(lambda: cmd_node_forget(ctl))
    handler: Callable[[Ctl], Awaitable[int]] = getattr(ctl.args, "handler", None) or ASYNC[command]
    return ctl.run(lambda: handler(ctl))


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
