"""What every membership change answers, whichever it is: its progress, and its verdict."""

from __future__ import annotations

import asyncio
from typing import ClassVar, TypeVar

from temporalio import workflow

from contracts.models import Progress
from workflows.machinery.progress import ChangeReporter
from workflows.machinery.verdict import Verdict

R = TypeVar("R")


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


async def finish_even_if_cancelled(work: asyncio.Future[R]) -> tuple[R, bool]:
    """Finish `work` even when the workflow is cancelled meanwhile; say whether it was."""
    try:
        return await asyncio.shield(work), False
    except asyncio.CancelledError:
        return await work, True
