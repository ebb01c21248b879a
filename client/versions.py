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
import logging
import time

from temporalio.api.enums.v1 import RoutingConfigUpdateState
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
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
