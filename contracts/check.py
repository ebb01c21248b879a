"""The consistency check's inputs, findings and progress (CheckReplicasWorkflow)."""

from __future__ import annotations

import enum

from pydantic import BaseModel, Field

# Store bytes a check reads per second on each node, by default: CockroachDB's consistency
# checker reads 8 MiB/s.
DEFAULT_RATE_MB_S = 8.0
# A check's CPU per node, as a share of one core, by default. Hashing in Python costs about a
# core per 9 MB/s here, so on shared cores CPU, not the disk, is what a check takes from the
# writes beside it (BENCHMARKS.md): the check is paced by whichever bound it reaches first.
DEFAULT_CPU_SHARE = 0.25
RANGE_POINTS = 5_000  # points per range read at once
# The check workflow's progress query. A region's check reads the rate from it while it runs,
# so `set_rate` takes effect mid-region; by name, as an activity imports no workflow.
PROGRESS_QUERY = "progress"


class CheckInput(BaseModel):
    regions: list[int] = Field(default_factory=list)  # empty: every region of the cluster
    rate_mb_s: float = DEFAULT_RATE_MB_S  # store read per node per second
    cpu_share: float = DEFAULT_CPU_SHARE  # of one core, per node; 1 or more: no CPU bound
    repair: bool = False  # reconstruct a clear minority replica
    carried: CheckProgress | None = None  # a run continued as new: what the earlier ones did


class Verdict(enum.StrEnum):
    EQUAL = "EQUAL"
    DIVERGED = "DIVERGED"
    UNCHECKED = "UNCHECKED"  # fewer than two replicas answered, or none held the region


class ReplicaDiff(BaseModel):
    """How one replica differs from the majority of the region's replicas."""

    node: int
    missing: int = 0  # settled points the majority holds and this replica lacks
    extra: int = 0  # settled points this replica holds and the majority lacks
    different: int = 0  # keys where this replica holds another point than the majority
    examples: list[str] = Field(default_factory=list)


class RegionCheck(BaseModel):
    region: int
    verdict: Verdict
    replicas: list[int] = Field(default_factory=list)
    minority: int | None = None  # the one replica that differs from a majority on every key
    diffs: list[ReplicaDiff] = Field(default_factory=list)
    ambiguous_keys: int = 0  # keys on which no majority of the replicas agree
    settled: int = 0  # points compared (on each replica)
    unsettled: int = 0  # points in flight, not compared (most on any replica)
    bytes_read: int = 0  # store bytes read, on the replica that read the most
    why: str = ""  # for UNCHECKED: what stood in the way
    repair: str = ""  # with `repair`: the reconstruct started, or why none

    def line(self) -> str:
        """One line for an operator: the region, the verdict, the replica to look at."""
        if self.verdict == Verdict.EQUAL:
            return f"region {self.region}: equal on nodes {self.replicas} ({self.settled} points)"
        if self.verdict == Verdict.UNCHECKED:
            return f"region {self.region}: not checked: {self.why}"
        found = "; ".join(
            f"node {d.node}: {d.missing} missing, {d.extra} extra, {d.different} different"
            for d in self.diffs
        )
        who = (
            f"node {self.minority} differs from the others"
            if self.minority is not None
            else "no majority agrees"
        )
        return f"region {self.region}: DIVERGED, {who} ({found})" + (
            f"; {self.repair}" if self.repair else ""
        )


class CheckRegionInput(BaseModel):
    region: int
    rate_mb_s: float = DEFAULT_RATE_MB_S
    cpu_share: float = DEFAULT_CPU_SHARE
    range_points: int = RANGE_POINTS


class CheckProgress(BaseModel):
    total: int = 0
    checked: int = 0
    equal: int = 0
    rate_mb_s: float = DEFAULT_RATE_MB_S
    remaining: list[int] = Field(default_factory=list)  # regions still to check, in order
    current: int | None = None
    diverged: list[RegionCheck] = Field(default_factory=list)
    unchecked: list[RegionCheck] = Field(default_factory=list)
    bytes_read: int = 0


CheckInput.model_rebuild()
