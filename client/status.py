"""A workflow's status, as a client asks it: whether it still runs, or how it closed."""

from __future__ import annotations

from typing import TypeVar

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

W = TypeVar("W")  # the handle's workflow class
R = TypeVar("R")  # its result


async def workflow_status(handle: WorkflowHandle[W, R]) -> WorkflowExecutionStatus | None:
    """The handle's workflow's status; None when Temporal knows no workflow of its id (never
    started, or closed past retention), which every caller reads as "not running". Every other
    refusal is raised: Temporal unreachable is not an answer."""
    try:
        return (await handle.describe()).status
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def running(handle: WorkflowHandle[W, R]) -> bool:
    """Whether the handle's workflow still runs (no such workflow: it does not)."""
    return await workflow_status(handle) == WorkflowExecutionStatus.RUNNING
