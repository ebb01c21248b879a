"""Starting membership changes from a client: one per region at a time, findable in the UI."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from contracts.check import CheckInput, CheckProgress
from contracts.ids import (
    AUTOPILOT_WORKFLOW_ID,
    REBALANCE_WORKFLOW_ID,
    TASK_QUEUE,
    drain_workflow_id,
    region_workflow_id,
    repair_workflow_id,
)
from contracts.models import (
    AddPeerInput,
    AutopilotInput,
    DrainInput,
    MigrationInput,
    RebalanceInput,
    ReconstructInput,
    RemovePeerInput,
    RepairInput,
)
from contracts.search_attributes import KIND_KEY, NODES_KEY, REGION_KEY
from workflows.add_peer import AddPeerWorkflow
from workflows.autopilot import AutopilotWorkflow
from workflows.check import CheckReplicasWorkflow
from workflows.drain import DrainNodeWorkflow
from workflows.machinery.failures import root_cause
from workflows.machinery.options import WORKFLOW_TASK_TIMEOUT
from workflows.migration import RegionMigrationWorkflow
from workflows.rebalance import RebalanceWorkflow
from workflows.reconstruct import ReconstructRegionWorkflow
from workflows.remove_peer import RemovePeerWorkflow
from workflows.repair import RepairNodeWorkflow

# How long a client waits for the workflow to pass validation before it leaves it running
# unconfirmed (no worker may be running yet).
VALIDATE_WITHIN_S = 30.0


class RegionBusy(Exception):
    """A membership change of the region is already running."""


class RequestRefused(Exception):
    """The workflow refused the request as invalid; nothing changed."""


@dataclass(frozen=True)
class Started:
    handle: WorkflowHandle[Any, Any]
    # What the workflow will do, once it has validated the request; None when no worker took it
    # within the wait (it runs once one does), or when not asked to wait.
    plan: str | None


async def start_change(
    client: Client,
    request: MigrationInput | AddPeerInput | RemovePeerInput | ReconstructInput,
    task_queue: str = TASK_QUEUE,
    validate_within: float | None = VALIDATE_WITHIN_S,
) -> Started:
    """Start the workflow for `request` and wait until it validated it.

    Refused with `RegionBusy` if the region has a change running, `RequestRefused` if the
    workflow finds the request invalid. `validate_within=None` only starts it.
    """
    workflow: Any
    if isinstance(request, MigrationInput):
        workflow, nodes = RegionMigrationWorkflow, [request.from_node, request.to_node]
    elif isinstance(request, AddPeerInput):
        workflow, nodes = AddPeerWorkflow, [request.new_peer]
    elif isinstance(request, ReconstructInput):
        workflow, nodes = ReconstructRegionWorkflow, [request.node]
    else:
        workflow, nodes = RemovePeerWorkflow, [request.peer]
    attributes: list[SearchAttributePair[Any]] = [
        SearchAttributePair(REGION_KEY, request.region),
        SearchAttributePair(KIND_KEY, workflow.kind),
        SearchAttributePair(NODES_KEY, [str(n) for n in nodes]),
    ]
    options = _options(client, request, region_workflow_id(request.region), task_queue, attributes)
    busy = f"region {request.region} already has a membership change running"
    return await _start_once(
        client, workflow.run, request, workflow.validated, options, busy, validate_within
    )


OperationInput = DrainInput | RepairInput | RebalanceInput


def operation_id(request: OperationInput) -> str:
    """The workflow id of an operation: one drain or repair of a node, one rebalance."""
    match request:
        case DrainInput(node=n):
            return drain_workflow_id(n)
        case RepairInput(node=n):
            return repair_workflow_id(n)
        case RebalanceInput():
            return REBALANCE_WORKFLOW_ID


async def start_operation(
    client: Client,
    request: OperationInput,
    task_queue: str = TASK_QUEUE,
    validate_within: float | None = VALIDATE_WITHIN_S,
) -> Started:
    """Start a drain, a repair or a rebalance and wait until it planned; `RegionBusy` if one
    of that id (of that node, or the cluster's rebalance) runs."""
    workflow: Any
    match request:
        case DrainInput(node=n):
            workflow, nodes, busy = DrainNodeWorkflow, [n], f"node {n} is already being drained"
        case RepairInput(node=n):
            workflow, nodes, busy = RepairNodeWorkflow, [n], f"node {n} is already being repaired"
        case RebalanceInput(nodes=nodes):
            workflow, busy = RebalanceWorkflow, "a rebalance is already running"
    attributes = [SearchAttributePair(NODES_KEY, [str(n) for n in nodes])]
    options = _options(client, request, operation_id(request), task_queue, attributes)
    return await _start_once(
        client, workflow.run, request, workflow.validated, options, busy, validate_within
    )


async def start_check(
    client: Client, request: CheckInput, workflow_id: str, task_queue: str = TASK_QUEUE
) -> WorkflowHandle[CheckReplicasWorkflow, CheckProgress]:
    """Start a consistency check (read-only: any number may run beside the changes)."""
    options = _options(client, request, workflow_id, task_queue, [])
    return await client.start_workflow(CheckReplicasWorkflow.run, request, **options)


async def start_autopilot(
    client: Client, request: AutopilotInput, task_queue: str = TASK_QUEUE
) -> WorkflowHandle[Any, Any]:
    """Turn the autopilot on; if it is on already, give it this dead_after and these checks."""
    options = _options(client, request, AUTOPILOT_WORKFLOW_ID, task_queue, [])
    try:
        return await client.start_workflow(AutopilotWorkflow.run, request, **options)
    except WorkflowAlreadyStartedError:
        handle = client.get_workflow_handle_for(AutopilotWorkflow.run, AUTOPILOT_WORKFLOW_ID)
        await handle.execute_update(AutopilotWorkflow.configure, request)
        return handle


def _options(
    client: Client,
    request: BaseModel,
    workflow_id: str,
    task_queue: str,
    attributes: list[SearchAttributePair[Any]],
) -> dict[str, Any]:
    """One run of an id at a time (a finished one's id may be used again); what it is, for
    the UI's Summary and Details."""
    return {
        "id": workflow_id,
        "task_queue": task_queue,
        "id_conflict_policy": WorkflowIDConflictPolicy.FAIL,
        "id_reuse_policy": WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        "task_timeout": WORKFLOW_TASK_TIMEOUT,
        "search_attributes": TypedSearchAttributes(attributes),
        "static_summary": summary(request),
        "static_details": (
            f"started by {client.identity}\n\ninput:\n\n"
            f"```json\n{request.model_dump_json(indent=2, exclude_none=True)}\n```"
        ),
    }


def summary(request: BaseModel) -> str:
    """What a workflow is, in a line: the UI's Summary."""
    match request:
        case MigrationInput(region=r, from_node=f, to_node=t):
            return f"migrate region {r}: node {f} -> node {t}"
        case AddPeerInput(region=r, new_peer=n):
            return f"add node {n} to region {r}"
        case RemovePeerInput(region=r, peer=n):
            return f"remove node {n} from region {r}"
        case ReconstructInput(region=r, node=n):
            return f"reconstruct region {r} on node {n}: rebuilt from the other replicas"
        case DrainInput(node=n):
            return f"drain node {n}"
        case RepairInput(node=n):
            return f"repair node {n}: a new replica for each of its regions"
        case AutopilotInput(dead_after_s=dead):
            return f"autopilot: repair a node gone for {dead:g} s"
        case RebalanceInput(nodes=[]):
            return "rebalance the cluster"
        case RebalanceInput(nodes=nodes):
            return f"rebalance the cluster onto nodes {', '.join(map(str, nodes))}"
        case CheckInput(regions=regions, repair=repair):
            which = f"regions {', '.join(map(str, regions))}" if regions else "every region"
            return f"check the replicas of {which}" + (", repairing a minority" if repair else "")
    raise TypeError(f"no summary for {type(request).__name__}")


async def _start_once(
    client: Client,
    run: Any,
    request: Any,
    validated: Any,
    options: dict[str, Any],
    busy: str,
    validate_within: float | None,
) -> Started:
    """Start `run` with its `validated` update (update-with-start), unless a run of its id is
    going; wait at most `validate_within` for the update's answer."""
    workflow_id: str = options["id"]
    plan = None
    start: WithStartWorkflowOperation[Any, Any] | None = None
    try:
        if validate_within is None:
            await client.start_workflow(run, request, **options)
        else:
            start = WithStartWorkflowOperation(run, request, **options)
            update = client.execute_update_with_start_workflow(
                validated, start_workflow_operation=start
            )
            plan = await asyncio.wait_for(update, validate_within)
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        pass  # started; it validates when a worker takes it
    except WorkflowUpdateFailedError as e:
        raise RequestRefused(root_cause(e)) from e
    except WorkflowAlreadyStartedError as e:
        if start is not None:  # the operation holds the same error: taken, not left unread
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await start.workflow_handle()
        running = await client.get_workflow_handle(workflow_id).describe()
        raise RegionBusy(
            f"{busy}: {running.workflow_type} {workflow_id} (run {running.run_id}); "
            "wait for it or cancel it first"
        ) from e
    return Started(client.get_workflow_handle_for(run, workflow_id), plan)
