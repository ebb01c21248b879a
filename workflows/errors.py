"""How the workflows fail: refusals of bad input, and the root cause of a failure."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from workflows.planning import InvalidRequest, NodeUnreachable

# Failure types no retry can mend: the activities' retry policies never retry them.
INVALID_REQUEST = "InvalidRequest"
NODE_REFUSED = "NodeRefused"
# An addition that failed and was rolled back: the region is as it was before it.
ADD_PEER_FAILED = "AddPeerFailed"


def refusal(error: InvalidRequest) -> ApplicationError:
    """Bad input: fail at once, change nothing. A refusal for a node that does not answer
    names it in its details (`unreachable_node`), so an operation's move can wait for it."""
    details = [error.node] if isinstance(error, NodeUnreachable) else []
    return ApplicationError(str(error), *details, type=INVALID_REQUEST, non_retryable=True)


def unreachable_node(error: BaseException) -> int | None:
    """The node a failure was refused for because it does not answer, if it was."""
    while error is not None and not isinstance(error, ApplicationError):
        error = getattr(error, "cause", None) or error.__cause__  # type: ignore[assignment]
    if isinstance(error, ApplicationError) and error.type == INVALID_REQUEST and error.details:
        node = error.details[0]
        return node if isinstance(node, int) else None
    return None


def rolled_back(error: BaseException) -> bool:
    """Whether a migration failed in its addition, which was rolled back."""
    while error is not None:
        if isinstance(error, ApplicationError) and error.type == ADD_PEER_FAILED:
            return True
        error = getattr(error, "cause", None) or error.__cause__  # type: ignore[assignment]
    return False


def root_cause(error: BaseException) -> str:
    """The innermost cause's message: what went wrong, under the layers that carried it."""
    while (inner := getattr(error, "cause", None) or error.__cause__) is not None:
        error = inner
    return getattr(error, "message", None) or str(error) or type(error).__name__
