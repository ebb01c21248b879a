"""Nodes as the workflows see them through their activities, faked in memory: each activity
registered under the real one's name, answering from a small model of the replicas, recording
what it was asked, refusing when told to. And a versioned worker to run real workflows on it
against the session's dev server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker, WorkerDeploymentConfig

from client import versions
from contracts.activity_models import (
    CaptureTargetInput,
    CatchUpInput,
    ChannelsInput,
    ClusterDescription,
    CreateLocalPeerInput,
    Peer,
    RegionDescription,
    ReleaseInput,
    ReplicaState,
    SetActiveInput,
    StepResult,
    TransferProgress,
    WaitTransferInput,
)
from contracts.errors import NODE_REFUSED
from contracts.plans import PlanMade, PlanRequest
from planning.requests import answer
from worker import WORKFLOW_RUNNER


@dataclass
class Replica:
    active: bool = True
    installed: bool = True
    leaving: bool = False


def peer(node: int) -> Peer:
    return Peer(node_id=node, address=f"127.0.0.1:{node}")


@dataclass
class FakeNodes:
    """Nodes `nodes`, region -> {node: replica}; `silent` nodes do not answer, nor do those
    that `went_silent` once the first description of the cluster (an operation's plan) saw
    them answer. Each call is kept in `calls` as `(activity, node)`; an activity named in
    `refusals` is refused."""

    nodes: list[int]
    replicas: dict[int, dict[int, Replica]]
    silent: set[int] = field(default_factory=set)
    went_silent: set[int] = field(default_factory=set)
    # silent to the first description of a region (an operation's plan), answering after it
    came_back: set[int] = field(default_factory=set)
    refusals: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)
    waits: list[list[int]] = field(default_factory=list)  # each wait's receivers
    peers: dict[int, list[int]] = field(default_factory=dict)  # region -> its peer list

    def __post_init__(self) -> None:
        for region, held in self.replicas.items():
            self.peers.setdefault(region, sorted(held))

    def called(self, name: str, node: int) -> None:
        self.calls.append((name, node))
        if name in self.refusals:
            raise ApplicationError(self.refusals[name], type=NODE_REFUSED, non_retryable=True)

    def silent_now(self) -> set[int]:
        described = any(name == "describe_cluster" for name, _ in self.calls)
        planned = any(name == "describe_region" for name, _ in self.calls)
        return (
            self.silent
            | (self.went_silent if described else set())
            | (set() if planned else self.came_back)
        )

    def holders(self, region: int) -> list[int]:
        silent = self.silent_now()
        return sorted(n for n in self.replicas.get(region, {}) if n not in silent)

    # -- reading ----------------------------------------------------------------------------

    @activity.defn(name="describe_region")
    async def describe_region(self, region: int) -> RegionDescription:
        members = [peer(n) for n in self.peers.get(region, [])]
        described = RegionDescription(
            region=region,
            replicas=[
                ReplicaState(
                    node_id=n,
                    address=peer(n).address,
                    peers=members,
                    active=self.replicas[region][n].active,
                    installed=self.replicas[region][n].installed,
                    leaving=self.replicas[region][n].leaving,
                )
                for n in self.holders(region)
            ],
            known_nodes=[peer(n) for n in self.nodes],
            unreachable=sorted(self.silent_now()),
        )
        self.calls.append(("describe_region", region))
        return described

    @activity.defn(name="describe_cluster")
    async def describe_cluster(self, node: int) -> ClusterDescription:
        described = ClusterDescription(
            nodes=[peer(n) for n in self.nodes],
            holders={r: self.holders(r) for r in self.replicas},
            peers=dict(self.peers),
            unreachable=sorted(self.silent_now()),
        )
        self.calls.append(("describe_cluster", node))
        return described

    @activity.defn(name="plan")
    async def plan(self, request: PlanRequest) -> PlanMade:
        return answer(await self.describe_cluster(0), request)

    # -- membership ---------------------------------------------------------------------------

    @activity.defn(name="create_local_peer")
    async def create_local_peer(self, step: CreateLocalPeerInput) -> StepResult:
        self.called("create_local_peer", step.node.node_id)
        self.replicas.setdefault(step.region, {})[step.node.node_id] = Replica(
            active=False, installed=False
        )
        self.peers[step.region] = sorted(p.node_id for p in step.peers)
        return StepResult(changed=True)

    @activity.defn(name="activate_peer")
    async def activate_peer(self, step: SetActiveInput) -> StepResult:
        self.called("activate_peer", step.node.node_id)
        self.replicas[step.region][step.node.node_id].active = True
        return StepResult(changed=True)

    @activity.defn(name="inactivate_peer")
    async def inactivate_peer(self, step: SetActiveInput) -> StepResult:
        self.called("inactivate_peer", step.node.node_id)
        replica = self.replicas[step.region][step.node.node_id]
        replica.active, replica.leaving = False, step.for_deletion
        return StepResult(changed=True)

    @activity.defn(name="notify_peers_to_create_channels")
    async def notify_peers_to_create_channels(self, step: ChannelsInput) -> StepResult:
        self.called("notify_peers_to_create_channels", step.target.node_id)
        return StepResult(changed=True)

    @activity.defn(name="notify_peers_to_drop_channels")
    async def notify_peers_to_drop_channels(self, step: ChannelsInput) -> StepResult:
        self.called("notify_peers_to_drop_channels", step.target.node_id)
        self.peers[step.region] = [n for n in self.peers[step.region] if n != step.target.node_id]
        return StepResult(changed=True)

    @activity.defn(name="wait_release")
    async def wait_release(self, step: ReleaseInput) -> StepResult:
        self.called("wait_release", step.node.node_id)
        return StepResult(changed=True, message="released")

    @activity.defn(name="delete_local_peer")
    async def delete_local_peer(self, step: ReleaseInput) -> StepResult:
        self.called("delete_local_peer", step.node.node_id)
        self.replicas[step.region].pop(step.node.node_id, None)
        return StepResult(changed=True)

    # -- transfer -----------------------------------------------------------------------------

    @activity.defn(name="capture_target")
    async def capture_target(self, step: CaptureTargetInput) -> dict[int, int]:
        return {origin: 1 for origin in step.origins or [n.node_id for n in step.nodes]}

    @activity.defn(name="wait_transfer_complete")
    async def wait_transfer_complete(self, step: WaitTransferInput) -> TransferProgress:
        self.waits.append([r.node_id for r in step.receivers])
        silent = [r.node_id for r in step.receivers if r.node_id in self.silent_now()]
        if silent:
            return TransferProgress(complete=False, lag=1, unreachable=silent)
        for receiver in step.receivers:
            self.replicas[step.region][receiver.node_id].installed = True
        return TransferProgress(complete=True, lag=0)

    @activity.defn(name="catch_up_dead_origin")
    async def catch_up_dead_origin(self, step: CatchUpInput) -> StepResult:
        self.called("catch_up_dead_origin", step.origin)
        return StepResult()

    def activities(self) -> list[Callable[..., Awaitable[object]]]:
        return [
            self.describe_region,
            self.describe_cluster,
            self.plan,
            self.create_local_peer,
            self.activate_peer,
            self.inactivate_peer,
            self.notify_peers_to_create_channels,
            self.notify_peers_to_drop_channels,
            self.wait_release,
            self.delete_local_peer,
            self.capture_target,
            self.wait_transfer_complete,
            self.catch_up_dead_origin,
        ]


@dataclass(frozen=True)
class Running:
    """A worker's environment, and the task queue it polls."""

    env: WorkflowEnvironment
    task_queue: str


@asynccontextmanager
async def versioned_worker(
    client: Client, workflows: Sequence[type], activities: Sequence[Callable[..., object]]
) -> AsyncIterator[Running]:
    """A worker of `workflows` with these activities on a task queue and a Worker Deployment
    of its own (the operations are AUTO_UPGRADE: only a versioned worker runs them), made
    current."""
    env = WorkflowEnvironment.from_client(client)
    task_queue = f"air-test-{uuid.uuid4().hex[:8]}"
    version = WorkerDeploymentVersion(deployment_name=task_queue, build_id="test")
    async with Worker(
        env.client,
        deployment_config=WorkerDeploymentConfig(version=version, use_worker_versioning=True),
        task_queue=task_queue,
        workflows=list(workflows),
        activities=list(activities),
        workflow_runner=WORKFLOW_RUNNER,
    ):
        await versions.make_current(env.client, version.deployment_name, version.build_id)
        yield Running(env, task_queue)
