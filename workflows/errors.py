"""How the workflows fail: refusals of bad input, and the root cause of a failure."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from workflows.planning import InvalidRequest

# Failure types no retry can mend: the activities' retry policies never retry them.
INVALID_REQUEST = "InvalidRequest"
NODE_REFUSED = "NodeRefused"


def refusal(error: InvalidRequest) -> ApplicationError:
    """Bad input: fail at once, change nothing."""
    return ApplicationError(str(error), type=INVALID_REQUEST, non_retryable=True)


def root_cause(error: BaseException) -> str:
    """The innermost cause's message: what went wrong, under the layers that carried it."""
    while (inner := getattr(error, "cause", None) or error.__cause__) is not None:
        error = inner
    return getattr(error, "message", None) or str(error) or type(error).__name__
