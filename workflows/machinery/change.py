"""What every membership change shares, whichever it is: its progress and its verdict, and how
it begins (the region described, the request planned or refused)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ClassVar, Protocol, TypeVar

from temporalio import workflow

from contracts.activity_models import RegionDescription
from contracts.errors import InvalidRequest
from contracts.models import Progress
from workflows.machinery.progress import ChangeReporter
from workflows.machinery.reading import describe_region
from workflows.machinery.steps import Steps
from workflows.machinery.verdict import Verdict

R = TypeVar("R")


class Plan(Protocol):
    def summary(self) -> str:
        """What the change will do, in a line."""
        ...


P = TypeVar("P", bound=Plan)


class MembershipChange:
    """The handlers the three membership workflows share; a client asks any of them with
    `handle.query(MembershipChange.progress)`."""

    kind: ClassVar[str]

    def __init__(self) -> None:
        self.reporter = ChangeReporter(self.kind)
        self.verdict = Verdict()

    @workflow.query
    def progress(self) -> Progress:
        return self.reporter.progress

    @workflow.update
    async def validated(self) -> str:
        """What the change will do, once validation took the request; else why it refused."""
        return await self.verdict.wait()

    async def begin(
        self,
        region: int,
        nodes: list[int],
        stall_after_s: float,
        plan: Callable[[RegionDescription], P],
    ) -> tuple[Steps, P]:
        """Report the change begun, describe the region and `plan` from it: a refusal fails
        the workflow and answers `validated` with the reason, before anything changed; a plan
        answers it with its summary. The steps on the region, and the plan."""
        self.reporter.begin(region, nodes, stall_after_s)
        steps = Steps(self.reporter, region)
        try:
            planned = plan(await describe_region(steps))
        except InvalidRequest as e:
            raise await self.verdict.refuse(e) from None
        self.verdict.accept(planned.summary())
        return steps, planned


async def finish_even_if_cancelled(work: asyncio.Future[R]) -> tuple[R, bool]:
    """Finish `work` even when the workflow is cancelled meanwhile; say whether it was."""
    try:
        return await asyncio.shield(work), False
    except asyncio.CancelledError:
        return await work, True
