"""Starting membership changes from a client: one per region at a time, findable in the UI."""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from workflows.add_peer import AddPeerWorkflow
from workflows.drain import DrainNodeWorkflow
from workflows.ids import TASK_QUEUE, drain_workflow_id, region_workflow_id
from workflows.migration import RegionMigrationWorkflow
from workflows.models import AddPeerInput, DrainInput, MigrationInput, RemovePeerInput
from workflows.options import WORKFLOW_TASK_TIMEOUT
from workflows.remove_peer import RemovePeerWorkflow
from workflows.search_attributes import KIND_KEY, NODES_KEY, REGION_KEY

R = TypeVar("R")


class RegionBusy(Exception):
    """A membership change of the region is already running."""


async def start_change(
    client: Client,
    request: MigrationInput | AddPeerInput | RemovePeerInput,
    task_queue: str = TASK_QUEUE,
) -> WorkflowHandle[Any, Any]:
    """Start the workflow for `request`; refuse with `RegionBusy` if the region has one running."""
    if isinstance(request, MigrationInput):
        run: Any = RegionMigrationWorkflow.run
        kind, nodes = RegionMigrationWorkflow.kind, [request.from_node, request.to_node]
    elif isinstance(request, AddPeerInput):
        run, kind, nodes = AddPeerWorkflow.run, AddPeerWorkflow.kind, [request.new_peer]
    else:
        run, kind, nodes = RemovePeerWorkflow.run, RemovePeerWorkflow.kind, [request.peer]
    attributes: list[SearchAttributePair[Any]] = [
        SearchAttributePair(REGION_KEY, request.region),
        SearchAttributePair(KIND_KEY, kind),
        SearchAttributePair(NODES_KEY, [str(n) for n in nodes]),
    ]
    busy = f"region {request.region} already has a membership change running"
    return await _start_once(
        client, run, request, region_workflow_id(request.region), task_queue, busy, attributes
    )


async def _start_once(
    client: Client,
    run: Any,
    request: Any,
    workflow_id: str,
    task_queue: str,
    busy: str,
    attributes: list[SearchAttributePair[Any]] | None = None,
) -> WorkflowHandle[Any, Any]:
    """Start `run` under `workflow_id` unless a run of that id is going; then `RegionBusy`."""
    try:
        return await client.start_workflow(
            run,
            request,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            task_timeout=WORKFLOW_TASK_TIMEOUT,
            search_attributes=TypedSearchAttributes(attributes or []),
        )
    except WorkflowAlreadyStartedError as e:
        running = await client.get_workflow_handle(workflow_id).describe()
        raise RegionBusy(
            f"{busy}: {running.workflow_type} {workflow_id} (run {running.run_id}); "
            "wait for it or cancel it first"
        ) from e


async def start_drain(
    client: Client, request: DrainInput, task_queue: str = TASK_QUEUE
) -> WorkflowHandle[Any, Any]:
    """Start draining a node; refuse with `RegionBusy` if a drain of it is running."""
    busy = f"node {request.node} is already being drained"
    return await _start_once(
        client, DrainNodeWorkflow.run, request, drain_workflow_id(request.node), task_queue, busy
    )
