"""How a step on one region runs: its phase entered, its activity run (quick first when it may
wait for a node), its summary shown in the UI.

The steps themselves are grouped by what they act on: reading the cluster (`reading.py`), a
region's membership (`membership.py`), the transfers between its replicas (`transfer.py`).
Each builds its activity's input, names it for the UI and picks its options, so that an
addition and a removal (`addition.py`, `removal.py`) read as step lists, one line a step.
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

from contracts.activity_models import Peer, StepInput
from contracts.errors import INVALID_REQUEST, NODE_REFUSED
from contracts.models import Phase
from workflows.machinery.options import MEMBERSHIP, QUICK_TRY, Options, execute
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
