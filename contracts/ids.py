"""Workflow ids and the task queue: every id a client or a workflow builds comes from here."""

from __future__ import annotations

TASK_QUEUE = "air-replication"


def region_workflow_id(region: int) -> str:
    """One membership change per region at a time: every kind of change uses this id."""
    return f"air-region-{region}"


def drain_workflow_id(node: int) -> str:
    return f"air-drain-node-{node}"


def repair_workflow_id(node: int) -> str:
    return f"air-repair-node-{node}"


# One rebalance of the cluster at a time; one autopilot per cluster.
REBALANCE_WORKFLOW_ID = "air-rebalance"
AUTOPILOT_WORKFLOW_ID = "air-autopilot"


# The consistency check's schedule; its runs' ids are this and the time they were due.
CHECK_SCHEDULE_ID = "air-check"


def check_workflow_id(token: str) -> str:
    """A check started by hand or by the autopilot (`token`: what makes it unique, e.g. a
    random hex)."""
    return f"air-check-{token}"
