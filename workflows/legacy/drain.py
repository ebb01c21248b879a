"""A drain of the earlier worker: planned by replica count, one run, every move a coroutine.

DrainNodeWorkflow inherits `AnswersEarlierDrains`: the query under the name that worker's
clients ask for, and the steering of a drain it started (`DrainByCount`).
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
    MovesProgress,
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
from workflows.machinery.moves import Steered, details
from workflows.machinery.operation import MovesWorkflow
from workflows.machinery.options import DESCRIBE, child, execute
from workflows.migration import RegionMigrationWorkflow


class AnswersEarlierDrains(MovesWorkflow):
    """A drain's handlers for the earlier worker: its query name, and its steering of a drain
    that worker started."""

    _by_count: DrainByCount | None = None  # set when this drain runs by count

    def _steering(self) -> Steered:
        return self._by_count or super()._steering()

    @workflow.query
    def drain_progress(self) -> MovesProgress:
        """The progress, under the name clients of the earlier worker ask for."""
        return self._steering().measured()

    async def _drain_by_count(self, req: DrainInput, state: DrainProgress) -> DrainResult:
        """The drain as the earlier worker ran it, when it started it."""
        self._by_count = DrainByCount(state)
        return await self._by_count.run(req)


def plan_drain_by_count(cluster: ClusterDescription, node: int) -> list[Move]:
    """The earlier worker's plan: each region of `node` to the node with the fewest replicas."""
    if node not in {n.node_id for n in cluster.nodes}:
        raise InvalidRequest(f"node {node} is not in the cluster")
    load = cluster.load()
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
    """A drain as the earlier worker ran it: all its moves as waiting coroutines, one run."""

    state: DrainProgress

    def __init__(self, state: DrainProgress) -> None:
        self.state = state
        self._stalled_shown = False  # the AirStalled value last upserted
        self._started: datetime | None = None  # when the plan was made

    async def run(self, req: DrainInput) -> DrainResult:
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
        moves = [
            asyncio.ensure_future(self._move(m, req, RegionMigrationWorkflow.run))
            for m in self.state.planned
        ]
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

    async def _move(self, move: Move, req: DrainInput, migrate: Any) -> None:
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
