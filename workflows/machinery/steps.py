"""The membership steps as workflow calls: one method per step of DESIGN.md section 5.

Each builds its activity's input, names it for the UI (the activity summary), and runs it with
the options of its kind. Workflows then read as the step list, one line a step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    is_cancelled_exception,
)

from activities.add_peer import AddPeerActivities as Add
from activities.reading import ReadingActivities as Read
from activities.remove_peer import RemovePeerActivities as Remove
from contracts.activity_models import (
    CaptureTargetInput,
    CatchUpInput,
    ChannelsInput,
    CreateLocalPeerInput,
    Peer,
    RegionDescription,
    ReleaseInput,
    SetActiveInput,
    StepInput,
    StepResult,
)
from contracts.killpoints import KillPoint
from contracts.models import Phase
from workflows.machinery.failures import INVALID_REQUEST, NODE_REFUSED
from workflows.machinery.options import (
    BOUNDARY,
    CATCH_UP,
    DESCRIBE,
    LOCAL_DESCRIBE,
    MEMBERSHIP,
    QUICK_TRY,
    ROLLBACK,
    Options,
    execute,
    skippable,
    within,
)
from workflows.machinery.patches import earlier_worker_started
from workflows.machinery.progress import ChangeReporter

R = TypeVar("R")


class Runner:
    """Runs a step's activity through Temporal; a benchmark's baseline runs it in process."""

    def lean(self) -> bool:
        return not earlier_worker_started()

    async def run(
        self, activity: Callable[[Any, Any], Awaitable[R]], arg: Any, summary: str, options: Options
    ) -> R:
        """A step that may wait for a node first tries without waiting, as a local activity;
        only if it had to wait does it run as a regular, heartbeating activity."""
        if options.quick_first and isinstance(arg, StepInput) and self.lean():
            try:
                quick = arg.model_copy(update={"quick": True})
                result: R = await execute(activity, quick, summary, QUICK_TRY)
                return result
            except FailureError as e:  # a local activity's own error comes unwrapped
                if is_cancelled_exception(e) or _refused(e):
                    raise
        return await execute(activity, arg, summary, options)


def _refused(error: FailureError) -> bool:
    cause = error.cause if isinstance(error, ActivityError) else error
    return isinstance(cause, ApplicationError) and cause.type in (NODE_REFUSED, INVALID_REQUEST)


def _ids(peers: list[Peer]) -> list[int]:
    return [p.node_id for p in peers]


class Steps:
    """The steps on one region, reported by `reporter`, run by `runner`."""

    def __init__(self, reporter: ChangeReporter, region: int, runner: Runner | None = None) -> None:
        self.reporter = reporter
        self.region = region
        self.runner = runner or Runner()

    async def step(
        self,
        phase: Phase,
        activity: Callable[[Any, Any], Awaitable[R]],
        arg: Any,
        summary: str,
        options: Options = MEMBERSHIP,
    ) -> R:
        """One step: enter its phase, run its activity (shown with `summary` in the UI)."""
        self.reporter.enter(phase)
        result = await self.runner.run(activity, arg, summary, options)
        self.reporter.step_done(summary)
        return result

    async def describe(self) -> RegionDescription:
        """The region as its holders describe it: what the workflow plans from. It must reach
        history before the first side effect: see DESCRIBE, LOCAL_DESCRIBE and BOUNDARY."""
        return await self.step(
            Phase.VALIDATING,
            Read.describe_region,
            self.region,
            f"describe region {self.region}",
            LOCAL_DESCRIBE if self.runner.lean() else DESCRIBE,
        )

    def _boundary(self) -> Options:
        """A first step after the region was described or changed: BOUNDARY (a regular one),
        but MEMBERSHIP where the describe was a regular activity (not lean: patches.LEAN)."""
        return BOUNDARY if self.runner.lean() else MEMBERSHIP

    async def create_local_peer(
        self, node: Peer, peers: list[Peer], down_timeout_s: float
    ) -> StepResult:
        return await self.step(
            Phase.CREATING_LOCAL_PEER,
            Add.create_local_peer,
            CreateLocalPeerInput(region=self.region, node=node, peers=peers),
            f"create region {self.region} on node {node.node_id}, inactive, peers {_ids(peers)}",
            # the first side effect: the plan is in history before it
            within(self._boundary(), down_timeout_s),
        )

    async def inactivate(self, node: Peer, down_timeout_s: float) -> StepResult:
        return await self.step(
            Phase.INACTIVATING_NEW_PEER,
            Remove.inactivate_peer,
            SetActiveInput(region=self.region, node=node, active=False),
            f"inactivate node {node.node_id}",
            within(MEMBERSHIP, down_timeout_s),
        )

    async def create_channels(
        self, target: Peer, peers: list[Peer], coordinator: Peer, kill_after: KillPoint
    ) -> StepResult:
        return await self.step(
            Phase.CREATING_CHANNELS,
            Add.notify_peers_to_create_channels,
            ChannelsInput(
                region=self.region,
                target=target,
                peers=peers,
                coordinator=coordinator,
                kill_after=kill_after,
            ),
            f"nodes {_ids(peers)} create channels to node {target.node_id} "
            f"(snapshot from node {coordinator.node_id})",
        )

    async def capture_target(
        self, nodes: list[Peer], origins: list[int] | None = None, missing_ok: bool = False
    ) -> dict[int, int]:
        return await self.step(
            Phase.CAPTURING_TARGET,
            Read.capture_target,
            CaptureTargetInput(
                region=self.region, nodes=nodes, origins=origins, missing_ok=missing_ok
            ),
            f"capture the target vector from nodes {_ids(nodes)}"
            + (f", origins {origins}" if origins else ""),
        )

    async def activate(
        self, node: Peer, kill_after: KillPoint, down_timeout_s: float
    ) -> StepResult:
        return await self.step(
            Phase.ACTIVATING,
            Add.activate_peer,
            SetActiveInput(region=self.region, node=node, active=True, kill_after=kill_after),
            f"activate node {node.node_id}",
            within(MEMBERSHIP, down_timeout_s),
        )

    async def drop_channels(
        self,
        target: Peer,
        peers: list[Peer],
        kill_before: KillPoint | None,
        kill_after: KillPoint | None,
        rollback: bool = False,
    ) -> StepResult:
        return await self.step(
            Phase.DROPPING_CHANNELS,
            Remove.notify_peers_to_drop_channels,
            ChannelsInput(
                region=self.region,
                target=target,
                peers=peers,
                kill_before=kill_before,
                kill_after=kill_after,
            ),
            f"nodes {_ids(peers)} drop their channels to node {target.node_id}",
            # the removal's first step: a migration's addition is in history before it
            ROLLBACK if rollback else self._boundary(),
        )

    async def write_off(self, target: Peer, peers: list[Peer]) -> StepResult:
        return await self.step(
            Phase.DROPPING_CHANNELS,
            Remove.notify_peers_to_drop_channels,
            ChannelsInput(region=self.region, target=target, peers=peers, write_off=True),
            f"nodes {_ids(peers)} write off node {target.node_id}'s writes not replicated",
            ROLLBACK,  # retried until done: the region must not take them back later
        )

    async def catch_up(
        self, dead: Peer, survivors: list[Peer], down_timeout_s: float
    ) -> StepResult:
        return await self.step(
            Phase.CATCHING_UP,
            Remove.catch_up_dead_origin,
            CatchUpInput(
                region=self.region,
                origin=dead.node_id,
                survivors=survivors,
                down_timeout_s=down_timeout_s,
            ),
            f"nodes {_ids(survivors)} take node {dead.node_id}'s writes from each other, "
            "up to the most any of them holds",
            CATCH_UP,
        )

    async def inactivate_for_deletion(
        self, node: Peer, down_timeout_s: float, kill_after: KillPoint | None
    ) -> StepResult:
        return await self.step(
            Phase.INACTIVATING_LEAVING_PEER,
            Remove.inactivate_peer,
            SetActiveInput(
                region=self.region,
                node=node,
                active=False,
                for_deletion=True,
                skip_if_down_after_s=down_timeout_s,
                kill_after=kill_after,
            ),
            f"inactivate node {node.node_id} for deletion",
            skippable(down_timeout_s),
        )

    async def wait_release(
        self, node: Peer, down_timeout_s: float, kill_after: KillPoint | None
    ) -> StepResult:
        return await self.step(
            Phase.RELEASING,
            Remove.wait_release,
            ReleaseInput(
                region=self.region,
                node=node,
                skip_if_down_after_s=down_timeout_s,
                kill_after=kill_after,
            ),
            f"wait until node {node.node_id} released region {self.region}",
            skippable(down_timeout_s),
        )

    async def delete_local_peer(self, node: Peer, down_timeout_s: float) -> StepResult:
        return await self.step(
            Phase.DELETING,
            Remove.delete_local_peer,
            ReleaseInput(region=self.region, node=node, skip_if_down_after_s=down_timeout_s),
            f"delete region {self.region} on node {node.node_id}",
            skippable(down_timeout_s),
        )
