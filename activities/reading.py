"""Reading the cluster: which node holds which region, how full each disk is, how far each
replica has applied. Plain functions that airctl, benchmarks and tests call as the workflows'
activities do; every one is read-only, so a retry after a crash at any line is safe."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from temporalio import activity

from activities.models import (
    CaptureTargetInput,
    ClusterDescription,
    Disk,
    Peer,
    RegionDescription,
    ReplicaState,
)
from activities.node_calls import RPC_TIMEOUT_S, NodeCalls, NodeRefused, not_found
from node.client import NodeClients, NodeStub
from protos import air_node_pb2 as pb

LIST_PAGE = 500  # regions per ListRegions page


@dataclass(frozen=True)
class NodeListing:
    regions: list[pb.RegionInfo]
    disk: Disk


async def node_listing(stub: NodeStub) -> NodeListing:
    """Every region a node holds, page by page (LIST_PAGE at a time), and its disk."""
    regions: list[pb.RegionInfo] = []
    after = 0
    while True:
        request = pb.ListRegionsRequest(after_region=after, limit=LIST_PAGE)
        reply = await stub.ListRegions(request, timeout=RPC_TIMEOUT_S)
        regions.extend(reply.regions)
        if not (after := reply.next_after):
            return NodeListing(regions, Disk(capacity=reply.disk_capacity, used=reply.disk_used))


async def all_regions(stub: NodeStub) -> list[pb.RegionInfo]:
    """Every region a node holds."""
    return (await node_listing(stub)).regions


async def describe_cluster(nodes: list[Peer], clients: NodeClients) -> ClusterDescription:
    """Every node's regions and disk; a node that does not answer is listed unreachable."""
    replies = await asyncio.gather(
        *(node_listing(clients.stub(n.address)) for n in nodes), return_exceptions=True
    )
    cluster = ClusterDescription(nodes=nodes)
    for peer, reply in zip(nodes, replies, strict=True):
        if isinstance(reply, BaseException):
            cluster.unreachable.append(peer.node_id)
            continue
        if reply.disk.capacity:
            cluster.disks[peer.node_id] = reply.disk
        for info in reply.regions:
            cluster.holders.setdefault(info.region, []).append(peer.node_id)
            size = max(cluster.store_bytes.get(info.region, 0), info.store_bytes)
            cluster.store_bytes[info.region] = size
            listed = {*cluster.peers.get(info.region, []), *(p.node_id for p in info.peers)}
            cluster.peers[info.region] = sorted(listed)
    return cluster


async def describe_region(
    region: int, nodes: list[Peer], clients: NodeClients
) -> RegionDescription:
    """Every node's replica of `region` (that region alone, however many a node holds)."""
    request = pb.RegionRequest(region=region)
    replies = await asyncio.gather(
        *(clients.stub(n.address).DescribeRegion(request, timeout=RPC_TIMEOUT_S) for n in nodes),
        return_exceptions=True,
    )
    description = RegionDescription(region=region, known_nodes=nodes)
    for node, info in zip(nodes, replies, strict=True):
        if not_found(info):
            continue  # no replica there
        if isinstance(info, BaseException):
            description.unreachable.append(node.node_id)
            continue
        description.replicas.append(
            ReplicaState(
                node_id=node.node_id,
                address=node.address,
                peers=[Peer(node_id=p.node_id, address=p.address) for p in info.peers],
                active=info.active,
                installed=info.installed,
                leaving=info.leaving,
            )
        )
    return description


class ReadingActivities:
    def __init__(self, nodes: NodeCalls) -> None:
        self.nodes = nodes

    @activity.defn
    async def describe_region(self, region: int) -> RegionDescription:
        """Ask every known node for its replica of `region`. Read-only: retry-safe."""
        return await describe_region(region, self.nodes.directory.all(), self.nodes.clients)

    @activity.defn
    async def describe_cluster(self, node: int) -> ClusterDescription:
        """Every known node's regions (`node` names the drain asking). Read-only: retry-safe."""
        return await describe_cluster(self.nodes.directory.all(), self.nodes.clients)

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
