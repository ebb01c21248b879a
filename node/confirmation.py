"""After a restart: is each recovered replica still a member of its region?

A recovered replica serves no user write until a peer confirms that this node is still a
member. One that its region removed while the node was down is retired instead
(node/retirement.py): its own writes handed to the members, then deleted, never serving a
write meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time

from node.replica import Replica
from node.replicas import Replicas
from node.retirement import Retirement, Verdict
from runtime.backoff import Backoff

log = logging.getLogger(__name__)

CONCURRENT = 16  # regions asked about at once: a restart of a node of many regions is quick


class Confirmation:
    def __init__(self, replicas: Replicas, retirement: Retirement) -> None:
        self.replicas = replicas
        self.retirement = retirement

    async def run(self) -> None:
        """Ask until every recovered replica is confirmed or handed to its retirement."""
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
            await self.confirm_listed(pending)
            await asyncio.gather(*(confirm(r) for r in pending if not r.confirmed))
            if any(not r.confirmed for r in self.replicas):
                await backoff.sleep()
        log.info("every recovered region confirmed in %.2f s", time.monotonic() - began)

    async def confirm_listed(self, replicas: list[Replica]) -> None:
        """Confirm at once every replica that a peer lists this node in, from one listing of
        each peer's regions: a node of thousands of regions asks each peer once, not once a
        region. Read-only, as `confirm` (what is left goes to it)."""
        me = self.retirement.node_id
        peers = {p.node_id: p for r in replicas for p in r.meta.peers if p.node_id != me}
        listings = await asyncio.gather(*(self.retirement.listing(p) for p in peers.values()))
        listed = {
            region for found in listings if found for region, held in found.items() if me in held
        }
        confirmed = [r for r in replicas if r.region in listed]
        for replica in confirmed:
            replica.confirmed = True
        if confirmed:
            log.info("%d regions confirmed by their peers' listings", len(confirmed))

    async def confirm(self, replica: Replica) -> None:
        """One round of asking the peers. Idempotent: it only reads the peers, then marks the
        replica confirmed (in memory) or starts its retirement (idempotent itself)."""
        standing = await self.retirement.standing(replica)
        if standing.verdict is Verdict.MEMBER:
            replica.confirmed = True
            log.info("region %d: %s: a member", replica.region, standing.why)
        elif standing.verdict is Verdict.REMOVED and standing.by is not None:
            log.warning("region %d: %s while this node was down", replica.region, standing.why)
            await self.retirement.begin(replica.region, standing.by)
            replica.confirmed = True  # retiring, it takes no user write
        elif standing.why:
            log.info("region %d: not confirmed yet: %s", replica.region, standing.why)
