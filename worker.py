"""The Temporal worker: runs the membership workflows and their activities.

`python worker.py [--temporal-address HOST:PORT] [--namespace NS] [--cluster cluster.json]`
Temporal connection settings also come from TEMPORAL_* and temporal.toml (envconfig).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import Unpack

from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError
from temporalio.worker import Worker, WorkerDeploymentConfig, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.catalog import node_activities
from activities.keep_alive import KeepAlive
from activities.operations import OperationActivities, StartOptions
from client import connection, versions
from contracts import search_attributes
from contracts.check import CheckInput
from contracts.ids import TASK_QUEUE
from contracts.models import RebalanceInput, RepairInput
from runtime.clients import NodeClients
from runtime.directory import NodeDirectory
from runtime.killswitch import KillPoints
from runtime.tls import TlsError, tls_from_flags
from workflows.add_peer import AddPeerWorkflow
from workflows.autopilot import AutopilotWorkflow
from workflows.check import CheckReplicasWorkflow
from workflows.drain import DrainNodeWorkflow
from workflows.migration import RegionMigrationWorkflow
from workflows.rebalance import RebalanceWorkflow
from workflows.reconstruct import ReconstructRegionWorkflow
from workflows.remove_peer import RemovePeerWorkflow
from workflows.repair import RepairNodeWorkflow

log = logging.getLogger("worker")

WORKFLOWS = [
    AddPeerWorkflow,
    RemovePeerWorkflow,
    RegionMigrationWorkflow,
    DrainNodeWorkflow,
    RebalanceWorkflow,
    RepairNodeWorkflow,
    AutopilotWorkflow,
    ReconstructRegionWorkflow,
    CheckReplicasWorkflow,
]
# The sandbox imports a workflow's modules afresh for every run, unless they are passed
# through: ours hold no state and do nothing on import, so they and their dependencies are
# imported once. The sandbox still refuses non-deterministic calls in them.
PASSED_THROUGH = (
    "contracts",
    "runtime",
    "planning",
    "activities",
    "protos",
    "workflows",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_inspection",
    "google.protobuf",
    "cryptography",
)
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH)
)
READY = "worker ready on task queue {queue}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="worker", description=__doc__)
    connection.add_arguments(p)
    p.add_argument("--task-queue", default=TASK_QUEUE)
    p.add_argument(
        "--identity", help="this worker's name in workflow histories (default: pid@host)"
    )
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
    p.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="the address metrics are served on (a worker on a test host: the host's)",
    )
    p.add_argument(
        "--deployment",
        default=versions.DEPLOYMENT,
        help=f"the Worker Deployment this worker is a version of (default {versions.DEPLOYMENT})",
    )
    p.add_argument(
        "--build-id",
        default=versions.BUILD_ID,
        help=f"this worker's version (default: the package version, {versions.BUILD_ID})",
    )
    p.add_argument(
        "--make-current",
        action="store_true",
        help="make this build the deployment's current version (the first build always is)",
    )
    p.add_argument("--node-tls-ca", type=Path, help="CA of the nodes' mutual TLS")
    p.add_argument("--node-tls-cert", type=Path, help="certificate presented to the nodes")
    p.add_argument("--node-tls-key", type=Path, help="its private key")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    try:
        args.nodes = {int(i): a for i, a in (n.split("=", 1) for n in args.node)}
    except ValueError:
        p.error("--node takes ID=HOST:PORT, e.g. --node 1=127.0.0.1:50051")
    try:
        args.temporal = connection.resolve(connection.TemporalFlags.from_args(args))
    except connection.BadConnectionSettings as e:
        p.error(str(e))
    return args


def node_clients(args: argparse.Namespace) -> NodeClients:
    """mTLS to the nodes from the --node-tls-* flags, else from the cluster file, else none."""
    try:
        tls = tls_from_flags(args.node_tls_ca, args.node_tls_cert, args.node_tls_key)
        tls = tls or NodeDirectory(args.cluster).tls()
        clients = NodeClients(tls)
    except TlsError as e:
        raise SystemExit(f"worker: {e}") from None
    log.info("nodes over %s", f"mutual TLS (CA {tls.ca})" if tls else "plaintext")
    return clients


async def check_search_attributes(client: Client) -> None:
    """Refuse to start where a workflow would wedge upserting an unregistered attribute."""
    lacking = await search_attributes.missing(client)
    if lacking is None:
        log.warning(
            "cannot list the search attributes of %s; make sure it has %s",
            client.namespace,
            search_attributes.declared(),
        )
    elif lacking:
        names = ", ".join(f"{name} ({kind})" for name, kind in lacking.items())
        raise SystemExit(
            f"worker: namespace {client.namespace} lacks the search attributes {names}; "
            f"add them with: {search_attributes.create_command(client.namespace, lacking)}"
        )


async def check_floor(client: Client, args: argparse.Namespace) -> None:
    """Refuse to start while a workflow that a build older than the floor started runs: this
    build could not replay it (client/versions.py)."""
    try:
        older = await versions.older_than_floor(client, args.task_queue, args.deployment)
    except RPCError as e:
        log.warning(
            "cannot list the workflows of task queue %s that a build older than the floor "
            "started (%s: %s); make sure none runs (`airctl upgrade check`)",
            args.task_queue,
            e.status.name,
            e.message,
        )
        return
    if older:
        raise SystemExit(f"worker: {versions.floor_refusal(args.task_queue, older)}")


def deployment_config(args: argparse.Namespace) -> WorkerDeploymentConfig:
    """This worker as a version of the deployment; each workflow says if it is pinned (an SDK
    worker without versioning refuses workflows that say so)."""
    version = WorkerDeploymentVersion(deployment_name=args.deployment, build_id=args.build_id)
    return WorkerDeploymentConfig(version=version, use_worker_versioning=True)


async def become_current_if_first(client: Client, args: argparse.Namespace) -> None:
    """With --make-current, or when the deployment has no current version yet (its first
    build), make this build current; otherwise it serves what is pinned to it, and what the
    operator routes to it."""
    current = await versions.current_build(client, args.deployment)
    if args.make_current or current is None:
        await versions.make_current(client, args.deployment, args.build_id)
        log.info("build %s is the current version of deployment %s", args.build_id, args.deployment)
    elif current != args.build_id:
        log.info(
            "build %s of deployment %s is running beside the current build %s: make it "
            "current with `temporal worker deployment set-current-version --deployment-name "
            "%s --build-id %s`",
            args.build_id,
            args.deployment,
            current,
            args.deployment,
            args.build_id,
        )


def operation_activities(
    directory: NodeDirectory, clients: NodeClients, client: Client, task_queue: str
) -> OperationActivities:
    """The autopilot's activities, starting the repair and the check by their typed run."""

    async def start_repair(request: RepairInput, **options: Unpack[StartOptions]) -> None:
        await client.start_workflow(RepairNodeWorkflow.run, request, **options)

    async def start_check(request: CheckInput, **options: Unpack[StartOptions]) -> None:
        await client.start_workflow(CheckReplicasWorkflow.run, request, **options)

    async def start_rebalance(request: RebalanceInput, **options: Unpack[StartOptions]) -> None:
        await client.start_workflow(RebalanceWorkflow.run, request, **options)

    return OperationActivities(
        directory,
        clients,
        client,
        task_queue,
        start_repair_workflow=start_repair,
        start_check_workflow=start_check,
        start_rebalance_workflow=start_rebalance,
    )


async def run(args: argparse.Namespace, workflow_runner: WorkflowRunner = WORKFLOW_RUNNER) -> None:
    runtime = None
    if args.metrics_port is not None:
        metrics = PrometheusConfig(bind_address=f"{args.metrics_host}:{args.metrics_port}")
        runtime = Runtime(telemetry=TelemetryConfig(metrics=metrics))
    log.info("connecting to Temporal at %s", connection.describe(args.temporal))
    client = await connection.connect(args.temporal, runtime)
    await check_search_attributes(client)
    await check_floor(client, args)
    clients = node_clients(args)
    directory = NodeDirectory(args.cluster, args.nodes)
    on_nodes = node_activities(directory, clients, KillPoints.from_env(args.state_dir))
    operations = operation_activities(directory, clients, client, args.task_queue)
    worker = Worker(
        client,
        deployment_config=deployment_config(args),
        task_queue=args.task_queue,
        identity=args.identity,
        workflows=WORKFLOWS,
        workflow_runner=workflow_runner,
        activities=[*on_nodes, *operations.all()],
        interceptors=[KeepAlive()],  # a dead worker's activity is retried within seconds
        graceful_shutdown_timeout=timedelta(seconds=5),
        # a dead worker's workflows move to another worker after 2 s, not the default 10 s
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=2),
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        await become_current_if_first(client, args)
        log.info(READY.format(queue=args.task_queue))
        await stop.wait()
        log.info("worker stopping: running activities have 5 s, then go to another worker")
    await clients.close()
    log.info("worker stopped")


def main(argv: list[str] | None = None, workflow_runner: WorkflowRunner = WORKFLOW_RUNNER) -> None:
    """Run the worker until SIGTERM or SIGINT. `workflow_runner`: how workflows are run (a
    benchmark's baseline passes another sandbox)."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s worker %(levelname)s %(name)s: %(message)s",
    )
    code = 0
    try:
        asyncio.run(run(args, workflow_runner))
    except SystemExit as e:  # a refusal to start: said, then the same exit as a stop
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
        code = e.code if isinstance(e.code, int) else 1
    # Exit without interpreter finalization: the SDK's native runtime and grpc's threads can
    # abort a finalizing process ("Fatal Python error: PyGILState_Release"), after everything
    # was done. Nothing is left to flush but the log.
    logging.shutdown()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
