"""CheckReplicasWorkflow: compare every replica of the given regions (or of all), one region
at a time, at a bounded rate; with `repair`, rebuild a clear minority replica.

Each region is one activity (activities/check.py: the replicas hashed range by range at the
vector all of them have applied, so writes in flight raise no false alarm). A region's result
is in history once checked: a worker killed at region k of n goes on at k, and the regions
before it are not read again. The run continues as new before its history grows large,
carrying what it found. The rate can be changed while it runs (`set_rate`); the region being
read follows it within a second (its activity reads it from the `progress` query).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ActivityError, ChildWorkflowError, WorkflowAlreadyStartedError

from activities.check import CheckActivities
from contracts.check import (
    PROGRESS_QUERY,
    CheckInput,
    CheckProgress,
    CheckRegionInput,
    RegionCheck,
    Verdict,
)
from contracts.errors import root_cause
from contracts.ids import region_workflow_id
from contracts.models import ReconstructInput
from workflows.machinery.options import CHECK, child, execute
from workflows.machinery.reading import describe_cluster
from workflows.reconstruct import ReconstructRegionWorkflow

CONTINUE_AFTER = 2_000  # history events: a region costs about six (ten with a repair)
SHOWN = 10  # findings in the current details


# a long operation moves to the current build at its next task (patches guard changes)
@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class CheckReplicasWorkflow:
    @workflow.init
    def __init__(self, req: CheckInput) -> None:
        self._progress = req.carried or CheckProgress(rate_mb_s=req.rate_mb_s)
        self._cpu_share = req.cpu_share

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> CheckProgress:
        return self._progress

    @workflow.update
    def set_rate(self, mb_s: float) -> CheckProgress:
        self._progress.rate_mb_s = mb_s
        self._show()
        return self._progress

    @set_rate.validator
    def _valid_rate(self, mb_s: float) -> None:
        if mb_s <= 0:
            raise ValueError(f"the rate must be above 0 MB/s, not {mb_s:g}")

    @workflow.run
    async def run(self, req: CheckInput) -> CheckProgress:
        progress = self._progress
        if req.rate_mb_s <= 0:
            raise ValueError(f"the rate must be above 0 MB/s, not {req.rate_mb_s:g}")
        if req.cpu_share <= 0:
            raise ValueError(f"the CPU share must be above 0 cores, not {req.cpu_share:g}")
        if req.carried is None:
            progress.remaining = sorted(set(req.regions)) or await self._every_region()
            progress.total = len(progress.remaining)
        while progress.remaining:
            if workflow.info().get_current_history_length() >= CONTINUE_AFTER:
                workflow.continue_as_new(req.model_copy(update={"carried": progress}))
            region = progress.remaining[0]
            progress.current = region
            self._show()
            found = await self._check(region)
            if req.repair and found.verdict == Verdict.DIVERGED:
                found.repair = await self._repair(found)
            self._record(found)
            progress.remaining.pop(0)
        progress.current = None
        self._show()
        return progress

    async def _every_region(self) -> list[int]:
        cluster = await describe_cluster("list every region")
        return sorted(cluster.holders)

    async def _check(self, region: int) -> RegionCheck:
        request = CheckRegionInput(
            region=region, rate_mb_s=self._progress.rate_mb_s, cpu_share=self._cpu_share
        )
        try:
            return await execute(
                CheckActivities.check_region, request, f"check region {region}", CHECK
            )
        except ActivityError as e:  # a node refused (the region moved away meanwhile, ...)
            return RegionCheck(region=region, verdict=Verdict.UNCHECKED, why=root_cause(e))

    async def _repair(self, found: RegionCheck) -> str:
        """Rebuild the minority replica from the others; never when no majority agrees."""
        if found.minority is None:
            return "not repaired: no majority of the replicas agrees, so none is known good"
        node = found.minority
        try:
            await child(
                ReconstructRegionWorkflow.run,
                ReconstructInput(region=found.region, node=node),
                region_workflow_id(found.region),
                f"reconstruct region {found.region} on node {node}: it diverged",
            )
        except ChildWorkflowError as e:
            return f"the reconstruct of node {node}'s replica failed: {root_cause(e)}"
        except WorkflowAlreadyStartedError:
            return f"not repaired: another change of region {found.region} is running"
        return f"node {node}'s replica reconstructed from the others"

    def _record(self, found: RegionCheck) -> None:
        meter = workflow.metric_meter()  # not emitted again on replay
        meter.create_counter("air_check_regions", "Regions checked, by verdict").add(
            1, {"verdict": found.verdict.value}
        )
        meter.create_gauge("air_check_last_checked_seconds", "When a region was last checked").set(
            int(workflow.time()), {"region": str(found.region)}
        )
        progress = self._progress
        progress.checked += 1
        progress.bytes_read += found.bytes_read
        if found.verdict == Verdict.EQUAL:
            progress.equal += 1
        elif found.verdict == Verdict.DIVERGED:
            progress.diverged.append(found)
            workflow.logger.warning("check: %s", found.line())
        else:
            progress.unchecked.append(found)

    def _show(self) -> None:
        progress = self._progress
        lines = [
            f"**check**: {progress.checked} of {progress.total} regions checked at "
            f"{progress.rate_mb_s:g} MB/s per node: {progress.equal} equal, "
            f"{len(progress.diverged)} diverged, "
            f"{len(progress.unchecked)} not checked",
        ]
        if progress.current is not None:
            lines.append(f"now: region {progress.current}")
        lines += [f.line() for f in [*progress.diverged, *progress.unchecked][-SHOWN:]]
        workflow.set_current_details("\n\n".join(lines))
