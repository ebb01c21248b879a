"""How the workflows fail: refusals of bad input, and what a failure says about itself (a node
that does not answer, a rolled-back addition). The failure types are contracts/errors.py's."""

from __future__ import annotations

from collections.abc import Iterator

from temporalio.exceptions import ApplicationError

from contracts.errors import (
    ADD_PEER_FAILED,
    INVALID_REQUEST,
    InvalidRequest,
    NodeUnreachable,
    causes,
)


def refusal(error: InvalidRequest) -> ApplicationError:
    """Bad input: fail at once, change nothing. A refusal for a node that does not answer
    names it in its details (`unreachable_node`), so an operation's move can wait for it."""
    details = [error.node] if isinstance(error, NodeUnreachable) else []
    return ApplicationError(str(error), *details, type=INVALID_REQUEST, non_retryable=True)


def _application_errors(error: BaseException) -> Iterator[ApplicationError]:
    return (e for e in causes(error) if isinstance(e, ApplicationError))


def unreachable_node(error: BaseException) -> int | None:
    """The node a failure was refused for because it does not answer, if it was."""
    first = next(_application_errors(error), None)
    if first is not None and first.type == INVALID_REQUEST and first.details:
        node = first.details[0]
        return node if isinstance(node, int) else None
    return None


def rolled_back(error: BaseException) -> bool:
    """Whether a migration failed in its addition, which was rolled back."""
    return any(e.type == ADD_PEER_FAILED for e in _application_errors(error))
