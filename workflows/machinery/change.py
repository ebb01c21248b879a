"""What every membership change answers, whichever it is: its progress, and its verdict."""

from __future__ import annotations

from typing import ClassVar

from temporalio import workflow

from contracts.models import Progress
from workflows.machinery.progress import ChangeReporter
from workflows.machinery.verdict import Verdict


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
