"""Nodes, a real Temporal dev server and real worker processes, as the workflow tests use them."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.types import MethodAsyncSingleParam

from client.starter import (
    VALIDATE_WITHIN_S,
    ChangeIn,
    Operation,
    OperationIn,
    start_autopilot,
    start_change,
    start_operation,
)
from contracts.models import AutopilotInput, Progress
from runtime.cluster_file import ClusterFile, NodeEntry
from stack.processes import WorkerProcess
from tests.support.cluster import Cluster
from workflows.autopilot import AutopilotWorkflow
from workflows.machinery.change import MembershipChange

Change = TypeVar("Change", bound=MembershipChange)
R = TypeVar("R")


class Stack:
    def __init__(self, cluster: Cluster, client: Client, temporal_address: str) -> None:
        self.cluster = cluster
        self.client = client
        self.temporal_address = temporal_address
        # a task queue of its own: nothing another test left behind runs here
        self.task_queue = f"air-test-{uuid.uuid4().hex[:8]}"
        self.cluster_file = cluster.root / "cluster.json"
        self.workers: dict[str, WorkerProcess] = {}
        self.handles: list[WorkflowHandle[Any, Any]] = []

    def write_cluster_file(self) -> None:
        where = self.cluster.localities
        nodes = [
            NodeEntry(id=i, address=n.address, locality=where.get(i, []))
            for i, n in sorted(self.cluster.nodes.items())
        ]
        ClusterFile(nodes=nodes).save(self.cluster_file)

    def start_worker(
        self,
        name: str = "worker",
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> WorkerProcess:
        """A worker on this stack's task queue: on the worker host if the cluster's nodes are
        on test hosts (reaching Temporal by the network's relay), else on loopback."""
        self.write_cluster_file()
        network = self.cluster.network
        worker = WorkerProcess(
            name,
            self.cluster.root / f"{name}.log",
            self.temporal_address
            if network is None
            else network.relay_temporal(self.temporal_address),
            self.cluster_file,
            self.cluster.root / f"{name}-state",
            env=env,
            extra_args=["--task-queue", self.task_queue, "--identity", name, *(extra_args or [])],
            host=network.worker if network is not None else None,
        )
        self.workers[name] = worker
        return worker.start()

    async def four_nodes(self, *regions: int) -> Cluster:
        """Nodes 1-4, each region on nodes 1-3, and a worker: most tests' cluster."""
        for i in (1, 2, 3, 4):
            self.cluster.add_node(i)
        for region in regions:
            await self.cluster.create_region(region, [1, 2, 3])
        self.start_worker()
        return self.cluster

    async def start(
        self,
        run: MethodAsyncSingleParam[Change, ChangeIn, R],
        request: ChangeIn,
        validate_within: float | None = VALIDATE_WITHIN_S,
    ) -> WorkflowHandle[Change, R]:
        """Start a change as airctl does: returns once the workflow has validated it."""
        started = await start_change(self.client, run, request, self.task_queue, validate_within)
        self.handles.append(started.handle)
        return started.handle

    async def operation(
        self, run: MethodAsyncSingleParam[Operation, OperationIn, R], request: OperationIn
    ) -> WorkflowHandle[Operation, R]:
        """Start a drain, a repair or a rebalance, once it planned (refusals raise)."""
        started = await start_operation(self.client, run, request, self.task_queue)
        self.handles.append(started.handle)
        return started.handle

    async def autopilot(self, request: AutopilotInput) -> WorkflowHandle[AutopilotWorkflow, None]:
        handle = await start_autopilot(self.client, request, self.task_queue)
        self.handles.append(handle)
        return handle

    async def progress(self, handle: WorkflowHandle[Any, Any]) -> Progress:
        """A membership change's progress, whichever it is."""
        return await handle.query(MembershipChange.progress)

    async def record_histories(self, directory: Path, test_name: str) -> None:
        """Save each workflow's history (children too) for the replay test."""
        directory.mkdir(parents=True, exist_ok=True)
        for workflow_id in sorted({h.id for h in self.handles}):
            with contextlib.suppress(RPCError):  # a child that never started
                history = await self.client.get_workflow_handle(workflow_id).fetch_history()
                if len(history.events) < 10:  # its start alone: it replays nothing
                    continue
                name = f"{test_name}@{workflow_id.replace('/', '~')}.json"
                (directory / name).write_text(history.to_json())

    async def close(self) -> None:
        for handle in self.handles:
            with contextlib.suppress(Exception):  # best effort: the test has its verdict
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate("test over")
        for worker in self.workers.values():
            worker.kill()
