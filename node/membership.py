"""A node's membership operations on its replicas: create, delete, (in)activate, channels.

Every operation is idempotent: doing what is already done succeeds and says so
(`Outcome.changed` is False). Each one takes its region's lock, changes durable state with one
atomic step (a rename), and only then starts or stops channels, so a kill -9 at any line leaves
either the old state or the new one, and a retry finishes the job.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass

import grpc

from contracts.killpoints import KillPoint
from node.channel_tasks import ChannelTasks
from node.disk import Disk
from node.errors import NodeError
from node.replica import ChannelState, PeerInfo, Replica, ReplicaMeta
from node.replicas import Replicas
from node.store import Store
from runtime.files import atomic_publish_dir
from runtime.killswitch import KillPoints

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    changed: bool
    message: str


@dataclass(eq=False)  # one per node: compared by identity
class Membership:
    """The operations, over what they act on: the node's replicas, its channels, its disk."""

    node_id: int
    address: str
    replicas: Replicas
    channels: ChannelTasks
    killpoints: KillPoints
    disk: Disk

    async def create_local_peer(
        self, region: int, peers: list[PeerInfo], active: bool, await_snapshot: bool
    ) -> Outcome:
        """Create this node's replica of `region`.

        Idempotent: the folder appears by one rename, so a retry after a crash finds either
        nothing (and creates it) or the finished replica (and reports it unchanged). A leaving
        replica, whatever its peers, is no replica to create against: it is gone soon (its
        removal deletes it, or it retires), so the creation is told to retry. With the same
        peers it may be this very creation's replica, retired by a node restarted right after
        it (its peers still remember the node's earlier replica's removal): reported as
        created, the addition's next step would find it gone.
        """
        self._check_peer_list(peers)
        async with self.replicas.lock(region):
            existing = self.replicas.find(region)
            if existing is not None:
                if existing.meta.leaving:
                    raise NodeError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"region {region} on node {self.node_id} is leaving (its peers removed "
                        "it, or a removal is under way); retry once it is gone",
                    )
                if set(existing.meta.peers) != set(peers):
                    raise NodeError(
                        grpc.StatusCode.ALREADY_EXISTS,
                        f"region {region} already exists on node {self.node_id} with peers "
                        f"{_show(existing.meta.peers)}, not {_show(peers)}",
                    )
                return Outcome(False, f"region {region} already exists with the same peers")
            self.disk.check_room(self.node_id)
            final = self.replicas.directory(region)
            staging = final.with_name(final.name + ".creating")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            others = [p for p in peers if p.node_id != self.node_id]
            meta = ReplicaMeta(
                region=region,
                peers=peers,
                active=active,
                channels={p.node_id: ChannelState(receiver=p) for p in others},
            )
            sync = self.replicas.sync
            Replica(self.node_id, staging, meta, sync).persist()
            if not await_snapshot:
                Store(staging / Store.FILE, sync).close()
            atomic_publish_dir(staging, final)
            replica = Replica.load(self.node_id, final, sync)
            self.replicas.add(replica)
            await self.channels.sync(replica)
        log.info("created region %d, peers %s, active=%s", region, _show(peers), active)
        self.killpoints.reach(KillPoint.DESTINATION_CREATE_LOCAL_PEER)
        return Outcome(True, f"created region {region} on node {self.node_id}")

    async def delete_local_peer(self, region: int) -> Outcome:
        """Delete this node's replica of `region`: its channels, its store, its folder.

        Idempotent: the folder is renamed away before it is removed, so after a crash it is
        either whole (and a retry deletes it) or gone (and a retry reports so).
        """
        self.killpoints.reach(KillPoint.BEFORE_DELETE)
        async with self.replicas.lock(region):
            replica = self.replicas.pop(region)
            if replica is None:
                return Outcome(False, f"region {region} has no replica here")
            await self.channels.stop(replica)
            await replica.close()
            self.replicas.remove_folder(region)
        log.info("deleted region %d", region)
        self.killpoints.reach(KillPoint.AFTER_DELETE)
        return Outcome(True, f"deleted region {region} from node {self.node_id}")

    async def set_active(self, region: int, active: bool, for_deletion: bool) -> Outcome:
        """Set the active flag (durable). Inactive for deletion makes the replica leave.

        Idempotent: setting the flags they have changes nothing. Returning only after in-flight
        user writes committed means a leaving replica's channels see every acknowledged write.
        A replica already deleted is past leaving, as `delete_local_peer` reports it: a leaving
        node that restarts deletes its replica by itself once its peers hold all of its writes
        (`confirmation`), maybe before the removal's retried inactivation reaches it.
        """
        leaving_now = for_deletion and not active
        if leaving_now:
            self.killpoints.reach(KillPoint.BEFORE_INACTIVATE)
        outcome = await self._set_flags(region, active, leaving_now)
        if active:
            self.killpoints.reach(KillPoint.DESTINATION_ADD_PEER_DONE)
        if leaving_now:
            self.killpoints.reach(KillPoint.AFTER_INACTIVATE)
        return outcome

    async def leave(self, region: int) -> Outcome:
        """Stop taking user writes for good, as `set_active(inactive, for_deletion)` does, but
        on this node's own decision (node/retirement.py): no orchestrator's kill point is on
        this path. Idempotent, as `set_active` is."""
        return await self._set_flags(region, active=False, leaving_now=True)

    async def _set_flags(self, region: int, active: bool, leaving_now: bool) -> Outcome:
        async with self.replicas.lock(region):
            if leaving_now and self.replicas.find(region) is None:
                return Outcome(False, f"region {region} has no replica here: already deleted")
            replica = self.replicas.get(region)
            if active and not replica.installed:
                raise NodeError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"region {region} on node {self.node_id} awaits its snapshot; "
                    "it cannot be activated before it has the data",
                )
            leaving = leaving_now or (replica.meta.leaving and not active)
            changed = (replica.meta.active, replica.meta.leaving) != (active, leaving)
            if changed:
                if replica.meta.leaving and not leaving:  # a leave undone: channels run again
                    for channel in replica.meta.channels.values():
                        channel.status = "RUNNING"
                replica.meta.active = active
                replica.meta.leaving = leaving
                replica.persist()
            if not active:
                await replica.quiesce()
            await self.channels.sync(replica)
            replica.notify()
        flags = ("active" if active else "inactive") + (", leaving" if leaving else "")
        if not changed:
            return Outcome(False, f"region {region} on node {self.node_id} was already {flags}")
        log.info("region %d is now %s", region, flags)
        return Outcome(True, f"region {region} on node {self.node_id} is now {flags}")

    async def create_channel(self, region: int, receiver: PeerInfo, snapshot: bool) -> Outcome:
        """Create the channel to `receiver` and list it as a peer (durable, then started).

        Idempotent: an existing channel of the same shape is reported unchanged.
        """
        if receiver.node_id == self.node_id or receiver.node_id <= 0 or not receiver.address:
            raise NodeError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"cannot create a channel from node {self.node_id} to "
                f"{receiver.node_id}@{receiver.address!r}",
            )
        async with self.replicas.lock(region):
            replica = self.replicas.get(region)
            meta = replica.meta
            existing = meta.channels.get(receiver.node_id)
            listed = next((p for p in meta.peers if p.node_id == receiver.node_id), None)
            if (existing and existing.receiver != receiver) or (listed and listed != receiver):
                raise NodeError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"node {receiver.node_id} is already a peer of region {region} "
                    f"at another address than {receiver.address}",
                )
            if existing is not None:
                if existing.snapshot != snapshot:
                    raise NodeError(
                        grpc.StatusCode.ALREADY_EXISTS,
                        f"the channel {region}/{self.node_id}->{receiver.node_id} exists "
                        f"with snapshot={existing.snapshot}",
                    )
                outcome = Outcome(False, f"channel to node {receiver.node_id} already exists")
            else:
                if listed is None:
                    meta.peers.append(receiver)
                meta.departed = [d for d in meta.departed if d != receiver.node_id]
                meta.written_off = [d for d in meta.written_off if d != receiver.node_id]
                meta.channels[receiver.node_id] = ChannelState(receiver=receiver, snapshot=snapshot)
                replica.persist()
                outcome = Outcome(True, f"created channel to node {receiver.node_id}")
            await self.channels.sync(replica)
        self.killpoints.reach(KillPoint.ORIGINAL_ADD_PEER_DONE)
        return outcome

    async def drop_channel(self, region: int, receiver_id: int, write_off: bool = False) -> Outcome:
        """Drop the channel to `receiver_id` and unlist it as a peer.

        Idempotent: dropping what is gone is reported unchanged. The former peer stays allowed
        to send here, so a leaving replica can still drain its own writes to this one; unless
        `write_off`: it was removed while down, and what it never replicated is declared lost.
        """
        async with self.replicas.lock(region):
            replica = self.replicas.get(region)
            meta = replica.meta
            if receiver_id == self.node_id:
                raise NodeError(grpc.StatusCode.INVALID_ARGUMENT, "a node has no channel to itself")
            was_peer = receiver_id in meta.channels or receiver_id in meta.peer_ids()
            before = meta.model_copy(deep=True)
            meta.channels.pop(receiver_id, None)
            meta.peers = [p for p in meta.peers if p.node_id != receiver_id]
            if write_off:
                meta.departed = [d for d in meta.departed if d != receiver_id]
                if receiver_id not in meta.written_off:
                    meta.written_off.append(receiver_id)
            elif was_peer and receiver_id not in meta.departed:
                meta.departed.append(receiver_id)
            if meta == before:
                return Outcome(False, f"no channel to node {receiver_id}")
            replica.persist()
            await self.channels.sync(replica)
        if write_off:
            return Outcome(True, f"wrote off node {receiver_id}")
        return Outcome(True, f"dropped channel to node {receiver_id}")

    async def reset_peer_list(self, region: int, peers: list[PeerInfo]) -> Outcome:
        """Make the peer list and the channels match `peers`; without this node, delete it.

        Idempotent: a list it already has changes nothing; the new list is persisted in one
        atomic write before any channel starts or stops."""
        if peers and self.node_id not in {p.node_id for p in peers}:
            self.replicas.get(region)
            return await self.delete_local_peer(region)
        self._check_peer_list(peers)
        async with self.replicas.lock(region):
            replica = self.replicas.get(region)
            meta = replica.meta
            if set(meta.peers) == set(peers):
                return Outcome(False, f"peer list of region {region} is already {_show(peers)}")
            wanted = {p.node_id: p for p in peers if p.node_id != self.node_id}
            meta.departed = [d for d in {*meta.departed, *meta.peer_ids()} if d not in wanted]
            meta.departed = [d for d in meta.departed if d != self.node_id]
            meta.written_off = [d for d in meta.written_off if d not in wanted]
            meta.peers = list(peers)
            meta.channels = {
                nid: meta.channels.get(nid) or ChannelState(receiver=p) for nid, p in wanted.items()
            }
            replica.persist()
            await self.channels.sync(replica)
        return Outcome(True, f"peer list of region {region} reset to {_show(peers)}")

    def _check_peer_list(self, peers: list[PeerInfo]) -> None:
        if not peers:
            raise NodeError(grpc.StatusCode.INVALID_ARGUMENT, "the peer list is empty")
        ids = [p.node_id for p in peers]
        if len(set(ids)) != len(ids):
            raise NodeError(grpc.StatusCode.INVALID_ARGUMENT, f"duplicate node ids in peers {ids}")
        for p in peers:
            if p.node_id <= 0 or not p.address:
                raise NodeError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"peer {p.node_id}@{p.address!r} needs a positive node id and an address",
                )
        me = next((p for p in peers if p.node_id == self.node_id), None)
        if me is None:
            raise NodeError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the peer list {ids} does not contain this node ({self.node_id})",
            )
        if me.address != self.address:
            raise NodeError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the peer list gives node {self.node_id} address {me.address}, "
                f"but this node serves {self.address}",
            )


def _show(peers: list[PeerInfo]) -> str:
    return "[" + ", ".join(f"{p.node_id}@{p.address}" for p in peers) + "]"
