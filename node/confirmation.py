"""After a restart: is each recovered replica still a member of its region?

A node removed while it was down (the workflow skipped it, as the source does) learns it here
and deletes its stale replica by itself, never serving writes for it. It waits until the peers
that removed it hold all of its own writes, and until every peer has answered, so none is
lost: its writes reach a peer only through its own channel to it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import grpc

from node.replica import Replica
from node.replicas import Replicas
from protos import air_node_pb2 as pb
from runtime.backoff import Backoff
from runtime.clients import NodeClients

log = logging.getLogger(__name__)

Delete = Callable[[int], Awaitable[object]]
CONCURRENT = 16  # regions asked about at once: a restart of a node of many regions is quick


class Confirmation:
    def __init__(
        self, node_id: int, replicas: Replicas, clients: NodeClients, delete: Delete
    ) -> None:
        self.node_id = node_id
        self.replicas = replicas
        self.clients = clients
        self.delete = delete

    async def run(self) -> None:
        """Ask until every recovered replica is confirmed or deleted."""
        backoff = Backoff(0.05, 2.0)
        asking = asyncio.Semaphore(CONCURRENT)

        async def confirm(replica: Replica) -> None:
            async with asking:
                try:
                    await self.confirm(replica)
                except Exception:
                    log.exception("confirming region %d failed", replica.region)

        began = time.monotonic()
        while pending := [r for r in self.replicas if not r.confirmed]:
            await asyncio.gather(*(confirm(r) for r in pending))
            if any(not r.confirmed for r in self.replicas):
                await backoff.sleep()
        log.info("every recovered region confirmed in %.2f s", time.monotonic() - began)

    async def confirm(self, replica: Replica) -> None:
        """One round of asking the peers. Idempotent: it only reads the peers, then marks the
        replica confirmed (in memory) or deletes it (idempotent itself)."""
        departed_by: list[int] = []
        unanswered: list[int] = []
        for peer in [p for p in replica.meta.peers if p.node_id != self.node_id]:
            try:
                progress = await self.clients.stub(peer.address).GetProgress(
                    pb.RegionRequest(region=replica.region), timeout=2
                )
            except grpc.aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND:  # without the region, it needs none
                    unanswered.append(peer.node_id)
                continue
            if self.node_id in progress.written_off:
                log.warning(
                    "region %d: node %d removed this node while it was down and declared its "
                    "writes not replicated lost; deleting the stale replica",
                    replica.region,
                    peer.node_id,
                )
                await self.delete(replica.region)
                return
            if self.node_id in {p.node_id for p in progress.peers}:
                replica.confirmed = True
                log.info("region %d: node %d confirms membership", replica.region, peer.node_id)
                return
            if self.node_id in progress.departed:
                if progress.applied.get(self.node_id, 0) < replica.max_assigned():
                    return  # its writes are still draining there: not yet
                departed_by.append(peer.node_id)
        if departed_by and unanswered:
            log.info(
                "region %d: removed by nodes %s; waiting for nodes %s to hold its writes too",
                replica.region,
                departed_by,
                unanswered,
            )
            return
        if departed_by:
            log.warning(
                "region %d: nodes %s removed this node while it was away; deleting the stale "
                "replica (they hold all of its writes)",
                replica.region,
                departed_by,
            )
            await self.delete(replica.region)
