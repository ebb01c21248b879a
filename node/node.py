"""The node: its region replicas, their membership, recovery at start and the guardian.

Every membership operation is idempotent: doing what is already done succeeds and says so
(`Outcome.changed` is False). Each one takes its region's lock, changes durable state with one
atomic step (a rename), and only then starts or stops channels, so a kill -9 at any line leaves
either the old state or the new one, and a retry finishes the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import re
import shutil
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc

from node.backoff import Backoff
from node.channel import BATCH_POINTS, Channel
from node.client import NodeClients
from node.files import atomic_publish_dir, atomic_remove_dir
from node.killpoints import KillPoint, KillPoints
from node.metrics import METRICS
from node.replica import ChannelState, PeerInfo, Replica, ReplicaMeta
from node.store import Digest, OriginBatch, Row, Store, SyncMode, digest, read_range
from node.throttle import Throttle
from node.tls import TlsFiles
from protos import air_node_pb2 as pb

log = logging.getLogger(__name__)
R = TypeVar("R")

_REGION_DIR = re.compile(r"^region_(\d+)$")


class NodeError(Exception):
    """A request this node refuses; `code` is the gRPC status it maps to."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Outcome:
    changed: bool
    message: str


@dataclass(frozen=True)
class TransferCheck:
    complete: bool
    lag: dict[int, int]
    installed: bool


@dataclass(frozen=True)
class ReleaseStatus:
    released: bool
    exists: bool
    detail: str


@dataclass(frozen=True)
class RegionPage:
    replicas: list[Replica]
    next_after: int  # 0: the last page


class Node:
    def __init__(
        self,
        node_id: int,
        address: str,
        data_dir: Path,
        *,
        sync: SyncMode = "full",
        guardian_interval: float = 5.0,
        transfer_batch_points: int = BATCH_POINTS,
        transfer_rate_limit: float | None = None,
        killpoints: KillPoints | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.node_id = node_id
        self.address = address
        self.data_dir = data_dir
        self.sync = sync
        self.guardian_interval = guardian_interval
        self.transfer_batch_points = transfer_batch_points
        self.throttle = Throttle(transfer_rate_limit)
        self.killpoints = killpoints or KillPoints(set(), data_dir / ".killpoints")
        self.clients = NodeClients(tls)  # with TLS, it presents its own cert to its peers
        self.replicas: dict[int, Replica] = {}
        self._runners: dict[int, dict[int, Channel]] = defaultdict(dict)
        self._locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._guardian: asyncio.Task[None] | None = None
        self._confirming: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._recover()
        for replica in self.replicas.values():
            await self._sync_channels(replica)
        self._guardian = asyncio.create_task(self._guard(), name="guardian")
        self._confirming = asyncio.create_task(self._confirm_memberships(), name="confirm")

    async def stop(self) -> None:
        for task in (self._guardian, self._confirming):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for region in list(self.replicas):
            replica = self.replicas.pop(region)
            await self._stop_channels(replica)
            await replica.close()
        await self.clients.close()

    def _recover(self) -> None:
        """Reload every region folder; drop what a crash left half made or half deleted."""
        leftovers = [
            *self.data_dir.glob("region_*.creating"),
            *self.data_dir.glob("region_*.deleting"),
        ]
        for leftover in leftovers:
            log.warning("removing %s left by an interrupted create/delete", leftover.name)
            shutil.rmtree(leftover)
        for path in sorted(self.data_dir.iterdir()):
            if not (match := _REGION_DIR.match(path.name)) or not path.is_dir():
                continue
            for partial in [*path.glob("snapshot.in.*"), *path.glob("snapshot.out.*")]:
                partial.unlink()
            replica = Replica.load(self.node_id, path, self.sync)
            replica.confirmed = replica.meta.peer_ids() <= {self.node_id}
            self.replicas[int(match.group(1))] = replica
            log.info(
                "recovered region %d (active=%s, installed=%s, applied=%s)",
                replica.region,
                replica.meta.active,
                replica.installed,
                replica.applied(),
            )

    def _region_dir(self, region: int) -> Path:
        return self.data_dir / f"region_{region}"

    def _get(self, region: int) -> Replica:
        replica = self.replicas.get(region)
        if replica is None:
            raise NodeError(
                grpc.StatusCode.NOT_FOUND, f"region {region} has no replica on node {self.node_id}"
            )
        return replica

    # -- channels -------------------------------------------------------------------------

    async def _sync_channels(self, replica: Replica) -> None:
        """Make the running channel tasks match the replica's durable channel list."""
        runners = self._runners[replica.region]
        for receiver_id in list(runners):
            if receiver_id not in replica.meta.channels:
                await runners.pop(receiver_id).stop()
                with contextlib.suppress(KeyError):  # it never reported a lag
                    METRICS.sync_lag.remove(str(replica.region), str(receiver_id))
        for receiver_id in replica.meta.channels:
            runner = runners.setdefault(
                receiver_id,
                Channel(
                    replica, receiver_id, self.clients, self.transfer_batch_points, self.throttle
                ),
            )
            runner.start()

    async def _stop_channels(self, replica: Replica) -> None:
        for runner in self._runners.pop(replica.region, {}).values():
            await runner.stop()

    # -- membership -----------------------------------------------------------------------

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

    async def create_local_peer(
        self, region: int, peers: list[PeerInfo], active: bool, await_snapshot: bool
    ) -> Outcome:
        """Create this node's replica of `region`.

        Idempotent: the folder appears by one rename, so a retry after a crash finds either
        nothing (and creates it) or the finished replica (and reports it unchanged).
        """
        self._check_peer_list(peers)
        async with self._locks[region]:
            existing = self.replicas.get(region)
            if existing is not None:
                if set(existing.meta.peers) != set(peers):
                    raise NodeError(
                        grpc.StatusCode.ALREADY_EXISTS,
                        f"region {region} already exists on node {self.node_id} with peers "
                        f"{_show(existing.meta.peers)}, not {_show(peers)}",
                    )
                return Outcome(False, f"region {region} already exists with the same peers")
            final = self._region_dir(region)
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
            Replica(self.node_id, staging, meta, self.sync).persist()
            if not await_snapshot:
                Store(staging / Store.FILE, self.sync).close()
            atomic_publish_dir(staging, final)
            replica = Replica.load(self.node_id, final, self.sync)
            self.replicas[region] = replica
            await self._sync_channels(replica)
        log.info("created region %d, peers %s, active=%s", region, _show(peers), active)
        self.killpoints.reach(KillPoint.DESTINATION_CREATE_LOCAL_PEER)
        return Outcome(True, f"created region {region} on node {self.node_id}")

    async def delete_local_peer(self, region: int) -> Outcome:
        """Delete this node's replica of `region`: its channels, its store, its folder.

        Idempotent: the folder is renamed away before it is removed, so after a crash it is
        either whole (and a retry deletes it) or gone (and a retry reports so).
        """
        self.killpoints.reach(KillPoint.BEFORE_DELETE)
        async with self._locks[region]:
            replica = self.replicas.pop(region, None)
            if replica is None:
                return Outcome(False, f"region {region} has no replica here")
            await self._stop_channels(replica)
            await replica.close()
            final = self._region_dir(region)
            atomic_remove_dir(final, final.with_name(final.name + ".deleting"))
        log.info("deleted region %d", region)
        self.killpoints.reach(KillPoint.AFTER_DELETE)
        return Outcome(True, f"deleted region {region} from node {self.node_id}")

    async def set_active(self, region: int, active: bool, for_deletion: bool) -> Outcome:
        """Set the active flag (durable). Inactive for deletion makes the replica leave.

        Idempotent: setting the flags they have changes nothing. Returning only after in-flight
        user writes committed means a leaving replica's channels see every acknowledged write.
        A replica already deleted is past leaving, as `delete_local_peer` reports it: a leaving
        node that restarts deletes its replica by itself once its peers hold all of its writes
        (`_confirm`), maybe before the removal's retried inactivation reaches it.
        """
        leaving_now = for_deletion and not active
        if leaving_now:
            self.killpoints.reach(KillPoint.BEFORE_INACTIVATE)
        async with self._locks[region]:
            if leaving_now and region not in self.replicas:
                return Outcome(False, f"region {region} has no replica here: already deleted")
            replica = self._get(region)
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
            await self._sync_channels(replica)
            replica.notify()
        if active:
            self.killpoints.reach(KillPoint.DESTINATION_ADD_PEER_DONE)
        if leaving_now:
            self.killpoints.reach(KillPoint.AFTER_INACTIVATE)
        flags = ("active" if active else "inactive") + (", leaving" if leaving else "")
        if changed:
            log.info("region %d is now %s", region, flags)
        if not changed:
            return Outcome(False, f"region {region} on node {self.node_id} was already {flags}")
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
        async with self._locks[region]:
            replica = self._get(region)
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
                meta.channels[receiver.node_id] = ChannelState(receiver=receiver, snapshot=snapshot)
                replica.persist()
                outcome = Outcome(True, f"created channel to node {receiver.node_id}")
            await self._sync_channels(replica)
        self.killpoints.reach(KillPoint.ORIGINAL_ADD_PEER_DONE)
        return outcome

    async def drop_channel(self, region: int, receiver_id: int) -> Outcome:
        """Drop the channel to `receiver_id` and unlist it as a peer.

        Idempotent: dropping what is gone is reported unchanged. The former peer stays allowed
        to send here, so a leaving replica can still drain its own writes to this one.
        """
        async with self._locks[region]:
            replica = self._get(region)
            meta = replica.meta
            listed = receiver_id in meta.peer_ids()
            if receiver_id == self.node_id:
                raise NodeError(grpc.StatusCode.INVALID_ARGUMENT, "a node has no channel to itself")
            if receiver_id not in meta.channels and not listed:
                return Outcome(False, f"no channel to node {receiver_id}")
            meta.channels.pop(receiver_id, None)
            meta.peers = [p for p in meta.peers if p.node_id != receiver_id]
            if receiver_id not in meta.departed:
                meta.departed.append(receiver_id)
            replica.persist()
            await self._sync_channels(replica)
        return Outcome(True, f"dropped channel to node {receiver_id}")

    async def reset_peer_list(self, region: int, peers: list[PeerInfo]) -> Outcome:
        """Make the peer list and the channels match `peers`; without this node, delete it."""
        if peers and self.node_id not in {p.node_id for p in peers}:
            self._get(region)
            return await self.delete_local_peer(region)
        self._check_peer_list(peers)
        async with self._locks[region]:
            replica = self._get(region)
            meta = replica.meta
            if set(meta.peers) == set(peers):
                return Outcome(False, f"peer list of region {region} is already {_show(peers)}")
            wanted = {p.node_id: p for p in peers if p.node_id != self.node_id}
            meta.departed = [d for d in {*meta.departed, *meta.peer_ids()} if d not in wanted]
            meta.departed = [d for d in meta.departed if d != self.node_id]
            meta.peers = list(peers)
            meta.channels = {
                nid: meta.channels.get(nid) or ChannelState(receiver=p) for nid, p in wanted.items()
            }
            replica.persist()
            await self._sync_channels(replica)
        return Outcome(True, f"peer list of region {region} reset to {_show(peers)}")

    # -- progress -------------------------------------------------------------------------

    def replica(self, region: int) -> Replica:
        """This node's replica of `region`; NOT_FOUND when it has none."""
        return self._get(region)

    def list_regions(self, after_region: int = 0, limit: int = 0) -> RegionPage:
        """The replicas after `after_region`, in region order, at most `limit` (0: all)."""
        regions = sorted(r for r in self.replicas if r > after_region)
        if limit > 0 and len(regions) > limit:
            regions, next_after = regions[:limit], regions[limit - 1]
        else:
            next_after = 0
        return RegionPage([self.replicas[r] for r in regions], next_after)

    def replica_states(self) -> Iterator[str]:
        """Each replica's state, for the metrics: leaving, joining (inactive) or active."""
        for replica in list(self.replicas.values()):
            if replica.meta.leaving:
                yield "leaving"
            else:
                yield "active" if replica.meta.active else "joining"

    def progress(self, region: int) -> Replica:
        return self._get(region)

    def check_transfer_complete(self, region: int, target: dict[int, int]) -> TransferCheck:
        """Complete when this replica has applied at least `target` (and has its snapshot)."""
        replica = self._get(region)
        applied = replica.applied()
        lag = {o: t - applied.get(o, 0) for o, t in target.items() if t > applied.get(o, 0)}
        # without its snapshot the replica applied nothing (lag is the whole target), and it
        # is incomplete even for an empty target: the snapshot is what it waits for
        installed = replica.installed
        return TransferCheck(complete=installed and not lag, lag=lag, installed=installed)

    def release_status(self, region: int) -> ReleaseStatus:
        replica = self.replicas.get(region)
        if replica is None:
            return ReleaseStatus(True, False, f"region {region} has no replica here")
        if not replica.meta.leaving:
            return ReleaseStatus(False, True, f"region {region} is not leaving")
        draining = [
            f"node {rid} (acked {s.acked} of {replica.max_assigned()})"
            for rid, s in replica.meta.channels.items()
            if s.status == "RUNNING"
        ]
        if draining:
            return ReleaseStatus(False, True, "channels still draining to " + ", ".join(draining))
        if replica.inbound:
            return ReleaseStatus(False, True, f"{replica.inbound} inbound transfer(s) still open")
        return ReleaseStatus(True, True, f"region {region} released all resources")

    # -- data -----------------------------------------------------------------------------

    async def write(self, region: int, rows: list[Row]) -> int:
        replica = self._get(region)
        if not rows:
            raise NodeError(grpc.StatusCode.INVALID_ARGUMENT, "a write needs at least one point")
        for series, _, value in rows:
            if not series or not math.isfinite(value):
                raise NodeError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"malformed point: series {series!r}, value {value} "
                    "(a series name and a finite value are required)",
                )
        if not replica.confirmed:
            raise NodeError(
                grpc.StatusCode.UNAVAILABLE,
                f"region {region} on node {self.node_id} restarted and is confirming with its "
                "peers that it is still a member; retry shortly",
            )
        if not replica.meta.active or not replica.installed:
            raise NodeError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"WRITE_PROCESS_REJECT: region {region} on node {self.node_id} is not active "
                "and is not ready to receive user writes",
            )
        with METRICS.write_latency.time():
            seq = await replica.write(rows)
        METRICS.writes.labels(region=region).inc()
        METRICS.written_points.labels(region=region).inc(len(rows))
        return seq

    async def read(self, region: int, series: str, start: int, end: int | None) -> list[Row]:
        return await self._query(region, lambda conn: read_range(conn, series, start, end), [])

    async def digest(self, region: int) -> Digest:
        return await self._query(region, digest, Digest(0, _EMPTY_HASH))

    async def _query(self, region: int, fn: Callable[[sqlite3.Connection], R], empty: R) -> R:
        replica = self._get(region)
        if replica.store is None:
            return empty
        return await asyncio.to_thread(replica.store.query, fn)

    # -- receiving ------------------------------------------------------------------------

    def inbound_replica(self, region: int, sender: int) -> Replica:
        """The replica a transfer from `sender` feeds; refused unless `sender` is or was a peer."""
        replica = self._get(region)
        if sender == self.node_id:
            raise NodeError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"node {sender} cannot transfer region {region} to itself",
            )
        if sender not in replica.meta.peer_ids() and sender not in replica.meta.departed:
            raise NodeError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"node {sender} is not a peer of region {region} on node {self.node_id} "
                f"(peers {sorted(replica.meta.peer_ids())})",
            )
        return replica

    async def apply(self, replica: Replica, sender: int, batch: OriginBatch) -> int:
        if not replica.installed:
            return 0
        before = replica.applied().get(sender, 0)
        applied = await replica.apply_remote(sender, batch)
        # No notify(): channels send only this node's own writes, which a remote batch never
        # adds to, so waking every outgoing channel per received batch would be wasted queries.
        applied = sum(1 for s in batch.seqs if s > before)
        METRICS.applied_points.labels(region=replica.region).inc(applied)
        return applied

    # -- membership after a restart ------------------------------------------------------

    async def _confirm_memberships(self) -> None:
        """Ask peers whether each recovered replica is still a member; delete it if not.

        A node removed while it was down (the workflow skipped it, as the source does) learns
        it here and deletes its stale replica by itself, never serving writes for it. It waits
        until the peers that removed it hold all of its own writes, and until every peer has
        answered, so none is lost: its writes reach a peer only through its own channel to it.
        """
        backoff = Backoff(0.05, 2.0)
        while pending := [r for r in self.replicas.values() if not r.confirmed]:
            for replica in pending:
                try:
                    await self._confirm(replica)
                except Exception:
                    log.exception("confirming region %d failed", replica.region)
            if any(not r.confirmed for r in self.replicas.values()):
                await backoff.sleep()

    async def _confirm(self, replica: Replica) -> None:
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
            await self.delete_local_peer(replica.region)

    # -- guardian -------------------------------------------------------------------------

    async def _guard(self) -> None:
        while True:
            await asyncio.sleep(self.guardian_interval)
            for region in list(self.replicas):
                try:
                    await self.reconcile(region)
                except Exception:
                    log.exception("guardian: reconciling region %d failed", region)

    async def reconcile(self, region: int) -> None:
        """The source's checkAllAirReplication: channels match the peer list, tasks run."""
        async with self._locks[region]:
            replica = self.replicas.get(region)
            if replica is None:
                return
            meta = replica.meta
            others = {p.node_id: p for p in meta.peers if p.node_id != self.node_id}
            stale = [rid for rid in meta.channels if rid not in others]
            missing = [] if meta.leaving else [rid for rid in others if rid not in meta.channels]
            for rid in stale:
                log.warning("guardian: region %d drops channel to non-peer %d", region, rid)
                del meta.channels[rid]
            for rid in missing:
                log.warning("guardian: region %d recreates channel to %d", region, rid)
                meta.channels[rid] = ChannelState(receiver=others[rid])
            replica.persist_if_changed()
            await self._sync_channels(replica)


_EMPTY_HASH = hashlib.sha256().hexdigest()


def _show(peers: list[PeerInfo]) -> str:
    return "[" + ", ".join(f"{p.node_id}@{p.address}" for p in peers) + "]"
