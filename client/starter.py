"""Starting workflows from a client, typed as Temporal's own `start_workflow(Workflow.run, input)`:
a membership change one per region at a time, an operation one per node (or per cluster), each
answered once it validated its request; a check; the autopilot. Each findable in the UI.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypedDict, TypeVar

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
from temporalio.types import MethodAsyncSingleParam
from temporalio.workflow import UpdateMethodMultiParam

from contracts.check import CheckInput, CheckProgress
from contracts.errors import root_cause
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
from contracts.search_attributes import NODES_KEY, REGION_KEY
from workflows.autopilot import AutopilotWorkflow
from workflows.check import CheckReplicasWorkflow
from workflows.machinery.change import MembershipChange
from workflows.machinery.operation import MovesWorkflow
from workflows.machinery.options import WORKFLOW_TASK_TIMEOUT

# How long a client waits for the workflow to pass validation before it leaves it running
# unconfirmed (no worker may be running yet).
VALIDATE_WITHIN_S = 30.0

ChangeInput = MigrationInput | AddPeerInput | RemovePeerInput | ReconstructInput
OperationInput = DrainInput | RepairInput | RebalanceInput

W = TypeVar("W")  # a workflow class
R = TypeVar("R")  # its result
Change = TypeVar("Change", bound=MembershipChange)
Operation = TypeVar("Operation", bound=MovesWorkflow)
ChangeIn = TypeVar("ChangeIn", bound=ChangeInput)
OperationIn = TypeVar("OperationIn", bound=OperationInput)
Validated = TypeVar("Validated", bound=ChangeInput | OperationInput)


class RegionBusy(Exception):
    """A membership change of the region (or an operation of that id) is already running."""


class RequestRefused(Exception):
    """The workflow refused the request as invalid; nothing changed."""


@dataclass(frozen=True)
class Started(Generic[W, R]):
    handle: WorkflowHandle[W, R]
    # What the workflow will do, once it has validated the request; None when no worker took it
    # within the wait (it runs once one does), or when not asked to wait.
    plan: str | None


class StartOptions(TypedDict):
    """The options every start sets (`Client.start_workflow`'s keywords)."""

    id: str
    task_queue: str
    id_conflict_policy: WorkflowIDConflictPolicy
    id_reuse_policy: WorkflowIDReusePolicy
    task_timeout: timedelta
    search_attributes: TypedSearchAttributes
    static_summary: str
    static_details: str


async def start_change(
    client: Client,
    run: MethodAsyncSingleParam[Change, ChangeIn, R],
    request: ChangeIn,
    task_queue: str = TASK_QUEUE,
    validate_within: float | None = VALIDATE_WITHIN_S,
) -> Started[Change, R]:
    """Start a membership change, `start_change(client, RegionMigrationWorkflow.run,
    MigrationInput(...))`, and wait until it validated the request.

    Refused with `RegionBusy` if the region has a change running, `RequestRefused` if the
    workflow finds the request invalid. `validate_within=None` only starts it.
    """
    return await _start_validated(
        client, run, MembershipChange.validated, request, task_queue, validate_within
    )


async def start_operation(
    client: Client,
    run: MethodAsyncSingleParam[Operation, OperationIn, R],
    request: OperationIn,
    task_queue: str = TASK_QUEUE,
    validate_within: float | None = VALIDATE_WITHIN_S,
) -> Started[Operation, R]:
    """Start a drain, a repair or a rebalance, `start_operation(client, DrainNodeWorkflow.run,
    DrainInput(...))`, and wait until it planned; `RegionBusy` if one of that id (of that
    node, or the cluster's rebalance) runs."""
    return await _start_validated(
        client, run, MovesWorkflow.validated, request, task_queue, validate_within
    )


async def start_check(
    client: Client, request: CheckInput, workflow_id: str, task_queue: str = TASK_QUEUE
) -> WorkflowHandle[CheckReplicasWorkflow, CheckProgress]:
    """Start a consistency check (read-only: any number may run beside the changes)."""
    options = _options(client, request, workflow_id, task_queue, TypedSearchAttributes([]))
    return await client.start_workflow(CheckReplicasWorkflow.run, request, **options)


async def start_autopilot(
    client: Client, request: AutopilotInput, task_queue: str = TASK_QUEUE
) -> WorkflowHandle[AutopilotWorkflow, None]:
    """Turn the autopilot on; if it is on already, give it this dead_after and these checks."""
    options = _options(
        client, request, AUTOPILOT_WORKFLOW_ID, task_queue, TypedSearchAttributes([])
    )
    try:
        return await client.start_workflow(AutopilotWorkflow.run, request, **options)
    except WorkflowAlreadyStartedError:
        handle = client.get_workflow_handle_for(AutopilotWorkflow.run, AUTOPILOT_WORKFLOW_ID)
        await handle.execute_update(AutopilotWorkflow.configure, request)
        return handle


@dataclass(frozen=True)
class Identity:
    """Which run a request is: its workflow id (one run of an id at a time), the region and
    nodes it names (AirRegion and AirNodes, before the workflow runs), and what a client is
    told when a run of that id is going."""

    workflow_id: str
    region: int | None
    nodes: list[int]
    busy: str


def identity(request: ChangeInput | OperationInput) -> Identity:
    match request:
        case MigrationInput(region=r, from_node=f, to_node=t):
            return _of_region(r, [f, t])
        case AddPeerInput(region=r, new_peer=n):
            return _of_region(r, [n])
        case RemovePeerInput(region=r, peer=n) | ReconstructInput(region=r, node=n):
            return _of_region(r, [n])
        case DrainInput(node=n):
            return Identity(drain_workflow_id(n), None, [n], f"node {n} is already being drained")
        case RepairInput(node=n):
            return Identity(repair_workflow_id(n), None, [n], f"node {n} is already being repaired")
        case RebalanceInput(nodes=nodes):
            return Identity(REBALANCE_WORKFLOW_ID, None, nodes, "a rebalance is already running")


def _of_region(region: int, nodes: list[int]) -> Identity:
    busy = f"region {region} already has a membership change running"
    return Identity(region_workflow_id(region), region, nodes, busy)


def operation_id(request: OperationInput) -> str:
    """The workflow id of an operation: one drain or repair of a node, one rebalance."""
    return identity(request).workflow_id


def _options(
    client: Client,
    request: BaseModel,
    workflow_id: str,
    task_queue: str,
    attributes: TypedSearchAttributes,
) -> StartOptions:
    """One run of an id at a time (a finished one's id may be used again); what it is, for
    the UI's Summary and Details."""
    return StartOptions(
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        task_timeout=WORKFLOW_TASK_TIMEOUT,
        search_attributes=attributes,
        static_summary=summary(request),
        static_details=(
            f"started by {client.identity}\n\ninput:\n\n"
            f"```json\n{request.model_dump_json(indent=2, exclude_none=True)}\n```"
        ),
    )


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


async def _start_validated(
    client: Client,
    run: MethodAsyncSingleParam[W, Validated, R],
    validated: UpdateMethodMultiParam[[W], str],
    request: Validated,
    task_queue: str,
    validate_within: float | None,
) -> Started[W, R]:
    """Start `run` with its `validated` update (update-with-start), unless a run of its id is
    going; wait at most `validate_within` for the update's answer."""
    who = identity(request)
    named: list[SearchAttributePair[int] | SearchAttributePair[Sequence[str]]] = [
        SearchAttributePair(NODES_KEY, [str(n) for n in who.nodes])
    ]
    if who.region is not None:
        named.append(SearchAttributePair(REGION_KEY, who.region))
    options = _options(client, request, who.workflow_id, task_queue, TypedSearchAttributes(named))
    plan = None
    start: WithStartWorkflowOperation[W, R] | None = None
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
        running = await client.get_workflow_handle(who.workflow_id).describe()
        raise RegionBusy(
            f"{who.busy}: {running.workflow_type} {who.workflow_id} (run {running.run_id}); "
            "wait for it or cancel it first"
        ) from e
    return Started(client.get_workflow_handle_for(run, who.workflow_id), plan)
