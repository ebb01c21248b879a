"""The reading activities: the cluster, one region, the target vector of a transfer. Each is
read-only, so a retry after a crash at any line is safe."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import activity

from activities.node_calls import NodeCalls, NodeRefused
from contracts.activity_models import CaptureTargetInput, ClusterDescription, RegionDescription
from protos import air_node_pb2 as pb
from runtime.clients import RPC_TIMEOUT_S, not_found
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
    async def capture_target(self, step: CaptureTargetInput) -> dict[int, int]:
        """The target vector, captured once so a retried wait uses the same one.

        The componentwise max of the nodes' applied vectors (a node's own origin there is its
        max assigned seq). Read-only: a retry captures again, which is as good (the workflow
        records only the result it receives).
        """
        request = pb.RegionRequest(region=step.region)
        target: dict[int, int] = {}
        for node in step.nodes:
            try:
                progress = await self.nodes.call(
                    node, lambda stub: stub.GetProgress(request, timeout=RPC_TIMEOUT_S)
                )
            except NodeRefused as e:
                if step.missing_ok and not_found(e.__cause__):
                    continue  # no replica there: nothing of it to wait for
                raise
            for origin, seq in progress.applied.items():
                if step.origins is None or origin in step.origins:
                    target[origin] = max(target.get(origin, 0), seq)
        return target

    def all(self) -> list[Callable[..., Awaitable[object]]]:
        return [self.describe_region, self.describe_cluster, self.capture_target]
