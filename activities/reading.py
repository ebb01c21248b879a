"""The reading activities: the cluster, and one region, as their nodes describe them. Each is
read-only, so a retry after a crash at any line is safe."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import activity

from activities.node_calls import NodeCalls
from contracts.activity_models import ClusterDescription, RegionDescription
from contracts.plans import PlanMade, PlanRequest
from planning.requests import answer
from runtime.reading import describe_cluster, describe_region


class ReadingActivities:
    def __init__(self, nodes: NodeCalls) -> None:
        self.nodes = nodes

    @activity.defn
    async def describe_region(self, region: int) -> RegionDescription:
        """Ask every known node for its replica of `region`. Read-only: retry-safe."""
        directory = self.nodes.directory
        return await describe_region(
            region, directory.all(), self.nodes.clients, directory.localities()
        )

    @activity.defn
    async def describe_cluster(self, node: int) -> ClusterDescription:
        """Every known node's regions. Read-only: retry-safe. (`node` is unused; it stays in the
        signature, with which the workflows of every running build call it.)"""
        directory = self.nodes.directory
        return await describe_cluster(directory.all(), self.nodes.clients, directory.localities())

    @activity.defn
    async def plan(self, request: PlanRequest) -> PlanMade:
        """The cluster described and an operation's plan made from it, here rather than in the
        workflow: its history then holds the plan, as large as its moves, not the description,
        about 40 bytes for every region in the cluster (Temporal refuses a payload over 2 MB:
        about 50,000 regions). Read-only: retry-safe."""
        return answer(await self.describe_cluster(0), request)

    def all(self) -> list[Callable[..., Awaitable[object]]]:
        return [self.describe_region, self.describe_cluster, self.plan]
