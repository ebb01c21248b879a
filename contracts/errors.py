"""Errors as part of the interface: refusals of bad input, raised by the planners (plain
exceptions, no Temporal) and turned into non-retryable failures by the workflows
(`workflows.machinery.failures.refusal`); the type of every failure the workflows and
activities raise, which retry policies, workflows and clients tell failures apart by; and the
one way a failure is put in words (`root_cause`)."""

from __future__ import annotations

from collections.abc import Iterator

# `ApplicationError.type` of each failure raised on purpose. The first two are never retried
# (workflows/machinery/options.py): no retry can mend them.
INVALID_REQUEST = "InvalidRequest"  # bad input, refused before anything changed
NODE_REFUSED = "NodeRefused"  # a node refused a request (runtime/refusals.py)
NOT_QUICK = "NotQuick"  # a quick try would have had to wait: the step runs as a regular one
NODE_DOWN = "NodeDown"  # a receiver did not answer for the whole down_timeout_s of a wait
CATCH_UP_FAILED = "CatchUpFailed"  # a dead peer's survivors could not be brought level
ADD_PEER_FAILED = "AddPeerFailed"  # an addition failed and was rolled back: region as before
RECONSTRUCT_FAILED = "ReconstructFailed"  # a replica removed and rebuilt nowhere


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


def causes(error: BaseException) -> Iterator[BaseException]:
    """The error, then each cause under it (a child's failure, its activity's, ...)."""
    current: BaseException | None = error
    while current is not None:
        yield current
        current = getattr(current, "cause", None) or current.__cause__


def root_cause(error: BaseException) -> str:
    """A failure in words, wherever it is shown: the innermost cause's message, what went
    wrong under the layers that carried it."""
    *_, error = causes(error)
    return getattr(error, "message", None) or str(error) or type(error).__name__
