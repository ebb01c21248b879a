"""Waiting for a transfer: slice by slice, with lag, rate and stall reports, never counting an
unreachable receiver as complete."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.exceptions import ApplicationError

from activities.add_peer import AddPeerActivities as Add
from contracts.activity_models import Peer, WaitTransferInput
from contracts.models import Phase
from workflows.machinery.options import FIRST_WAIT, WAIT
from workflows.machinery.steps import Steps


async def wait_transfer(
    steps: Steps,
    phase: Phase,
    receivers: list[Peer],
    target: dict[int, int],
    down_timeout_s: float,
    cancellable: bool = False,
) -> None:
    """Wait until `receivers` have applied `target`, showing lag and rate as it goes.

    A receiver unreachable for `down_timeout_s` (workflow time, so it survives any crash)
    fails the wait: an unreachable peer never counts as complete. A `cancellable` wait ends
    with CancelledError once the workflow is asked to cancel.
    """
    reporter = steps.reporter
    ids = [r.node_id for r in receivers]
    down_since: timedelta | None = None
    best: tuple[int, timedelta] | None = None  # the smallest lag seen, and when
    slice_s = min(5.0, max(0.5, reporter.stall_after_s / 2))
    options = FIRST_WAIT  # the first slice is tried quick: a small region is done in it
    while True:
        slice_ = await steps.step(
            phase,
            Add.wait_transfer_complete,
            WaitTransferInput(
                region=steps.region,
                receivers=receivers,
                target=target,
                slice_s=slice_s,
            ),
            f"wait until nodes {ids} applied {target}",
            options,
        )
        options = WAIT
        if cancellable and reporter.surface.cancel_requested():
            # the cancel came while a slice was ending: the SDK let the slice's result through
            # and consumed the cancellation, so the wait would go on for ever (seen in a drain)
            raise asyncio.CancelledError("the workflow was asked to cancel")
        now = timedelta(seconds=reporter.surface.now())
        if best is None or slice_.lag < best[0]:
            best = (slice_.lag, now)
        if reporter.transfer(slice_, ids, (now - best[1]).total_seconds()):
            await reporter.tell_parent()
        if slice_.complete:
            return
        down_since = (down_since or now) if slice_.unreachable else None
        if down_since is not None and now - down_since > timedelta(seconds=down_timeout_s):
            raise ApplicationError(
                f"nodes {slice_.unreachable} unreachable for over {down_timeout_s:.0f}s "
                "while waiting for the transfer",
                type="NodeDown",
                non_retryable=True,
            )
