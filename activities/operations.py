"""Activities of the autopilot: probe the nodes, see which are drained or repaired, look at
the placement, start a repair, a rebalance or a consistency check. Each is a read, or a start
that a retry cannot double (one run per workflow id).

Activities do not import workflows (a layer above them): the worker hands this class, at
construction, a typed start of each workflow it starts (`Start`), bound to the workflow's run
method. The start's options stay here, beside the reasons a retry is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol, Required, TypedDict, TypeVar, Unpack

import grpc
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from contracts.activity_models import NodeView, Peer
from contracts.check import CheckInput, CheckProgress
from contracts.errors import root_cause
from contracts.ids import REBALANCE_WORKFLOW_ID, drain_workflow_id, repair_workflow_id
from contracts.locality import tier_name, zone_of
from contracts.models import RebalanceInput, RepairInput
from planning.balance import under_diversified
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from runtime.directory import NodeDirectory
from runtime.reading import describe_cluster
from runtime.views import PROBE_TIMEOUT_S, look

In = TypeVar("In", contravariant=True)


class StartOptions(TypedDict, total=False):
    """The options of `Client.start_workflow` these activities set."""

    id: Required[str]
    task_queue: Required[str]
    id_conflict_policy: WorkflowIDConflictPolicy
    id_reuse_policy: WorkflowIDReusePolicy
    static_summary: str
    static_details: str


class Start(Protocol[In]):
    """Start the workflow whose input is `In`: `client.start_workflow(TheWorkflow.run, ...)`."""

    async def __call__(self, request: In, /, **options: Unpack[StartOptions]) -> object: ...


class OperationActivities:
    def __init__(
        self,
        directory: NodeDirectory,
        clients: NodeClients,
        client: Client,
        task_queue: str,
        *,
        start_repair_workflow: Start[RepairInput],
        start_check_workflow: Start[CheckInput],
        start_rebalance_workflow: Start[RebalanceInput],
    ) -> None:
        self.directory = directory
        self.clients = clients
        self.client = client
        self.task_queue = task_queue
        self.start_repair_workflow = start_repair_workflow
        self.start_check_workflow = start_check_workflow
        self.start_rebalance_workflow = start_rebalance_workflow

    @activity.defn
    async def probe_views(self) -> dict[int, NodeView]:
        """How each known node looks: asked directly and, if it does not answer, through the
        live nodes (runtime/views.py); and its zone, as the directory names it. Read-only."""
        views = await look(self.directory.all(), self.clients)
        zones = {n: zone_of(tiers) for n, tiers in self.directory.localities().items()}
        return {n: v.model_copy(update={"zone": zones.get(n, "")}) for n, v in views.items()}

    @activity.defn
    async def under_diversified(self) -> int:
        """How many regions one move of a replica would make more diverse: the cluster
        described, judged as `airctl placement` judges it. Read-only."""
        directory = self.directory
        cluster = await describe_cluster(directory.all(), self.clients, directory.localities())
        return len(under_diversified(cluster))

    @activity.defn
    async def start_rebalance(self, zones: list[str]) -> str:
        """Start a rebalance, `zones` being back; its workflow id. A retry, or one running
        already, finds it and leaves it be (one run per id)."""
        back = ", ".join(tier_name(z) for z in zones)
        await self.start_rebalance_workflow(
            RebalanceInput(),
            id=REBALANCE_WORKFLOW_ID,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary="rebalance: raise the regions left under-diversified, even bytes",
            static_details=f"started by the autopilot: {back} answers again",
        )
        return REBALANCE_WORKFLOW_ID

    @activity.defn
    async def probe_nodes(self) -> dict[int, bool]:
        """Whether each known node answers (a one-region ListRegions): the worker's view alone,
        for an autopilot started before indirect probes (patches.INDIRECT_PROBES). Read-only."""
        nodes = self.directory.all()
        answers = await asyncio.gather(*(self._answers(n) for n in nodes))
        return {n.node_id: up for n, up in zip(nodes, answers, strict=True)}

    async def _answers(self, node: Peer) -> bool:
        try:
            stub = self.clients.stub(node.address)
            await stub.ListRegions(pb.ListRegionsRequest(limit=1), timeout=PROBE_TIMEOUT_S)
        except grpc.aio.AioRpcError:
            return False
        return True

    @activity.defn
    async def draining(self, nodes: list[int]) -> list[int]:
        """Those of `nodes` a drain is running for. Read-only."""
        running = await asyncio.gather(*(self._running(drain_workflow_id(n)) for n in nodes))
        return [n for n, r in zip(nodes, running, strict=True) if r]

    @activity.defn
    async def start_repair(self, node: int) -> str:
        """Start repairing `node`; its workflow id. A retry finds the repair running and
        leaves it be (one run per id); one that already ended plans nothing left to do."""
        workflow_id = repair_workflow_id(node)
        await self.start_repair_workflow(
            RepairInput(node=node),
            id=workflow_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"repair node {node}: a new replica for each of its regions",
            static_details="started by the autopilot",
        )
        return workflow_id

    @activity.defn
    async def repair_outcome(self, node: int) -> str | None:
        """None while the repair of `node` runs; how it ended once it has. Read-only."""
        handle = self.client.get_workflow_handle(repair_workflow_id(node))
        if await self._running(handle.id):
            return None
        try:
            result = await handle.result(follow_runs=True)
        except WorkflowFailureError as e:
            return f"failed: {root_cause(e)}"
        message = result.get("message", "") if isinstance(result, dict) else ""
        return str(message) or "ended"

    @activity.defn
    async def start_check(self, workflow_id: str, repair: bool) -> str:
        """Start a check of every region under `workflow_id`; its id. The autopilot picks the
        id before the call and an id runs once, so a retry finds that run, running or ended,
        and starts no other."""
        what = "check the replicas of every region" + (", repairing a minority" if repair else "")
        with contextlib.suppress(WorkflowAlreadyStartedError):  # it ended: started once
            await self.start_check_workflow(
                CheckInput(repair=repair),
                id=workflow_id,
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=what,
                static_details="started by the autopilot",
            )
        return workflow_id

    @activity.defn
    async def check_outcome(self, workflow_id: str) -> str | None:
        """None while the check runs; what it found, in a line, once it ended. Read-only."""
        if await self._running(workflow_id):
            return None
        handle = self.client.get_workflow_handle(workflow_id, result_type=CheckProgress)
        try:
            found: CheckProgress = await handle.result(follow_runs=True)
        except WorkflowFailureError as e:
            return f"failed: {root_cause(e)}"
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:  # past its retention: the autopilot goes on
                return "ended; its record is gone"
            raise
        lines = [f"{found.equal} of {found.total} region(s) equal"]
        lines += [r.line() for r in found.diverged]
        if found.unchecked:
            lines.append(f"{len(found.unchecked)} not checked")
        return "; ".join(lines)

    async def _running(self, workflow_id: str) -> bool:
        try:
            described = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return described.status == WorkflowExecutionStatus.RUNNING

    def all(self) -> list[Callable[..., Awaitable[object]]]:
        return [
            self.probe_views,
            self.probe_nodes,
            self.draining,
            self.start_repair,
            self.repair_outcome,
            self.start_check,
            self.check_outcome,
            self.under_diversified,
            self.start_rebalance,
        ]
