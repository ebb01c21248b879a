"""How a membership step runs: its phase entered, its activity run (quick first when it may
wait for a node), its summary shown in the UI; and the steps every change takes (describe the
region, capture a target, catch up on a dead peer's writes).

The steps of an addition and of a removal are beside their step lists, in workflows/add_peer.py
and workflows/remove_peer.py: each builds its activity's input, names it for the UI and picks
its options, so a workflow reads as the step list, one line a step.
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

from activities.reading import ReadingActivities as Read
from activities.remove_peer import RemovePeerActivities as Remove
from contracts.activity_models import (
    CaptureTargetInput,
    CatchUpInput,
    Peer,
    RegionDescription,
    StepInput,
    StepResult,
)
from contracts.models import Phase
from workflows.machinery.failures import INVALID_REQUEST, NODE_REFUSED
from workflows.machinery.options import (
    CATCH_UP,
    LOCAL_DESCRIBE,
    MEMBERSHIP,
    QUICK_TRY,
    Options,
    execute,
)
from workflows.machinery.patches import lean_recorded
from workflows.machinery.progress import ChangeReporter

R = TypeVar("R")


class Runner:
    """Runs a step's activity through Temporal; a benchmark's baseline runs it in process."""

    async def run(
        self, activity: Callable[[Any, Any], Awaitable[R]], arg: Any, summary: str, options: Options
    ) -> R:
        """A step that may wait for a node first tries without waiting, as a local activity;
        only if it had to wait does it run as a regular, heartbeating activity."""
        if options.quick_first and isinstance(arg, StepInput):
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


def ids(peers: list[Peer]) -> list[int]:
    """The peers' node ids, for a step's summary."""
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
        history before the first side effect: see LOCAL_DESCRIBE and BOUNDARY."""
        lean_recorded()
        return await self.step(
            Phase.VALIDATING,
            Read.describe_region,
            self.region,
            f"describe region {self.region}",
            LOCAL_DESCRIBE,
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
            f"capture the target vector from nodes {ids(nodes)}"
            + (f", origins {origins}" if origins else ""),
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
            f"nodes {ids(survivors)} take node {dead.node_id}'s writes from each other, "
            "up to the most any of them holds",
            CATCH_UP,
        )
