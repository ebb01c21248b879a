"""A drain of the unversioned worker: planned by replica count, one run, every move a coroutine.

DrainNodeWorkflow runs `drain_by_count` for such a drain, handing down the migration's run
method (this package imports no definition): its handlers then steer `DrainByCount`, and the
query answers under the name that worker's clients ask for, `drain_progress`, too.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError

from activities.reading import ReadingActivities as Read
from contracts.activity_models import ClusterDescription
from contracts.errors import InvalidRequest
from contracts.ids import region_workflow_id
from contracts.models import (
    DrainInput,
    DrainProgress,
    DrainResult,
    MigrationInput,
    Move,
    Phase,
)
from contracts.search_attributes import (
    KIND_KEY,
    MOVES_DONE_KEY,
    MOVES_LEFT_KEY,
    NODES_KEY,
    PHASE_KEY,
    STALLED_KEY,
)
from workflows.machinery.failures import refusal
from workflows.machinery.moves import MigrationRun, Steered, details
from workflows.machinery.operation import MovesWorkflow
from workflows.machinery.options import DESCRIBE, child, execute

DRAIN_PROGRESS = "drain_progress"  # the query's name for that worker's clients


async def drain_by_count(
    operation: MovesWorkflow, req: DrainInput, state: DrainProgress, migrate: MigrationRun
) -> DrainResult:
    """The drain as the unversioned worker ran it, when it started it."""
    by_count = DrainByCount(state)
    operation.steer(by_count)
    workflow.set_query_handler(DRAIN_PROGRESS, by_count.measured)
    return await by_count.run(req, migrate)


def replica_counts(cluster: ClusterDescription) -> dict[int, int]:
    """Replicas per node (every known node, zero included): that worker's load model."""
    counts = {n.node_id: 0 for n in cluster.nodes}
    for ids in cluster.holders.values():
        for i in ids:
            counts[i] = counts.get(i, 0) + 1
    return counts


def plan_drain_by_count(cluster: ClusterDescription, node: int) -> list[Move]:
    """That worker's plan: each region of `node` to the node with the fewest replicas."""
    if node not in {n.node_id for n in cluster.nodes}:
        raise InvalidRequest(f"node {node} is not in the cluster")
    load = replica_counts(cluster)
    moves = []
    for region, holders in sorted(cluster.holders.items()):
        if node not in holders:
            continue
        candidates = [n for n in sorted(load) if n not in holders and n not in cluster.unreachable]
        if not candidates:
            raise InvalidRequest(
                f"region {region} has no node to move to (it is on every live node)"
            )
        target = min(candidates, key=lambda n: (load[n], n))
        load[target] += 1
        size = cluster.store_bytes.get(region, 0)
        moves.append(Move(region=region, from_node=node, to_node=target, store_bytes=size))
    return moves


class DrainByCount(Steered):
    """A drain as the unversioned worker ran it: all its moves as waiting coroutines, one run."""

    state: DrainProgress

    def __init__(self, state: DrainProgress) -> None:
        self.state = state
        self._stalled_shown = False  # the AirStalled value last upserted
        self._started: datetime | None = None  # when the plan was made

    async def run(self, req: DrainInput, migrate: MigrationRun) -> DrainResult:
        workflow.upsert_search_attributes(
            [KIND_KEY.value_set("drain"), NODES_KEY.value_set([str(req.node)])]
        )
        try:
            for name in ("max_concurrent", "max_per_node"):
                if getattr(req, name) < 1:
                    raise InvalidRequest(f"{name} must be at least 1, not {getattr(req, name)}")
            summary = f"describe the cluster to drain node {req.node}"
            cluster = await execute(Read.describe_cluster, req.node, summary, DESCRIBE)
            self.state.planned = plan_drain_by_count(cluster, req.node)
        except InvalidRequest as e:
            raise refusal(e) from None
        self._started = workflow.now()
        self.show()
        moves = [asyncio.ensure_future(self._move(m, req, migrate)) for m in self.state.planned]
        try:
            await asyncio.gather(*moves)
        except asyncio.CancelledError:
            await asyncio.gather(*moves, return_exceptions=True)  # each rolls back or finishes
            raise
        state = self.state
        moved = [m for m in state.planned if m.region in state.done]
        message = f"node {req.node}: {len(moved)} region(s) moved, {len(state.failed)} failed"
        workflow.upsert_search_attributes([PHASE_KEY.value_set(Phase.DONE.value)])
        workflow.set_current_details(message)
        return DrainResult(node=req.node, moved=moved, failed=state.failed, message=message)

    async def _move(self, move: Move, req: DrainInput, migrate: MigrationRun) -> None:
        state = self.state

        def may_start() -> bool:
            into = sum(
                1 for m in state.planned if m.region in state.running and m.to_node == move.to_node
            )
            return (
                not state.paused
                and len(state.running) < state.max_concurrent
                and into < req.max_per_node
            )

        while not may_start():
            await workflow.wait_condition(may_start)
        state.running.append(move.region)
        self.show()
        try:
            await child(
                migrate,
                MigrationInput(
                    region=move.region,
                    from_node=move.from_node,
                    to_node=move.to_node,
                    down_timeout_s=req.down_timeout_s,
                    stall_after_s=req.stall_after_s,
                ),
                region_workflow_id(move.region),
            )
            state.done.append(move.region)
        except ChildWorkflowError as e:
            state.failed[move.region] = str(e.cause or e)
        except WorkflowAlreadyStartedError:
            state.failed[move.region] = (
                f"another change of region {move.region} is running "
                f"({region_workflow_id(move.region)}); the region was left where it is"
            )
        finally:
            state.running.remove(move.region)
            state.stalled.pop(move.region, None)
            self.show()

    def measured(self) -> DrainProgress:
        elapsed = (workflow.now() - self._started).total_seconds() if self._started else 0.0
        return self.state.measured(elapsed)

    def show(self) -> None:
        s = self.measured()
        phase = Phase.PAUSED if s.paused else Phase.MOVING
        updates: list[SearchAttributeUpdate[Any]] = [
            PHASE_KEY.value_set(phase.value),
            MOVES_DONE_KEY.value_set(len(s.done)),
            MOVES_LEFT_KEY.value_set(s.left + len(s.running)),
        ]
        if bool(s.stalled) != self._stalled_shown:
            self._stalled_shown = bool(s.stalled)
            updates.append(STALLED_KEY.value_set(self._stalled_shown))
        workflow.upsert_search_attributes(updates)
        workflow.set_current_details(details(f"drain node {s.node}", s, phase))
