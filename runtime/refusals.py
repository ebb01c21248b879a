"""How a failed call to a node reads, the same for every caller: refused, or unanswered.

A node refuses with a status code that says the request itself is wrong for it now (bad
input, no such region, not a peer, not in a state to do it, made differently already): it
answered, so the same request gets the same answer, and the caller neither retries it nor
counts the link as broken. A call unanswered (the node or the link is down, or its deadline
passed) may succeed later: the caller waits, retries or reports the node unreachable.
"""

from __future__ import annotations

import grpc

REFUSALS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)
UNANSWERED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def refused(error: object) -> bool:
    """Whether a call failed because the node refused the request (see REFUSALS)."""
    return isinstance(error, grpc.aio.AioRpcError) and error.code() in REFUSALS


def unreachable(error: object) -> bool:
    """Whether a call failed because no answer came: the node or the link is down."""
    return isinstance(error, grpc.aio.AioRpcError) and error.code() in UNANSWERED


def not_found(error: object) -> bool:
    """Whether a call failed because the node has no such region (or replica)."""
    return isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.NOT_FOUND
