"""Upgrades: whether this build may take over from the one running (client/versions.py)."""

from __future__ import annotations

import argparse

from airctl.args import Commands
from airctl.context import Ctl
from client import versions


async def cmd_upgrade_check(ctl: Ctl) -> int:
    """List the running workflows of the task queue that a build older than the floor started:
    exit 0 when there are none (this build may start), 1 when some run."""
    client = await ctl.temporal()
    queue, deployment = ctl.config.task_queue, ctl.args.deployment
    older = await versions.older_than_floor(client, queue, deployment)
    data = {
        "task_queue": queue,
        "deployment": deployment,
        "older_than_floor": [
            {
                "workflow_id": w.workflow_id,
                "type": w.workflow_type,
                "started": w.started.isoformat(),
            }
            for w in older
        ],
        "advice": versions.FLOOR_ADVICE if older else "",
    }
    if not older:
        ctl.emit(
            data,
            f"no running workflow of task queue {queue} was started by a build older than the "
            "floor: this build may start",
        )
        return 0
    lines = [
        f"{len(older)} running workflow(s) of task queue {queue} were started by a build older "
        "than the floor (an unversioned worker):",
        *(f"  {w.workflow_id}  {w.workflow_type}  started {w.started.isoformat()}" for w in older),
        versions.FLOOR_ADVICE,
    ]
    ctl.emit(data, "\n".join(lines))
    return 1


def register(sub: Commands) -> None:
    upgrades = sub.add_parser("upgrade", help="upgrade commands")
    upgrade = upgrades.add_subparsers(dest="action", required=True)
    check: argparse.ArgumentParser = upgrade.add_parser(
        "check",
        help="list running workflows a build older than the floor started (exit 1 if any)",
    )
    check.add_argument(
        "--deployment",
        default=versions.DEPLOYMENT,
        help=f"the worker's Worker Deployment (default {versions.DEPLOYMENT})",
    )
    check.set_defaults(handler=cmd_upgrade_check)
