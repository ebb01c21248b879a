"""An addition that fails is undone: its new peer taken out again by the removal's steps, which
are safe whatever state the addition left (a rollback runs no kill points and is retried until
done, however long a node stays away)."""

from __future__ import annotations

import asyncio

from temporalio.exceptions import ApplicationError, is_cancelled_exception

from contracts.errors import ADD_PEER_FAILED, root_cause
from contracts.models import Phase
from planning.placement import Addition, Removal
from workflows.machinery.addition import add_peer_steps
from workflows.machinery.removal import remove_peer_steps
from workflows.machinery.steps import Steps


async def add_or_roll_back(steps: Steps, addition: Addition) -> dict[int, int]:
    """The addition; on failure or cancellation, the new peer removed the safe way and the
    error raised again: a failed addition as `AddPeerFailed`."""
    try:
        return await add_peer_steps(steps, addition)
    except (asyncio.CancelledError, Exception) as e:
        steps.reporter.enter(Phase.ROLLING_BACK)
        await remove_peer_steps(steps, undoing(addition))
        steps.reporter.enter(Phase.ROLLED_BACK, f"rolled back: {_reason(e)}")
        if is_cancelled_exception(e):
            raise
        raise ApplicationError(
            f"adding node {addition.new.node_id} to region {addition.region} failed and was "
            f"rolled back: {_reason(e)}",
            type=ADD_PEER_FAILED,
            non_retryable=True,
        ) from e


def undoing(addition: Addition) -> Removal:
    """The removal that takes the addition's new peer out, leaving the peers it had."""
    return Removal(
        addition.region, addition.new, addition.peers, addition.down_timeout_s, rollback=True
    )


def _reason(error: BaseException) -> str:
    return "cancelled" if is_cancelled_exception(error) else root_cause(error)
