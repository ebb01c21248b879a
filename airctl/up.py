"""Commands on the local stack: `airctl up` keeps it running; `airctl demo` shows a migration
under load on it, and with --chaos that it survives the worker and a node being killed."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from airctl.changes import start
from airctl.context import Ctl
from airctl.data import create_region, verify
from airctl.load import AckedLog, LoadWriter
from airctl.local_stack import LocalStack
from airctl.progress import follow
from workflows.models import (
    MigrationInput,
)
from workflows.starter import start_change


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
        status = ctl.run(lambda: run_demo(ctl, stack))
        if ctl.args.keep:
            print(
                f"the stack stays up for the UI ({stack.config.ui_url}); Ctrl-C stops it",
                file=sys.stderr,
            )
            stack.run_until_signalled()
        return status
    finally:
        stack.stop()
