"""Commands on the local stack: `airctl up` keeps it running; `airctl demo` shows a migration
under load on it, and with --chaos that it survives the worker and a node being killed."""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from temporalio.client import WorkflowHandle

from airctl.args import Commands, count
from airctl.changes import start
from airctl.context import Ctl
from airctl.data import ASK_TIMEOUT_S, create_region, verify
from airctl.progress import follow_change
from client.load import AckedLog, LoadWriter
from client.starter import start_change
from client.status import running
from contracts.errors import UserError
from contracts.models import MigrationInput
from contracts.rates import rate_limit
from protos import air_node_pb2 as pb
from stack.hosts import SLOTS, Network, missing_requirements
from stack.local import LocalStack
from stack.processes import ManagedProcess
from workflows.migration import RegionMigrationWorkflow


def stack_from(args: argparse.Namespace, data_dir: Path, cluster_file: Path) -> LocalStack:
    if args.racks and not args.zones:
        raise UserError("--racks deals racks within zones: give --zones too")
    network = None
    if getattr(args, "hosts", False):
        missing = missing_requirements()
        if missing is not None:
            raise UserError(f"up --hosts: {missing}")
        network = Network.claim(args.nodes, args.slot)
    return LocalStack(
        data_dir,
        nodes=args.nodes,
        temporal_port=args.temporal_port,
        ui_port=args.ui_port,
        base_port=args.base_port,
        cluster_file=cluster_file,
        node_args=(
            ["--transfer-rate-limit", str(args.transfer_rate_limit)]
            if args.transfer_rate_limit is not None
            else None
        ),
        tls=args.tls,
        workers=args.workers,
        network=network,
        zones=args.zones or 0,
        racks=args.racks or 0,
    )


def cmd_up(ctl: Ctl) -> int:
    logging.basicConfig(format="%(asctime)s airctl up: %(message)s", level=logging.INFO)
    stack = stack_from(ctl.args, ctl.args.data_dir, ctl.path)
    stack.start()
    metrics = stack.metrics_urls
    network = stack.network
    hosts = (
        f"test hosts (slot {network.slot}, {network.subnet}; `airctl fault` cuts them):\n"
        + "".join(f"  {line}\n" for line in network.describe())
        if network is not None
        else ""
    )
    ctl.emit(
        {
            **stack.config.model_dump(mode="json"),
            "metrics": metrics,
            "targets": str(stack.targets_file),
            "network": network.state().model_dump() if network is not None else None,
        },
        f"{hosts}"
        f"stack up: Temporal UI {stack.config.ui_url}\n"
        f"metrics: {', '.join(f'{n} {u}' for n, u in metrics.items())}\n"
        f"Prometheus: --config.file deploy/prometheus-local.yml (targets {stack.targets_file})\n"
        f"cluster file {ctl.path}; Ctrl-C stops everything",
    )
    sys.stdout.flush()
    try:
        stack.run_until_signalled()
    finally:
        stack.stop()
    return 0


# --chaos: the region holds this much before the migration, and the nodes send at this rate,
# so the migration lasts seconds and a kill lands in the middle of it
CHAOS_POINTS = 100_000
CHAOS_BYTES_PER_S = 500_000


async def run_demo(ctl: Ctl, stack: LocalStack) -> int:
    region, log = 1, stack.data_dir / "acked.log"
    chaos = Chaos(ctl, stack) if ctl.args.chaos else None
    keeping_up = asyncio.create_task(keep_up(stack))  # a killed process comes back

    say(ctl, f"stack up; Temporal UI: {stack.config.ui_url}")
    await create_region(ctl, region, [1, 2, 3])
    bulk = LoadWriter(ctl.stub, region, [1], series="bulk", batch=5000, log=AckedLog(log))
    if chaos is not None:
        await bulk.run(count=CHAOS_POINTS)
        await chaos.slow_down()
    writer = LoadWriter(ctl.stub, region, [1, 2, 3, 4], batch=50, log=AckedLog(log))
    writer.start(rate=ctl.args.rate)
    await writer.wait_acked(ctl.args.rate, timeout=60)
    say(
        ctl,
        f"region {region} on nodes 1,2,3 under load ({ctl.args.rate} points/s); migrating 1 -> 4",
    )
    client = await ctl.temporal()
    request = MigrationInput(region=region, from_node=1, to_node=4)
    handle = (await start(start_change(client, RegionMigrationWorkflow.run, request))).handle
    began = time.monotonic()
    havoc = asyncio.create_task(chaos.strike(handle, region, began)) if chaos else None
    if not ctl.json:
        await follow_change(client, handle)
    result = await handle.result()
    seconds = time.monotonic() - began
    if havoc is not None:
        await havoc
    keeping_up.cancel()
    await writer.wait_acked(len(writer.acked) + ctl.args.rate // 2, timeout=60)
    await writer.stop()
    ok, report = await verify(ctl, region, log, timeout=60)
    summary = {
        "migration_s": round(seconds, 2),
        "result": result.message,
        "verify": report,
        "ui": ctl.workflow_url(handle.id),
        "chaos": chaos.report if chaos else None,
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


def say(ctl: Ctl, text: str) -> None:
    if not ctl.json:
        print(text, file=sys.stderr)


async def keep_up(stack: LocalStack) -> None:
    """Restart what dies, from this thread (the one that started the stack)."""
    while True:
        stack.supervisor.check()
        await asyncio.sleep(0.25)


class Chaos:
    """The demo's migration, with the worker SIGKILLed at a random moment (seeded) and, with
    --kill-destination, the destination node SIGKILLed mid-transfer; the supervisor brings each
    back."""

    def __init__(self, ctl: Ctl, stack: LocalStack) -> None:
        self.ctl = ctl
        self.stack = stack
        seed = ctl.args.seed if ctl.args.seed is not None else random.randrange(1 << 32)
        self.rng = random.Random(seed)
        self.report: dict[str, Any] = {"seed": seed, "killed": []}
        say(ctl, f"chaos: seed {seed} (run again with --seed {seed} for the same moments)")

    async def slow_down(self) -> None:
        """Throttle the nodes, so that the transfer of the region lasts a few seconds."""
        request = pb.ThrottleRequest(bytes_per_s=CHAOS_BYTES_PER_S)
        for node in self.stack.nodes:
            await self.ctl.stub(node.node_id).SetThrottle(request, timeout=10)

    async def strike(self, handle: WorkflowHandle[Any, Any], region: int, began: float) -> None:
        await asyncio.sleep(self.rng.uniform(0.2, 3.0))  # the random moment: the point of it
        self._kill(self.stack.worker, began)
        if self.ctl.args.kill_destination:
            while not await self._receiving(region):
                if not await running(handle):
                    say(self.ctl, "chaos: the migration was over before node 4 could be killed")
                    return
                await asyncio.sleep(0.1)
            self._kill(self.stack.nodes[3], began)

    async def _receiving(self, region: int) -> bool:
        """Whether node 4 holds the region and has not been activated: mid-transfer."""
        try:
            request = pb.RegionRequest(region=region)
            info = await self.ctl.stub(4).DescribeRegion(request, timeout=ASK_TIMEOUT_S)
        except grpc.aio.AioRpcError:
            return False  # not there yet, or restarting
        return not info.active

    def _kill(self, process: ManagedProcess, began: float) -> None:
        pid = process.proc.pid if process.proc else None
        process.kill()
        at = time.monotonic() - began
        self.report["killed"].append({"process": process.name, "pid": pid, "at_s": round(at, 2)})
        say(self.ctl, f"chaos: SIGKILLed {process.name} (pid {pid}) {at:.1f}s into the migration")


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


# -- arguments --------------------------------------------------------------------------------


def register(sub: Commands) -> None:
    """`up` and `demo`: they reach Temporal by the stack's own settings, not the flags."""
    up = sub.add_parser("up", help="run the local stack in the foreground", temporal_flags=False)
    _stack_options(up, ".air")
    up.add_argument(
        "--hosts",
        action="store_true",
        help="each node, the worker and a client on a test host of its own (network "
        "namespaces on a bridge; needs root, ip and nft): `airctl fault` then cuts them",
    )
    up.add_argument(
        "--slot",
        type=int,
        choices=range(SLOTS),
        help="--hosts: which of the test networks' slots to take (default: a free one)",
    )
    up.set_defaults(handler=cmd_up)
    demo = sub.add_parser(
        "demo", help="stack, region, load, migration, verification", temporal_flags=False
    )
    _stack_options(demo, ".air/demo")
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
    demo.set_defaults(handler=cmd_demo)


def _stack_options(c: argparse.ArgumentParser, data_dir: str) -> None:
    c.add_argument("--nodes", type=count, default=4)
    c.add_argument(
        "--zones",
        type=count,
        help="deal the nodes into this many zones in turn (zone=a, zone=b, ...): each node's "
        "--locality, and the cluster file's",
    )
    c.add_argument(
        "--racks", type=count, help="--zones: and into this many racks within each zone in turn"
    )
    c.add_argument("--workers", type=count, default=1, help="worker processes")
    c.add_argument("--data-dir", type=Path, default=Path(data_dir))
    c.add_argument("--temporal-port", type=int, default=7233)
    c.add_argument("--ui-port", type=int, default=8233)
    c.add_argument("--base-port", type=int, default=50051)
    c.add_argument(
        "--transfer-rate-limit",
        type=rate_limit,
        metavar="MB_PER_S|auto",
        help="node migration throttle (0: none); auto: snapshots as fast as the node's user "
        "writes stay quick (the nodes' default)",
    )
    c.add_argument(
        "--tls",
        action="store_true",
        help="mutual TLS between nodes, worker and airctl (a throwaway CA in DATA_DIR/tls)",
    )
