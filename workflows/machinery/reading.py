"""The reading steps: a region, or the whole cluster, as their nodes describe them; what a
change or an operation plans from."""

from __future__ import annotations

from activities.reading import ReadingActivities
from contracts.activity_models import ClusterDescription, RegionDescription
from contracts.models import Phase
from workflows.machinery.options import DESCRIBE, LOCAL_DESCRIBE, execute
from workflows.machinery.patches import lean_recorded
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


async def describe_cluster(summary: str) -> ClusterDescription:
    """Every node's regions: what an operation plans from (`summary`: why, for the UI)."""
    return await execute(ReadingActivities.describe_cluster, 0, summary, DESCRIBE)
