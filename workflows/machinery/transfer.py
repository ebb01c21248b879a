"""The transfer steps on one region: a target captured once, the wait until receivers applied
it (slice by slice, with lag, rate and stall reports, never counting an unreachable receiver as
complete), and the survivors of a dead peer brought to the same prefix of its writes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.exceptions import ApplicationError

from activities.transfer import TransferActivities
from contracts.activity_models import (
    CaptureTargetInput,
    CatchUpInput,
    Peer,
    StepResult,
    WaitTransferInput,
)
from contracts.errors import NODE_DOWN
from contracts.models import Phase
from workflows.machinery.options import CATCH_UP, FIRST_WAIT, WAIT
from workflows.machinery.steps import Steps, ids


async def capture_target(
    steps: Steps, nodes: list[Peer], origins: list[int] | None = None, missing_ok: bool = False
) -> dict[int, int]:
    return await steps.step(
        Phase.CAPTURING_TARGET,
        TransferActivities.capture_target,
        CaptureTargetInput(
            region=steps.region, nodes=nodes, origins=origins, missing_ok=missing_ok
        ),
        f"capture the target vector from nodes {ids(nodes)}"
        + (f", origins {origins}" if origins else ""),
    )


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
    receiver_ids = ids(receivers)
    down_since: timedelta | None = None
    best: tuple[int, timedelta] | None = None  # the smallest lag seen, and when
    slice_s = min(5.0, max(0.5, reporter.stall_after_s / 2))
    options = FIRST_WAIT  # the first slice is tried quick: a small region is done in it
    while True:
        slice_ = await steps.step(
            phase,
            TransferActivities.wait_transfer_complete,
            WaitTransferInput(
                region=steps.region,
                receivers=receivers,
                target=target,
                slice_s=slice_s,
            ),
            f"wait until nodes {receiver_ids} applied {target}",
            options,
        )
        options = WAIT
        if cancellable and reporter.workflow.cancel_requested():
            # a cancel that arrives as a slice ends is consumed by the SDK with the slice's
            # result: unless the wait looks for it here, it goes on for ever
            raise asyncio.CancelledError("the workflow was asked to cancel")
        now = timedelta(seconds=reporter.workflow.now())
        if best is None or slice_.lag < best[0]:
            best = (slice_.lag, now)
        if reporter.transfer(slice_, receiver_ids, (now - best[1]).total_seconds()):
            await reporter.tell_parent()
        if slice_.complete:
            return
        down_since = (down_since or now) if slice_.unreachable else None
        if down_since is not None and now - down_since > timedelta(seconds=down_timeout_s):
            raise ApplicationError(
                f"nodes {slice_.unreachable} unreachable for over {down_timeout_s:.0f}s "
                "while waiting for the transfer",
                type=NODE_DOWN,
                non_retryable=True,
            )


async def catch_up(
    steps: Steps, dead: Peer, survivors: list[Peer], down_timeout_s: float
) -> StepResult:
    """Every survivor brought to the longest prefix of `dead`'s writes any of them holds."""
    return await steps.step(
        Phase.CATCHING_UP,
        TransferActivities.catch_up_dead_origin,
        CatchUpInput(
            region=steps.region,
            origin=dead.node_id,
            survivors=survivors,
            down_timeout_s=down_timeout_s,
        ),
        f"nodes {ids(survivors)} take node {dead.node_id}'s writes from each other, "
        "up to the most any of them holds",
        CATCH_UP,
    )
