"""Whether a workflow took its request: what a client that starts it waits for.

Each workflow we start has a `validated` update that returns its plan in a line once the request
passed validation, or fails with the reason it was refused. A client sends it with the start
(update-with-start), so a bad request is refused to its face, not found failed later; the
workflow itself fails too, with `InvalidRequest`, as when started by any other client.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from contracts.errors import InvalidRequest
from workflows.machinery.failures import refusal


class Verdict:
    def __init__(self) -> None:
        self._plan: str | None = None
        self._refused: InvalidRequest | None = None

    def accept(self, plan: str) -> None:
        self._plan = plan

    async def refuse(self, error: InvalidRequest) -> ApplicationError:
        """The refusal, once the `validated` update has answered with it: raise it."""
        self._refused = error
        await workflow.wait_condition(workflow.all_handlers_finished)
        return refusal(error)

    async def wait(self) -> str:
        """The plan, when validation accepts the request; its refusal, raised, when not."""
        await workflow.wait_condition(lambda: self._plan is not None or self._refused is not None)
        if self._refused is not None:
            raise refusal(self._refused)
        assert self._plan is not None
        return self._plan
