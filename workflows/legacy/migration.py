"""A migration of the unversioned worker: AddPeer, then RemovePeer, as child workflows.

RegionMigrationWorkflow runs `migrate_with_children` for such a migration, handing down its
children's run methods (this package imports no definition); the stall signal its children
send is handled only here. `with_children` folds its children's progress into its own, for
airctl.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError

from contracts.activity_models import RegionDescription
from contracts.errors import InvalidRequest
from contracts.models import (
    AddPeerInput,
    AddPeerResult,
    MigrationInput,
    MigrationResult,
    Phase,
    Progress,
    RemovePeerInput,
    RemovePeerResult,
    StallReport,
)
from planning.placement import migration_coordinator, validate_migration
from workflows.machinery.change import finish_even_if_cancelled
from workflows.machinery.failures import refusal
from workflows.machinery.options import child
from workflows.machinery.progress import STALL_SIGNAL, ChangeReporter

# the children's kinds, the last part of their workflow ids
ADD_PEER, REMOVE_PEER = "add-peer", "remove-peer"

AddPeerRun = Callable[[Any, AddPeerInput], Awaitable[AddPeerResult]]
RemovePeerRun = Callable[[Any, RemovePeerInput], Awaitable[RemovePeerResult]]


def child_workflow_id(parent_id: str, kind: str) -> str:
    """A migration's add-peer or remove-peer child."""
    return f"{parent_id}/{kind}"


async def with_children(
    progress: Progress, parent_id: str, query: Callable[[str], Awaitable[Progress | None]]
) -> Progress:
    """Migration `parent_id`'s progress with its children's steps, and the running child's
    phase and lag; `query` answers a child's progress by its id (None: no such child, as for a
    current migration)."""
    running = {Phase.ADDING: ADD_PEER, Phase.REMOVING: REMOVE_PEER}
    current = running.get(progress.phase)
    for kind in (ADD_PEER, REMOVE_PEER):
        inner = await query(child_workflow_id(parent_id, kind))
        if inner is None:
            continue
        progress.steps_done = progress.steps_done + inner.steps_done
        if kind == current:
            progress.phase, progress.lag, progress.rate = inner.phase, inner.lag, inner.rate
    return progress


async def relay_stall(reporter: ChangeReporter, report: StallReport) -> None:
    """A child's stall report: shown, and passed on to the migration's drain."""
    try:
        progress = reporter.progress
    except ApplicationError:  # not begun yet: nothing to show
        return
    if not reporter.set_stalled(report.stalled):
        return
    if report.stalled:
        progress.message = report.detail
    elif progress.message.startswith("STALLED"):
        progress.message = ""
    reporter.show()
    await reporter.surface.tell_parent(report)


async def migrate_with_children(
    reporter: ChangeReporter,
    description: RegionDescription,
    req: MigrationInput,
    add_peer: AddPeerRun,
    remove_peer: RemovePeerRun,
) -> MigrationResult:
    """The migration as the unversioned worker ran it: AddPeer, then RemovePeer, as children.

    The stall signal's handler is set before the first child starts, so it is there for every
    report (and a current migration, which has no child, has none)."""

    async def transfer_stall(report: StallReport) -> None:  # typed: the payload's model
        await relay_stall(reporter, report)

    workflow.set_signal_handler(STALL_SIGNAL, transfer_stall)
    try:
        validate_migration(description, req)
        coordinator = migration_coordinator(description, req, workflow.random())
    except InvalidRequest as e:
        raise refusal(e) from None
    me = workflow.info().workflow_id

    reporter.enter(Phase.ADDING, f"adding node {req.to_node} (coordinator {coordinator.node_id})")
    try:
        add = await child(
            add_peer,
            AddPeerInput(
                region=req.region,
                new_peer=req.to_node,
                coordinator=coordinator.node_id,
                down_timeout_s=req.down_timeout_s,
                stall_after_s=req.stall_after_s,
            ),
            child_workflow_id(me, ADD_PEER),
        )
    except ChildWorkflowError:
        # the child rolled back; a cancelled child cancels this workflow, a failed one fails it
        reporter.enter(Phase.ROLLED_BACK, f"the addition of node {req.to_node} was rolled back")
        raise
    reporter.enter(Phase.REMOVING, f"removing node {req.from_node}")
    removal = child(
        remove_peer,
        RemovePeerInput(
            region=req.region,
            peer=req.from_node,
            down_timeout_s=req.down_timeout_s,
            stall_after_s=req.stall_after_s,
        ),
        child_workflow_id(me, REMOVE_PEER),
    )
    remove, cancelled = await finish_even_if_cancelled(asyncio.ensure_future(removal))
    message = f"region {req.region} moved from node {req.from_node} to node {req.to_node}"
    if cancelled:
        message += " (cancelled after the new peer was active: the removal was finished)"
    reporter.enter(Phase.DONE, message)
    await workflow.wait_condition(workflow.all_handlers_finished)  # a relayed stall report
    return MigrationResult(
        region=req.region,
        from_node=req.from_node,
        to_node=req.to_node,
        add=add,
        remove=remove,
        cancelled=cancelled,
        message=message,
    )
