"""airctl: one front door to the local stack, the data, membership changes, operations and
the consistency check. Each command module registers its own commands, their arguments and
their handler (up.py: the local stack; data.py: nodes and data; changes.py: membership
changes; operations.py: operations of many moves; check.py: the consistency check;
faults.py: faults between the test hosts of `up --hosts`; upgrade.py: whether a new build may
take over).

Every command takes --cluster (default .air/cluster.json, or AIR_CLUSTER), --json and the
Temporal connection flags, before or after the command.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Awaitable, Callable
from typing import cast

import grpc
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from airctl import changes, check, data, faults, operations, up, upgrade
from airctl.args import CommandParser, Parser, global_options
from airctl.context import Ctl
from contracts.errors import UserError

COMMAND_MODULES = (up, data, changes, operations, check, faults, upgrade)


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="airctl", description=__doc__)
    global_options(p, after_command=False, temporal=True)
    sub = p.add_subparsers(dest="command", required=True, parser_class=CommandParser)
    for module in COMMAND_MODULES:
        module.register(sub)
    return p


def dispatch(ctl: Ctl) -> int:
    """The command's handler: `up` and `demo` run their own loop; the others run in one."""
    handler: Callable[[Ctl], int | Awaitable[int]] = ctl.args.handler
    if not inspect.iscoroutinefunction(handler):
        return cast(int, handler(ctl))
    run = cast(Callable[[Ctl], Awaitable[int]], handler)
    return ctl.run(lambda: run(ctl))


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
    # (SIGABRT or SIGSEGV after the command has finished). Everything is done and
    # flushed here, so skipping the teardown loses nothing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
