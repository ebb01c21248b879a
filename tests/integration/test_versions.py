"""An upgrade by Worker Versioning: two builds side by side, each workflow on the build its
behaviour says, read from its own description (its versioning info), never from timing.

A migration (PINNED) started on build 1 finishes there after build 2 is made current; a
migration started after that runs on build 2; a check (AUTO_UPGRADE) started on build 1, still
reading its first region at a crawl, moves to build 2 at its next workflow task, which the
update raising its rate makes (the region being read takes the new rate up, so it ends).

The floor: workflows an unversioned worker started (one still only its own, one a version has
run since) are listed by `airctl upgrade check` and keep the worker from starting; once they
are gone, both go ahead.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import VersioningBehavior
from temporalio.client import WorkflowHandle
from temporalio.common import WorkerDeploymentVersion
from temporalio.worker import Worker, WorkerDeploymentConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from client.starter import start_check
from client.versions import make_current
from contracts.check import CheckInput, CheckProgress
from contracts.columns import to_columns
from contracts.ids import check_workflow_id
from contracts.models import MigrationInput, MigrationResult
from protos import air_node_pb2 as pb
from runtime.cluster_file import ClusterFile
from tests.support.cluster import HELD
from tests.support.stack import Stack
from tests.support.waiting import eventually
from worker import WORKFLOW_RUNNER, WORKFLOWS
from workflows.check import CheckReplicasWorkflow
from workflows.migration import RegionMigrationWorkflow

FIRST, SECOND, CHECKED = 81, 82, (83, 84)
# The check's rate until the update raises it: its first region (~100 KB) would take hours, so
# it is still running when the update comes, however long build 2 takes to be current (two
# regions at 0.01 MB/s were once over before it: the update found the check completed)
CRAWL_MB_S = 0.00001


async def versioning(handle: WorkflowHandle[Any, Any]) -> tuple[int, str]:
    """The workflow's behaviour and the build its last workflow task completed on."""
    info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
    return info.behavior, info.deployment_version.build_id


async def test_a_pinned_migration_finishes_on_its_build_while_new_work_takes_the_next(
    stack: Stack,
) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3, 4):
        cluster.add_node(i)
    for region in (FIRST, SECOND, *CHECKED):
        await cluster.create_region(region, [1, 2, 3])
        rows = [("v", t, float(t)) for t in range(3_000)]
        await cluster.stub(1).Write(pb.WriteRequest(region=region, columns=to_columns(rows)))
        await cluster.converged(region, [1, 2, 3], count=3_000)
    deployment = f"air-test-{uuid.uuid4().hex[:8]}"  # its own: other tests' build stays current
    stack.start_worker("v1", extra_args=["--deployment", deployment, "--build-id", "1"])
    # polling, not current: started now so that its start is not part of the check's time
    stack.start_worker("v2", extra_args=["--deployment", deployment, "--build-id", "2"])

    await cluster.throttle([1, 2, 3], HELD)  # the first migration's snapshot waits, held
    first = await stack.start(
        RegionMigrationWorkflow.run, MigrationInput(region=FIRST, from_node=1, to_node=4)
    )
    check = await start_check(
        stack.client,
        CheckInput(regions=list(CHECKED), rate_mb_s=CRAWL_MB_S),
        check_workflow_id(uuid.uuid4().hex[:8]),
        stack.task_queue,
    )
    stack.handles.append(check)
    assert await versioning(first) == (VersioningBehavior.VERSIONING_BEHAVIOR_PINNED, "1")
    await eventually(  # once its first workflow task completed
        lambda: versioning(check),
        lambda v: v == (VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE, "1"),
        what="the check to run on build 1",
    )

    await make_current(stack.client, deployment, "2")
    # the check's next workflow task: an update (it fails if the check had already ended)
    await check.execute_update(CheckReplicasWorkflow.set_rate, 100.0)
    assert await versioning(check) == (VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE, "2")
    second = await stack.start(
        RegionMigrationWorkflow.run, MigrationInput(region=SECOND, from_node=1, to_node=4)
    )
    assert await versioning(second) == (VersioningBehavior.VERSIONING_BEHAVIOR_PINNED, "2")
    # the first is still held mid-transfer, pinned to build 1
    new_replica = (await cluster.regions_of(4)).get(FIRST)
    assert new_replica is None or not new_replica.installed, new_replica
    assert await versioning(first) == (VersioningBehavior.VERSIONING_BEHAVIOR_PINNED, "1")

    await cluster.throttle([1, 2, 3], 0)
    for handle in (first, second):
        result = await handle.result()
        assert isinstance(result, MigrationResult) and result.remove is not None, result
    assert await versioning(first) == (VersioningBehavior.VERSIONING_BEHAVIOR_PINNED, "1")
    assert await versioning(second) == (VersioningBehavior.VERSIONING_BEHAVIOR_PINNED, "2")
    found = await check.result()
    assert found.equal == len(CHECKED), found
    assert await versioning(check) == (VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE, "2")


@workflow.defn(name=CheckReplicasWorkflow.__name__)
class UnversionedCheck(CheckReplicasWorkflow):
    """Our check as a worker without Worker Versioning runs it: it declares no behaviour (that
    worker refuses a workflow that does)."""

    @workflow.run
    async def run(self, req: CheckInput) -> CheckProgress:
        return await super().run(req)


# this module too, or the sandbox imports it (and pytest) afresh for every run
RUNNER = SandboxedWorkflowRunner(
    restrictions=WORKFLOW_RUNNER.restrictions.with_passthrough_modules("tests")
)


async def asking_for_the_cluster(handle: WorkflowHandle[Any, Any]) -> bool:
    """The check's first workflow task completed: it asked for the cluster (an activity that
    nobody here runs, so it stays there)."""
    return bool((await handle.describe()).raw_description.pending_activities)


def upgrade_check(cluster_file: Path, deployment: str) -> tuple[int, Any]:
    done = subprocess.run(
        [
            sys.executable, "-m", "airctl", "--cluster", str(cluster_file), "--json",
            "upgrade", "check", "--deployment", deployment,
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


async def test_workflows_an_unversioned_worker_started_hold_back_the_next_build(
    stack: Stack, tmp_path: Path
) -> None:
    client, queue = stack.client, stack.task_queue
    deployment = f"air-test-{uuid.uuid4().hex[:8]}"
    cluster_file = tmp_path / "upgrade.json"  # the stack writes its own cluster.json
    ClusterFile(
        temporal_address=stack.temporal_address, local=True, task_queue=queue, nodes=[]
    ).save(cluster_file)

    # a worker without Worker Versioning, as ours was before it, starts two checks
    unversioned = Worker(
        client, task_queue=queue, workflows=[UnversionedCheck], workflow_runner=RUNNER
    )
    async with unversioned:
        checks = [
            await start_check(client, CheckInput(), check_workflow_id(uuid.uuid4().hex[:8]), queue)
            for _ in range(2)
        ]
        stack.handles.extend(checks)
        for handle in checks:
            await eventually(partial(asking_for_the_cluster, handle), what="its first task")
    kept, moved = checks
    # a version of the deployment runs the second's next task: it moves to that build, and
    # says so as every workflow a version ran does
    version = WorkerDeploymentVersion(deployment_name=deployment, build_id="1")
    versioned = Worker(
        client,
        task_queue=queue,
        workflows=WORKFLOWS,
        workflow_runner=WORKFLOW_RUNNER,
        deployment_config=WorkerDeploymentConfig(version=version, use_worker_versioning=True),
    )
    async with versioned:
        await make_current(client, deployment, "1")
        await moved.execute_update(CheckReplicasWorkflow.set_rate, 1.0)
    assert await versioning(moved) == (VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE, "1")

    code, listed = await asyncio.to_thread(upgrade_check, cluster_file, deployment)
    assert code == 1, listed
    assert [w["workflow_id"] for w in listed["older_than_floor"]] == [kept.id, moved.id], listed
    assert {w["type"] for w in listed["older_than_floor"]} == {"CheckReplicasWorkflow"}, listed
    assert listed["advice"].startswith("Finish them on the old build first"), listed
    build_2 = ["--deployment", deployment, "--build-id", "2"]
    with pytest.raises(RuntimeError, match="exited during start"):
        stack.start_worker("refused", extra_args=build_2)
    refusal = stack.workers["refused"].output()
    assert "were started by a build older than the floor" in refusal, refusal
    assert kept.id in refusal and moved.id in refusal, refusal
    assert "Finish them on the old build first" in refusal, refusal
    assert "Traceback" not in refusal, refusal

    for handle in checks:
        await handle.terminate("older than the floor")
    code, listed = await asyncio.to_thread(upgrade_check, cluster_file, deployment)
    assert (code, listed["older_than_floor"]) == (0, []), listed
    stack.start_worker("started", extra_args=build_2)  # ready: it polls
