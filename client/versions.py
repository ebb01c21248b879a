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
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import time

from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

DEPLOYMENT = "air"
BUILD_ID = importlib.metadata.version("airreplication")


async def current_build(client: Client, deployment: str) -> str | None:
    """The deployment's current build id; None when it has none (or does not exist yet)."""
    request = DescribeWorkerDeploymentRequest(
        namespace=client.namespace, deployment_name=deployment
    )
    try:
        reply = await client.workflow_service.describe_worker_deployment(request)
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    current = reply.worker_deployment_info.routing_config.current_deployment_version
    return current.build_id or None


async def make_current(
    client: Client, deployment: str, build_id: str, timeout: float = 60.0
) -> None:
    """Make `build_id` the deployment's current version, once its worker has polled (the
    server knows a version only then). Idempotent: the current one stays current."""
    deadline = time.monotonic() + timeout
    request = SetWorkerDeploymentCurrentVersionRequest(
        namespace=client.namespace,
        deployment_name=deployment,
        build_id=build_id,
        identity=client.identity,
    )
    while await current_build(client, deployment) != build_id:
        try:
            await client.workflow_service.set_worker_deployment_current_version(request)
        except RPCError as e:
            retriable = e.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)
            if not retriable or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)  # the version is not registered yet: its poll is coming
