"""A drain of any size: each run of it stays under 2,000 history events, and across its
continues-as-new no move is lost or started twice; its updates and query work throughout.

The Temporal server, the drain workflow and the worker are real; the cluster is not: the
cluster description is a stub activity and each move an instant stand-in for the migration.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import Worker, WorkerDeploymentConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from client import connection
from client.starter import start_operation
from client.versions import make_current
from contracts.activity_models import ClusterDescription, Peer
from contracts.models import (
    AddPeerResult,
    DrainInput,
    DrainResult,
    MigrationInput,
    MigrationResult,
    MovesProgress,
)
from contracts.plans import PlanMade, PlanRequest
from planning.requests import answer
from stack.processes import TemporalServer
from tests.support.waiting import eventually
from worker import WORKFLOW_RUNNER
from workflows.drain import DrainNodeWorkflow
from workflows.machinery.moves import START_BEFORE

HISTORY_LIMIT = 2_000


# Region ids no other test uses: workflow ids derive from them, and the server is shared.
FIRST = 100_000


def cluster_of(regions: int) -> ClusterDescription:
    """Nodes 1-4; every region on 1, 2 and 3, of 1 MB each."""
    nodes = [Peer(node_id=i, address=f"127.0.0.1:{i}") for i in (1, 2, 3, 4)]
    ids = range(FIRST, FIRST + regions)
    return ClusterDescription(
        nodes=nodes,
        holders={r: [1, 2, 3] for r in ids},
        store_bytes=dict.fromkeys(ids, 1_000_000),
    )


class StubCluster:
    def __init__(self, regions: int) -> None:
        self.regions = regions

    @activity.defn(name="plan")
    async def plan(self, request: PlanRequest) -> PlanMade:
        return answer(cluster_of(self.regions), request)


@workflow.defn(name="RegionMigrationWorkflow")
class InstantMigration:
    """Stands in for a migration: done at once."""

    @workflow.run
    async def run(self, req: MigrationInput) -> MigrationResult:
        add = AddPeerResult(
            region=req.region,
            new_peer=req.to_node,
            coordinator=req.coordinator or 0,
            peers=[],
            target={},
        )
        return MigrationResult(region=req.region, from_node=1, to_node=req.to_node, add=add)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalServer]:
    """A server of their own, in memory: thousands of workflows, none to outlive it."""
    server = TemporalServer(tmp_path_factory.mktemp("temporal") / "t.db", in_memory=True).start()
    try:
        yield server
    finally:
        server.terminate()


@pytest.fixture
async def client(server: TemporalServer) -> AsyncIterator[Client]:
    yield await connection.connect(connection.local(server.address))


def worker_with_stubs(client: Client, regions: int) -> Worker:
    """A worker in this process, a build of a deployment of its own (made current once it
    runs: `current`), as the real worker is."""
    name = f"air-drain-{uuid.uuid4().hex[:8]}"
    return Worker(
        client,
        task_queue=name,
        deployment_config=WorkerDeploymentConfig(
            version=WorkerDeploymentVersion(deployment_name=name, build_id="stub"),
            use_worker_versioning=True,
            default_versioning_behavior=VersioningBehavior.AUTO_UPGRADE,  # the stub's
        ),
        workflows=[DrainNodeWorkflow, InstantMigration],
        activities=[StubCluster(regions).plan],
        # this module too, or the sandbox imports it (and pytest) afresh for every move
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=WORKFLOW_RUNNER.restrictions.with_passthrough_modules("tests")
        ),
    )


async def drain(
    client: Client, worker: Worker, request: DrainInput
) -> WorkflowHandle[DrainNodeWorkflow, DrainResult]:
    await make_current(client, worker.task_queue, "stub")  # the deployment is named after it
    started = await start_operation(client, DrainNodeWorkflow.run, request, worker.task_queue)
    assert started.plan is not None and started.plan.startswith("drain node 1: "), started
    return started.handle


async def runs_of(client: Client, workflow_id: str) -> list[tuple[WorkflowExecutionStatus, int]]:
    """Each run of the workflow: how it ended and how many events its history holds."""
    found = []
    async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        history = await client.get_workflow_handle(workflow_id, run_id=w.run_id).fetch_history()
        assert w.status is not None
        found.append((w.status, len(history.events)))
    return found


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_drain_of_1100_moves_keeps_every_run_under_2000_events(client: Client) -> None:
    """50 moves at once. A move costs at least three events (its child started, running,
    done) and none starts in a run of START_BEFORE events, so at most START_BEFORE // 3 start
    in a run, however many finished children a workflow task takes on a busy machine: twice
    that and more makes three runs. More moves prove nothing more (no run grows with their
    number); bench/drain.py drains more."""
    regions = 2 * (START_BEFORE // 3) + 100  # 1,100: a third run however fast moves end
    request = DrainInput(node=1, max_concurrent=50, max_per_node=50)
    async with worker_with_stubs(client, regions) as worker:
        handle = await drain(client, worker, request)
        result: DrainResult = await client.get_workflow_handle(
            handle.id, result_type=DrainResult
        ).result()

    assert not result.failed and len(result.moved) == regions, result.message
    assert sorted(m.region for m in result.moved) == list(range(FIRST, FIRST + regions))
    assert {m.to_node for m in result.moved} == {4}
    runs = await runs_of(client, handle.id)
    assert max(events for _, events in runs) < HISTORY_LIMIT, runs
    assert len(runs) >= 3, runs  # it did continue as new, more than once
    moves = await client.count_workflows(
        f"WorkflowType = 'RegionMigrationWorkflow' AND TaskQueue = '{worker.task_queue}'"
    )
    assert moves.count == regions  # no move started twice, across all those runs


async def test_updates_and_the_query_work_across_continue_as_new(client: Client) -> None:
    regions = 320  # about 150 moves a run: three runs
    request = DrainInput(node=1, max_concurrent=4, max_per_node=4)
    async with worker_with_stubs(client, regions) as worker:
        handle = await drain(client, worker, request)
        second_run = await eventually(
            lambda: handle.query(DrainNodeWorkflow.moves_progress),
            lambda p: p.runs >= 2,
            timeout=120,
            what="the drain's second run",
        )
        paused: MovesProgress = await handle.execute_update(DrainNodeWorkflow.pause)
        assert paused.paused and paused.runs >= 2 and len(paused.done) >= len(second_run.done)
        still = await eventually(
            lambda: handle.query(DrainNodeWorkflow.moves_progress),
            lambda p: not p.running,
            what="no move running while paused",
        )
        assert await handle.execute_update(DrainNodeWorkflow.set_max_concurrent, 8) == 8
        unmoved = await handle.query(DrainNodeWorkflow.moves_progress)
        assert unmoved.done == still.done and unmoved.max_concurrent == 8  # paused, re-bounded
        await handle.execute_update(DrainNodeWorkflow.resume)
        result: DrainResult = await client.get_workflow_handle(
            handle.id, result_type=DrainResult
        ).result()
    assert len(result.moved) == regions and not result.failed
    runs = await runs_of(client, handle.id)
    assert len(runs) >= 2 and max(events for _, events in runs) < HISTORY_LIMIT, runs
