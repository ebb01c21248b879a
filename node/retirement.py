"""Retiring a replica that its region removed while this node could not be told.

A node cut off from the orchestrator (or down) can be removed from a region without hearing of
it: a repair, or a migration that skipped it as unreachable. Meanwhile it may have acknowledged
writes that no member holds, and its channels could not deliver them: a channel carries only
its sender's writes, to the peers it lists, and a member added after the removal is not one of
them. So when it learns of the removal (a receiver of its channel says it was removed, a peer
says so after a restart), it stops taking writes, hands the writes of its own origin to every
member that lacks them, and only then deletes its replica: nothing it acknowledged is lost
because the orchestrator could not reach it.

The members are found by walking peer lists from the node that said this one was removed (it
made the removal, so its list is a configuration after it). A member that does not answer, or
that still awaits its snapshot, is waited for: the replica is deleted only once every member
found holds all of its writes, and the walk found the same members before and after.

Every step is idempotent: leaving sets flags it may already have, a hand-over sends from where
the member stands, deletion of what is gone reports so. A crash at any line is resumed by the
next trigger (after a restart, the confirmation asks the peers again).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass

import grpc

from node.errors import NodeError
from node.forward import hand_over
from node.membership import Membership
from node.replica import PeerInfo, Replica
from node.replicas import Replicas
from node.throttle import Throttle
from protos import air_node_pb2 as pb
from runtime.backoff import Backoff
from runtime.clients import NodeClients

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 2.0  # a question to a peer: a short read
# A hint that is not a statement (a peer no longer holds the region) makes the node ask its
# peers at most this often per region: a channel retrying against such a peer hints each time.
ASK_EVERY_S = 30.0
LIST_PAGE = 1000  # regions a peer lists in one answer
LIST_TIMEOUT_S = 10.0


class Verdict(enum.Enum):
    MEMBER = "member"  # a holder lists this node
    REMOVED = "removed"  # a holder departed or wrote off this node, or none knows of it
    UNKNOWN = "unknown"  # no holder answered, or none was found


@dataclass(frozen=True)
class Standing:
    verdict: Verdict
    by: PeerInfo | None = None  # the holder that said so
    why: str = ""


class StillListed(Exception):
    """A holder still lists this node: the removal is not yet everywhere (or was undone)."""


class Unanswered(Exception):
    """A peer whose answer the retirement needs did not give it."""


class NoMembers(Exception):
    """The walk from the node that removed this one found no holder of the region."""


class Retirement:
    def __init__(
        self,
        node_id: int,
        replicas: Replicas,
        membership: Membership,
        clients: NodeClients,
        throttle: Throttle,
        batch_points: int,
    ) -> None:
        self.node_id = node_id
        self.replicas = replicas
        self.membership = membership
        self.clients = clients
        self.throttle = throttle
        self.batch_points = batch_points
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._asked: dict[int, float] = {}  # region -> when a hint last made it ask

    # -- triggers ---------------------------------------------------------------------------

    def removed(self, region: int, by: PeerInfo) -> None:
        """`by`, a holder of `region`, says this node was removed: retire the replica (once)."""
        self._spawn(region, self._retire(region, by))

    async def begin(self, region: int, by: PeerInfo) -> None:
        """As `removed`, and return once the replica takes no user write (if it ever could)."""
        if self.replicas.find(region) is not None:
            await self.membership.leave(region)
        self.removed(region, by)

    def suspect(self, region: int) -> None:
        """A hint that the replica may be stale (a peer of it no longer holds the region): ask
        the peers, at most every ASK_EVERY_S, and retire it if they say it was removed."""
        now = time.monotonic()
        if now - self._asked.get(region, -ASK_EVERY_S) < ASK_EVERY_S:
            return
        self._asked[region] = now
        self._spawn(region, self._ask_then_retire(region))

    def retiring(self, region: int) -> bool:
        task = self._tasks.get(region)
        return task is not None and not task.done()

    async def stop(self) -> None:
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, region: int, work: Coroutine[object, None, None]) -> None:
        if self.retiring(region):
            work.close()
            return
        self._tasks[region] = asyncio.create_task(work, name=f"retire region {region}")

    async def watch(self, period: Callable[[], float]) -> None:
        """Every `period()` seconds, compare each replica that took writes with one listing of
        each of its peers' regions, and ask again about those a peer holds without listing
        this node, or no longer holds: an idle replica removed behind a cut opens no stream
        that would tell it, and must not linger. One listing a peer node, however many regions
        they share."""
        while True:
            await asyncio.sleep(period())
            try:
                await self.look()
            except Exception:
                log.exception("looking at the peers' listings failed")

    async def look(self) -> None:
        """One comparison (see `watch`). Read-only but for the hints it gives `suspect`."""
        mine = [
            r
            for r in self.replicas
            if _took_writes(r) and r.confirmed and not self.retiring(r.region)
        ]
        peers = {p.node_id: p for r in mine for p in r.meta.peers if p.node_id != self.node_id}
        listings = dict(
            zip(
                peers, await asyncio.gather(*(self.listing(p) for p in peers.values())), strict=True
            )
        )
        for replica in mine:
            for peer in replica.meta.peers:
                listed = listings.get(peer.node_id)
                if listed is None:
                    continue  # itself, or it did not answer
                holds = listed.get(replica.region)
                if holds is None or self.node_id not in holds:
                    self.suspect(replica.region)
                    break

    async def listing(self, peer: PeerInfo) -> dict[int, set[int]] | None:
        """The regions `peer` holds, each with the nodes it lists as its peers; None if it
        does not answer. Paged: a node of thousands of regions answers in parts."""
        stub = self.clients.stub(peer.address)
        found: dict[int, set[int]] = {}
        after = 0
        try:
            while True:
                page = await stub.ListRegions(
                    pb.ListRegionsRequest(after_region=after, limit=LIST_PAGE),
                    timeout=LIST_TIMEOUT_S,
                )
                found |= {r.region: {p.node_id for p in r.peers} for r in page.regions}
                if not page.next_after:
                    return found
                after = page.next_after
        except grpc.aio.AioRpcError as e:
            log.info("node %d did not list its regions: %s", peer.node_id, e.code().name)
            return None

    # -- asking the peers -------------------------------------------------------------------

    async def standing(self, replica: Replica) -> Standing:
        """Whether the region still counts this node a member, from its holders' own word.

        Read-only. Its listed peers are asked; when none of them holds the region any more,
        every node this node knows of is, and a holder that does not know this node at all is
        a removal too (the region moved on entirely while this node was away); that, for a
        replica that took writes only: a joining one is unknown to holders until its addition
        reaches them."""
        listed = [p for p in replica.meta.peers if p.node_id != self.node_id]
        standing, holders = await self._ask(replica.region, listed)
        unknown = standing.verdict is Verdict.UNKNOWN and not holders and not standing.why
        if unknown and _took_writes(replica):
            everyone = {p.node_id: p for r in self.replicas for p in r.meta.peers}
            others = [p for i, p in sorted(everyone.items()) if i != self.node_id]
            standing, holders = await self._ask(replica.region, others)
            if standing.verdict is Verdict.UNKNOWN and holders and not standing.why:
                by = holders[0]
                why = f"node {by.node_id} holds the region and does not know this node"
                return Standing(Verdict.REMOVED, by, why)
        return standing

    async def _ask(self, region: int, peers: list[PeerInfo]) -> tuple[Standing, list[PeerInfo]]:
        """What `peers` say, and which of them hold the region (not leaving it). A departure
        or a write-off is a removal. `why` is set when some peer could not be asked."""
        unanswered: list[int] = []
        holders: list[PeerInfo] = []
        for peer in peers:
            try:
                progress = await self._progress(region, peer)
            except Unanswered:
                unanswered.append(peer.node_id)
                continue
            if progress is None:
                continue
            if self.node_id in {p.node_id for p in progress.peers}:
                return Standing(Verdict.MEMBER, peer, f"node {peer.node_id} lists it"), [peer]
            if self.node_id in (*progress.departed, *progress.written_off):
                return Standing(Verdict.REMOVED, peer, f"node {peer.node_id} removed it"), [peer]
            if not progress.leaving:
                holders.append(peer)
        why = f"nodes {unanswered} did not answer" if unanswered else ""
        return Standing(Verdict.UNKNOWN, None, why), holders

    async def _progress(self, region: int, peer: PeerInfo) -> pb.Progress | None:
        """The peer's progress of `region`; None if it holds none."""
        try:
            reply: pb.Progress = await self.clients.stub(peer.address).GetProgress(
                pb.RegionRequest(region=region), timeout=ASK_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise Unanswered(f"waiting for nodes [{peer.node_id}] ({e.code().name})") from e
        return reply

    # -- retiring ---------------------------------------------------------------------------

    async def _ask_then_retire(self, region: int) -> None:
        replica = self.replicas.find(region)
        if replica is None:
            return
        standing = await self.standing(replica)
        if standing.verdict is Verdict.REMOVED and standing.by is not None:
            log.warning("region %d: %s", region, standing.why)
            await self._retire(region, standing.by)

    async def _retire(self, region: int, by: PeerInfo) -> None:
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                if await self.retire_once(region, by):
                    return
            except NoMembers:
                # `by` holds the region no more: ask again who removed this node
                replica = self.replicas.find(region)
                standing = await self.standing(replica) if replica is not None else None
                if standing is not None and standing.by is not None:
                    by = standing.by
            except (NodeError, StillListed, Unanswered) as e:
                log.info(
                    "region %d: retiring, %s before deleting its replica (every member must "
                    "hold this node's writes first)",
                    region,
                    e,
                )
            await backoff.sleep()

    async def retire_once(self, region: int, by: PeerInfo) -> bool:
        """One attempt; True once the replica is gone (or is not this node's to retire)."""
        replica = self.replicas.find(region)
        if replica is None:
            return True
        if (await self.membership.leave(region)).changed:
            log.warning(
                "region %d: node %d removed this node while it could not be told; it takes no "
                "more writes, hands its own to the members, then deletes its replica",
                region,
                by.node_id,
            )
        upto = replica.max_assigned()
        members = await self._members(region, by)
        for member in members.values():
            await self._hand_over(replica, member, upto)
        if await self._members(region, by) != members:
            return False  # the region changed meanwhile: hand over to the new members too
        log.warning(
            "region %d: nodes %s hold all %d writes of this node; deleting its replica",
            region,
            sorted(members),
            upto,
        )
        await self.membership.delete_local_peer(region)
        return True

    async def _hand_over(self, replica: Replica, member: PeerInfo, upto: int) -> None:
        """Until `member` holds this node's writes up to `upto` (each call sends for a few
        seconds at most); `Unanswered` if a call moves it no further."""
        applied = -1
        while applied < upto:
            handed = await hand_over(
                replica, member, self.clients, self.throttle, self.batch_points
            )
            if handed.applied <= applied:
                raise Unanswered(
                    f"node {member.node_id} stays at seq {handed.applied} of this node's {upto}"
                )
            applied = handed.applied

    async def _members(self, region: int, first: PeerInfo) -> dict[int, PeerInfo]:
        """The holders of `region` reached by walking peer lists from `first`, leaving ones
        left out. `StillListed` if one lists this node; `Unanswered` if one does not answer."""
        members: dict[int, PeerInfo] = {}
        seen = {self.node_id}
        queue = [first]
        while queue:
            peer = queue.pop()
            if peer.node_id in seen:
                continue
            seen.add(peer.node_id)
            progress = await self._progress(region, peer)
            if progress is None or progress.leaving:
                continue
            if self.node_id in {p.node_id for p in progress.peers}:
                raise StillListed(f"node {peer.node_id} still lists node {self.node_id}")
            members[peer.node_id] = peer
            queue += [PeerInfo(node_id=p.node_id, address=p.address) for p in progress.peers]
        if not members:
            raise NoMembers(f"node {first.node_id} holds region {region} no more")
        return members


def _took_writes(replica: Replica) -> bool:
    """Active or leaving: a replica that took (or may have taken) user writes. A joining one
    (inactive, not leaving) is not in every holder's list until its addition reaches them."""
    return replica.meta.active or replica.meta.leaving
