"""The reading steps: a region, or the whole cluster, as their nodes describe them; what a
change or an operation plans from."""

from __future__ import annotations

from temporalio import workflow

from activities.reading import ReadingActivities
from contracts.activity_models import ClusterDescription, RegionDescription
from contracts.models import Phase
from contracts.plans import PlanMade, PlanRequest
from planning.requests import answer
from workflows.machinery.options import DESCRIBE, LOCAL_DESCRIBE, execute
from workflows.machinery.patches import PLANNED_ON_WORKER, lean_recorded
from workflows.machinery.steps import Steps


async def describe_region(steps: Steps) -> RegionDescription:
    """The region as its holders describe it: what a change plans from. It must reach history
    before the first side effect: see LOCAL_DESCRIBE and BOUNDARY."""
    lean_recorded()
    return await steps.step(
        Phase.VALIDATING,
        ReadingActivities.describe_region,
        steps.region,
        f"describe region {steps.region}",
        LOCAL_DESCRIBE,
    )


async def make_plan(request: PlanRequest, what: str) -> PlanMade:
    """An operation's plan (`what`: for the UI), made on the worker from the cluster as it is
    now. A workflow that began before `PLANNED_ON_WORKER` plans here, from the description."""
    if workflow.patched(PLANNED_ON_WORKER):
        return await execute(ReadingActivities.plan, request, f"plan to {what}", DESCRIBE)
    return answer(await describe_cluster(f"describe the cluster to {what}"), request)


async def describe_cluster(summary: str) -> ClusterDescription:
    """Every node's regions: what an operation plans from (`summary`: why, for the UI)."""
    return await execute(ReadingActivities.describe_cluster, 0, summary, DESCRIBE)
