"""Refusals of bad input: raised by the planners (plain exceptions, no Temporal), turned into
non-retryable failures by the workflows (`workflows.machinery.failures.refusal`)."""

from __future__ import annotations


class InvalidRequest(Exception):
    """The request cannot be right for this cluster: refused before anything changes."""


class NodeUnreachable(InvalidRequest):
    """A node the request needs does not answer: refused now, perhaps fine in a moment (an
    operation's move waits for it)."""

    def __init__(self, message: str, node: int) -> None:
        super().__init__(message)
        self.node = node


class UserError(Exception):
    """Something the user can fix; printed as one line, without a traceback."""
