"""Reading the cluster: which node holds which region, how full each disk is. Plain functions
that the workflows' activities, airctl, benchmarks and tests all call; every one is read-only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from contracts.activity_models import (
    ClusterDescription,
    Disk,
    Peer,
    RegionDescription,
    ReplicaState,
)
from contracts.members import stale_holders
from protos import air_node_pb2 as pb
from runtime.clients import RPC_TIMEOUT_S, NodeClients, NodeStub
from runtime.refusals import not_found

log = logging.getLogger(__name__)

LIST_PAGE = 500  # regions per ListRegions page
# a page after the largest region id holds none: the node's own facts alone
FACTS_ONLY = pb.ListRegionsRequest(after_region=2**31 - 1, limit=1)


@dataclass(frozen=True)
class NodeListing:
    regions: list[pb.RegionInfo]
    disk: Disk
    locality: list[str]


async def node_listing(stub: NodeStub) -> NodeListing:
    """Every region a node holds, page by page (LIST_PAGE at a time), and its disk."""
    regions: list[pb.RegionInfo] = []
    after = 0
    while True:
        request = pb.ListRegionsRequest(after_region=after, limit=LIST_PAGE)
        reply = await stub.ListRegions(request, timeout=RPC_TIMEOUT_S)
        regions.extend(reply.regions)
        if not (after := reply.next_after):
            disk = Disk(capacity=reply.disk_capacity, used=reply.disk_used)
            return NodeListing(regions, disk, list(reply.locality))


async def all_regions(stub: NodeStub) -> list[pb.RegionInfo]:
    """Every region a node holds."""
    return (await node_listing(stub)).regions


async def describe_cluster(
    nodes: list[Peer], clients: NodeClients, localities: Mapping[int, list[str]] | None = None
) -> ClusterDescription:
    """Every node's regions, disk and locality; a node that does not answer is listed
    unreachable, with the locality `localities` (the directory's) names for it."""
    replies = await asyncio.gather(
        *(node_listing(clients.stub(n.address)) for n in nodes), return_exceptions=True
    )
    cluster = ClusterDescription(nodes=nodes)
    lists: dict[int, dict[int, set[int]]] = {}  # region -> holder -> the peers it lists
    took_writes: dict[int, list[int]] = {}
    for peer, reply in zip(nodes, replies, strict=True):
        if isinstance(reply, BaseException):
            _not_answered(peer, reply)
            cluster.unreachable.append(peer.node_id)
            if tiers := (localities or {}).get(peer.node_id):
                cluster.localities[peer.node_id] = list(tiers)
            continue
        if reply.disk.capacity:
            cluster.disks[peer.node_id] = reply.disk
        if reply.locality:
            cluster.localities[peer.node_id] = reply.locality
        for info in reply.regions:
            holders = lists.setdefault(info.region, {})
            holders[peer.node_id] = {p.node_id for p in info.peers}
            if _took_writes(info):
                took_writes.setdefault(info.region, []).append(peer.node_id)
            size = max(cluster.store_bytes.get(info.region, 0), info.store_bytes)
            cluster.store_bytes[info.region] = size
    for region, held in lists.items():
        if stale := stale_holders(held, took_writes.get(region, [])):
            cluster.stale[region] = sorted(stale)
        members = {n: peers for n, peers in held.items() if n not in stale}
        cluster.holders[region] = list(members)
        cluster.peers[region] = sorted({p for peers in members.values() for p in peers})
    return cluster


async def describe_region(
    region: int,
    nodes: list[Peer],
    clients: NodeClients,
    localities: Mapping[int, list[str]] | None = None,
) -> RegionDescription:
    """Every node's replica of `region` (that region alone, however many a node holds), and
    each node's disk and locality (`localities`, the directory's, for a node that does not
    answer)."""
    request = pb.RegionRequest(region=region)
    stubs = [clients.stub(n.address) for n in nodes]
    replies, facts = await asyncio.gather(
        asyncio.gather(
            *(s.DescribeRegion(request, timeout=RPC_TIMEOUT_S) for s in stubs),
            return_exceptions=True,
        ),
        asyncio.gather(
            *(s.ListRegions(FACTS_ONLY, timeout=RPC_TIMEOUT_S) for s in stubs),
            return_exceptions=True,
        ),
    )
    description = RegionDescription(region=region, known_nodes=nodes)
    for node, fact in zip(nodes, facts, strict=True):
        tiers = (localities or {}).get(node.node_id)
        if isinstance(fact, pb.ListRegionsReply):
            tiers = list(fact.locality)
            if fact.disk_capacity:
                description.disks[node.node_id] = Disk(
                    capacity=fact.disk_capacity, used=fact.disk_used
                )
        if tiers:
            description.localities[node.node_id] = list(tiers)
    for node, info in zip(nodes, replies, strict=True):
        if not_found(info):
            continue  # no replica there
        if isinstance(info, BaseException):
            _not_answered(node, info)
            description.unreachable.append(node.node_id)
            continue
        description.store_bytes = max(description.store_bytes, info.store_bytes)
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
    lists = {r.node_id: {p.node_id for p in r.peers} for r in description.replicas}
    took_writes = [r.node_id for r in description.replicas if _took_writes(r)]
    if stale := stale_holders(lists, took_writes):
        description.stale = sorted(stale)
        description.replicas = [r for r in description.replicas if r.node_id not in stale]
    return description


def _took_writes(replica: pb.RegionInfo | ReplicaState) -> bool:
    """A replica that takes writes, or took them (leaving): one that may be stale."""
    return replica.leaving or (replica.installed and replica.active)


def _not_answered(node: Peer, error: BaseException) -> None:
    """Say why a node is listed unreachable (info: airctl shows the state, not a log line)."""
    why = (
        f"{error.code().name}: {error.details()}"
        if isinstance(error, grpc.aio.AioRpcError)
        else repr(error)
    )
    log.info("node %d at %s is listed unreachable: %s", node.node_id, node.address, why)
