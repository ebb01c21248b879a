"""The Temporal worker: runs the membership workflows and their activities.

`python worker.py [--temporal-address HOST:PORT] [--namespace NS] [--cluster cluster.json]`
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client, TLSConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from activities.directory import NodeDirectory
from activities.membership import MembershipActivities
from node.client import NodeClients
from node.killpoints import KillPoints
from workflows.add_peer import AddPeerWorkflow
from workflows.common import TASK_QUEUE
from workflows.drain import DrainNodeWorkflow
from workflows.migration import RegionMigrationWorkflow
from workflows.remove_peer import RemovePeerWorkflow
from workflows.starter import connect

log = logging.getLogger("worker")

WORKFLOWS = [AddPeerWorkflow, RemovePeerWorkflow, RegionMigrationWorkflow, DrainNodeWorkflow]
READY = "worker ready on task queue {queue}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="worker", description=__doc__)
    p.add_argument(
        "--temporal-address", default=os.environ.get("TEMPORAL_ADDRESS", "localhost:7233")
    )
    p.add_argument("--namespace", default=os.environ.get("TEMPORAL_NAMESPACE", "default"))
    p.add_argument("--task-queue", default=TASK_QUEUE)
    p.add_argument(
        "--cluster",
        type=Path,
        default=Path(os.environ.get("AIR_CLUSTER", ".air/cluster.json")),
        help="cluster.json listing the nodes (read on every lookup)",
    )
    p.add_argument(
        "--node",
        action="append",
        default=[],
        metavar="ID=HOST:PORT",
        help="a node's address (repeatable; adds to the cluster file)",
    )
    p.add_argument("--state-dir", type=Path, default=Path(".air/worker"), help="kill point state")
    p.add_argument("--metrics-port", type=int, help="serve the SDK's Prometheus metrics here")
    p.add_argument("--tls-ca", type=Path, help="CA certificate of the Temporal server")
    p.add_argument("--tls-cert", type=Path, help="client certificate for mTLS")
    p.add_argument("--tls-key", type=Path, help="client key for mTLS")
    p.add_argument("--api-key", default=os.environ.get("TEMPORAL_API_KEY"))
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    try:
        args.nodes = {int(i): a for i, a in (n.split("=", 1) for n in args.node)}
    except ValueError:
        p.error("--node takes ID=HOST:PORT, e.g. --node 1=127.0.0.1:50051")
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    return args


def tls_config(args: argparse.Namespace) -> TLSConfig | bool:
    if not (args.tls_ca or args.tls_cert or args.api_key):
        return False
    return TLSConfig(
        server_root_ca_cert=args.tls_ca.read_bytes() if args.tls_ca else None,
        client_cert=args.tls_cert.read_bytes() if args.tls_cert else None,
        client_private_key=args.tls_key.read_bytes() if args.tls_key else None,
    )


async def connect_from(args: argparse.Namespace, runtime: Runtime | None = None) -> Client:
    return await connect(
        args.temporal_address,
        args.namespace,
        tls=tls_config(args),
        api_key=args.api_key,
        runtime=runtime,
    )


async def run(args: argparse.Namespace) -> None:
    runtime = None
    if args.metrics_port is not None:
        metrics = PrometheusConfig(bind_address=f"127.0.0.1:{args.metrics_port}")
        runtime = Runtime(telemetry=TelemetryConfig(metrics=metrics))
    client = await connect_from(args, runtime)
    clients = NodeClients()
    activities = MembershipActivities(
        NodeDirectory(args.cluster, args.nodes),
        clients,
        KillPoints.from_env(args.state_dir),
    )
    worker = Worker(
        client,
        task_queue=args.task_queue,
        workflows=WORKFLOWS,
        activities=activities.all(),
        graceful_shutdown_timeout=timedelta(seconds=5),
        # a dead worker's workflows move to another worker after 2 s, not the default 10 s
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=2),
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log.info(READY.format(queue=args.task_queue))
        await stop.wait()
        log.info("worker stopping")
    await clients.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s worker %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
