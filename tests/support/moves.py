"""A move caught in its transfer, its senders held: a new replica still awaiting its snapshot."""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from contracts.ids import region_workflow_id
from contracts.models import Phase
from tests.support.cluster import Cluster
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.machinery.operation import MovesWorkflow


async def awaits_snapshot(cluster: Cluster, node: int, region: int) -> bool:
    """Whether `node`'s new replica of `region` is there and still awaits its snapshot."""
    new = (await cluster.regions_of(node)).get(region)
    return new is not None and not new.installed


async def held_transfer(stack: Stack, operation: WorkflowHandle[Any, Any]) -> tuple[int, int]:
    """Until a running move of `operation` is transferring a snapshot its destination has not
    installed: (region, destination). Hold the senders first (`cluster.throttle(ids, HELD)`):
    the move stays there, so a kill lands mid-transfer however fast or busy the machine."""

    async def probe() -> tuple[int, int] | None:
        state = await operation.query(MovesWorkflow.moves_progress)
        for move in state.planned:
            if move.region not in state.running:
                continue
            handle = stack.client.get_workflow_handle(region_workflow_id(move.region))
            try:
                phase = (await stack.progress(handle)).phase
            except RPCError:  # not started yet
                continue
            if phase == Phase.TRANSFERRING and await awaits_snapshot(
                stack.cluster, move.to_node, move.region
            ):
                return move.region, move.to_node
        return None

    found = await eventually(probe, lambda f: f is not None, timeout=60, what="a held transfer")
    assert found is not None
    return found
