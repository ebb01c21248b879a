"""A migration of the earlier worker: AddPeer, then RemovePeer, as child workflows.

RegionMigrationWorkflow inherits `RelaysChildStalls` (the stall signal its children send) and
runs `migrate_with_children` for such a migration; `with_children` folds its children's
progress into its own, for airctl.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError

from contracts.activity_models import RegionDescription
from contracts.errors import InvalidRequest
from contracts.models import (
    AddPeerInput,
    MigrationInput,
    MigrationResult,
    Phase,
    Progress,
    RemovePeerInput,
    StallReport,
)
from planning.placement import migration_coordinator, validate_migration
from workflows.add_peer import AddPeerWorkflow
from workflows.machinery.failures import refusal
from workflows.machinery.options import child
from workflows.machinery.progress import STALL_SIGNAL, ChangeReporter
from workflows.remove_peer import RemovePeerWorkflow, finish_even_if_cancelled


def child_workflow_id(parent_id: str, kind: str) -> str:
    """A migration's add-peer or remove-peer child."""
    return f"{parent_id}/{kind}"


async def with_children(
    progress: Progress, parent_id: str, query: Callable[[str], Awaitable[Progress | None]]
) -> Progress:
    """Migration `parent_id`'s progress with its children's steps, and the running child's
    phase and lag; `query` answers a child's progress by its id (None: no such child, as for a
    current migration)."""
    running = {Phase.ADDING: AddPeerWorkflow.kind, Phase.REMOVING: RemovePeerWorkflow.kind}
    current = running.get(progress.phase)
    for kind in (AddPeerWorkflow.kind, RemovePeerWorkflow.kind):
        inner = await query(child_workflow_id(parent_id, kind))
        if inner is None:
            continue
        progress.steps_done = progress.steps_done + inner.steps_done
        if kind == current:
            progress.phase, progress.lag, progress.rate = inner.phase, inner.lag, inner.rate
    return progress


class RelaysChildStalls:
    """The stall signal of such a migration: its child reports a stall, the migration shows it
    and passes it on to its drain. (A current migration has no child: no signal reaches it.)"""

    reporter: ChangeReporter

    @workflow.signal(name=STALL_SIGNAL)
    async def transfer_stall(self, report: StallReport) -> None:
        await relay_stall(self.reporter, report)


async def relay_stall(reporter: ChangeReporter, report: StallReport) -> None:
    """A child's stall report: shown, passed on."""
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
    reporter: ChangeReporter, description: RegionDescription, req: MigrationInput
) -> MigrationResult:
    """The migration as the earlier worker ran it: AddPeer, then RemovePeer, as children."""
    try:
        validate_migration(description, req)
        coordinator = migration_coordinator(description, req, workflow.random())
    except InvalidRequest as e:
        raise refusal(e) from None
    me = workflow.info().workflow_id

    reporter.enter(Phase.ADDING, f"adding node {req.to_node} (coordinator {coordinator.node_id})")
    try:
        add = await child(
            AddPeerWorkflow.run,
            AddPeerInput(
                region=req.region,
                new_peer=req.to_node,
                coordinator=coordinator.node_id,
                down_timeout_s=req.down_timeout_s,
                stall_after_s=req.stall_after_s,
            ),
            child_workflow_id(me, AddPeerWorkflow.kind),
        )
    except ChildWorkflowError:
        # the child rolled back; a cancelled child cancels this workflow, a failed one fails it
        reporter.enter(Phase.ROLLED_BACK, f"the addition of node {req.to_node} was rolled back")
        raise
    reporter.enter(Phase.REMOVING, f"removing node {req.from_node}")
    removal = child(
        RemovePeerWorkflow.run,
        RemovePeerInput(
            region=req.region,
            peer=req.from_node,
            down_timeout_s=req.down_timeout_s,
            stall_after_s=req.stall_after_s,
        ),
        child_workflow_id(me, RemovePeerWorkflow.kind),
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
