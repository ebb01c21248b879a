"""The membership steps as activities. Each is a thin call of idempotent node RPCs.

Why a retry after a crash at any line is safe, in general: every node RPC called here is
idempotent (doing what is already done succeeds and reports `changed = false`), reads change
nothing, and the waits only read. A worker that dies after the side effect and before it
reports (the coordinator's kill points are exactly there) is retried, repeats the RPC, and
gets "already so". Each activity's docstring says what is particular to it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.directory import NodeDirectory
from activities.models import (
    CaptureTargetInput,
    CatchUpInput,
    ChannelsInput,
    ClusterDescription,
    CreateLocalPeerInput,
    Disk,
    Peer,
    RegionDescription,
    ReleaseInput,
    ReplicaState,
    SetActiveInput,
    StepInput,
    StepResult,
    TransferProgress,
    WaitTransferInput,
)
from node.backoff import Backoff
from node.client import NodeClients
from node.killpoints import KillPoints
from protos import air_node_pb2 as pb
from protos import air_node_pb2_grpc as rpc

T = TypeVar("T")

# A node that answers with these refuses the request itself: retrying cannot help.
REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
}
UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
RPC_TIMEOUT_S = 10.0
POLL = (0.05, 1.0)  # waits poll at once, then back off from 50 ms to 1 s
LIST_PAGE = 500  # regions per ListRegions page
# A quick try asks with a short deadline and waits this long at most before it gives up.
QUICK_RPC_TIMEOUT_S = 2.0
QUICK_PATIENCE_S = 1.0


class NodeRefused(ApplicationError):
    """A node refused a request as invalid: non-retryable, the message says why."""

    def __init__(self, node: Peer, error: grpc.aio.AioRpcError) -> None:
        super().__init__(
            f"node {node.node_id} refused: {error.details()}",
            type="NodeRefused",
            non_retryable=True,
        )


class NotQuick(ApplicationError):
    """A quick try would have to wait: the workflow runs the step as a regular activity."""

    def __init__(self, why: str) -> None:
        super().__init__(why, type="NotQuick", non_retryable=True)


def _unreachable(error: BaseException) -> bool:
    return isinstance(error, grpc.aio.AioRpcError) and error.code() in UNREACHABLE


def _not_found(error: BaseException | None) -> bool:
    return isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.NOT_FOUND


class MembershipActivities:
    def __init__(
        self, directory: NodeDirectory, clients: NodeClients, killpoints: KillPoints
    ) -> None:
        self.directory = directory
        self.clients = clients
        self.killpoints = killpoints

    def _stub(self, node: Peer) -> rpc.AirNodeStub:
        return self.clients.stub(node.address)

    async def _call(self, node: Peer, rpc_call: Callable[[rpc.AirNodeStub], Awaitable[T]]) -> T:
        """One RPC; a refusal becomes a non-retryable error, anything else a retryable one."""
        try:
            return await rpc_call(self._stub(node))
        except grpc.aio.AioRpcError as e:
            if e.code() in REFUSALS:
                raise NodeRefused(node, e) from e
            raise

    async def _step(self, step: StepInput, effect: Awaitable[T]) -> T:
        """Run the step's side effect between its kill points (armed ones kill this worker)."""
        if step.kill_before is not None:
            self.killpoints.reach(step.kill_before)
        result = await effect
        if step.kill_after is not None:
            self.killpoints.reach(step.kill_after)
        return result

    async def _reachable(
        self,
        node: Peer,
        rpc_call: Callable[[rpc.AirNodeStub], Awaitable[T]],
        skip_if_down_after_s: float | None,
        quick: bool = False,
    ) -> T | None:
        """Call until the node answers. None: it stayed unreachable for `skip_if_down_after_s`.

        How long it has been down is heartbeated, so a retry (or another worker) goes on
        counting from the first failure instead of starting over. A quick try does not wait:
        it raises `NotQuick`.
        """
        backoff = Backoff(*POLL)
        down_since = _heartbeat_detail("down_since")  # from an earlier attempt, if any
        while True:
            try:
                return await self._call(node, rpc_call)
            except grpc.aio.AioRpcError as e:
                if not _unreachable(e) or skip_if_down_after_s is None:
                    raise
                if quick:
                    raise NotQuick(f"node {node.node_id} does not answer") from e
                down_since = down_since or time.time()
                if time.time() - down_since >= skip_if_down_after_s:
                    return None
                _heartbeat({"down_since": down_since})
                await backoff.sleep()

    async def _membership(
        self,
        node: Peer,
        rpc_call: Callable[[rpc.AirNodeStub], Awaitable[pb.MembershipReply]],
        skip_if_down_after_s: float | None = None,
        quick: bool = False,
    ) -> StepResult:
        """A membership RPC; with `skip_if_down_after_s`, a node down that long is skipped."""
        reply = await self._reachable(node, rpc_call, skip_if_down_after_s, quick)
        if reply is None:
            return _skipped(node, skip_if_down_after_s)
        return StepResult(changed=reply.changed, message=reply.message)

    async def _regions_everywhere(
        self,
    ) -> tuple[list[Peer], list[NodeListing | BaseException]]:
        """Every known node and its regions (or the error that stood for them), page by page."""
        nodes = self.directory.all()
        replies = await asyncio.gather(
            *(self._all_regions(n) for n in nodes), return_exceptions=True
        )
        return nodes, list(replies)

    async def _all_regions(self, node: Peer) -> NodeListing:
        return await node_listing(self._stub(node))

    # -- reading --------------------------------------------------------------------------

    @activity.defn
    async def describe_region(self, region: int) -> RegionDescription:
        """Ask every known node for its replica of `region` (that region alone, however many a
        node holds). Read-only: retry-safe."""
        nodes = self.directory.all()
        request = pb.RegionRequest(region=region)
        replies = await asyncio.gather(
            *(self._stub(n).DescribeRegion(request, timeout=RPC_TIMEOUT_S) for n in nodes),
            return_exceptions=True,
        )
        description = RegionDescription(region=region, known_nodes=nodes)
        for node, info in zip(nodes, replies, strict=True):
            if _not_found(info):
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

    @activity.defn
    async def describe_cluster(self, node: int) -> ClusterDescription:
        """Every known node's regions (`node` names the drain asking). Read-only: retry-safe."""
        nodes, replies = await self._regions_everywhere()
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

    @activity.defn
    async def capture_target(self, step: CaptureTargetInput) -> dict[int, int]:
        """The target vector, captured once so a retried wait uses the same one.

        The componentwise max of the nodes' applied vectors (a node's own origin there is its
        max assigned seq). Read-only: a retry captures again, which is as good (the workflow
        records only the result it receives).
        """
        target: dict[int, int] = {}
        for node in step.nodes:
            try:
                progress = await self._call(
                    node,
                    _rpc("GetProgress", pb.RegionRequest(region=step.region)),
                )
            except NodeRefused as e:
                if step.missing_ok and _not_found(e.__cause__):
                    continue  # no replica there: nothing of it to wait for
                raise
            for origin, seq in progress.applied.items():
                if step.origins is None or origin in step.origins:
                    target[origin] = max(target.get(origin, 0), seq)
        return target

    # -- add peer -------------------------------------------------------------------------

    @activity.defn
    async def create_local_peer(self, step: CreateLocalPeerInput) -> StepResult:
        """Create the new replica, inactive, awaiting the coordinator's snapshot.

        Retry-safe: the node creates the replica folder with one rename and reports an
        existing replica with the same peers unchanged.
        """
        request = pb.CreateLocalPeerRequest(
            region=step.region,
            peers=[pb.Peer(node_id=p.node_id, address=p.address) for p in step.peers],
            active=False,
            await_snapshot=True,
        )
        return await self._step(
            step,
            self._membership(step.node, _rpc("CreateLocalPeer", request)),
        )

    @activity.defn
    async def inactivate_peer(self, step: SetActiveInput) -> StepResult:
        """Set a replica inactive (for deletion, when leaving). Retry-safe: a flag set twice."""
        return await self._set_active(step)

    @activity.defn
    async def activate_peer(self, step: SetActiveInput) -> StepResult:
        """Let the new replica take user writes. Retry-safe: a flag set twice."""
        return await self._set_active(step)

    async def _set_active(self, step: SetActiveInput) -> StepResult:
        request = pb.SetActiveRequest(
            region=step.region, active=step.active, for_deletion=step.for_deletion
        )
        return await self._step(
            step,
            self._membership(
                step.node,
                _rpc("SetActive", request, _deadline(step)),
                step.skip_if_down_after_s,
                step.quick,
            ),
        )

    @activity.defn
    async def notify_peers_to_create_channels(self, step: ChannelsInput) -> StepResult:
        """Every peer creates its channel to the new peer; the coordinator's last, a snapshot.

        The coordinator goes last, as in the source, so the others' channels exist before the
        snapshot's applied vector is taken: they start after it. Retry-safe: CreateChannel of
        an existing channel reports it unchanged.
        """

        async def effect() -> StepResult:
            changed = False
            target = pb.Peer(node_id=step.target.node_id, address=step.target.address)
            senders = [(p, False) for p in step.peers if p != step.coordinator]
            if step.coordinator is not None:
                senders.append((step.coordinator, True))
            for sender, snapshot in senders:
                request = pb.CreateChannelRequest(
                    region=step.region, receiver=target, snapshot=snapshot
                )
                result = await self._membership(sender, _rpc("CreateChannel", request))
                changed |= result.changed
            return StepResult(changed=changed, message=f"{len(senders)} channel(s) to the new peer")

        return await self._step(step, effect())

    @activity.defn
    async def wait_transfer_complete(self, step: WaitTransferInput) -> TransferProgress:
        """Poll until every receiver has applied the target vector, for at most one slice.

        Polls at once, then backs off (50 ms to 1 s), heartbeating the lag. Returns when
        complete or when the slice ends, so the workflow can show progress and call again.
        Read-only: retry-safe. An unreachable receiver is never complete: it is reported, and
        the workflow decides how long to wait for it.
        """
        began = time.monotonic()
        backoff = Backoff(*POLL)
        first_lag: int | None = None
        while True:
            progress = await self._check_transfer(step)
            first_lag = progress.lag if first_lag is None else first_lag
            progress.elapsed_s = time.monotonic() - began
            if progress.elapsed_s > 0:
                progress.rate = max(first_lag - progress.lag, 0) / progress.elapsed_s
            _heartbeat(progress.model_dump(mode="json"))
            slice_s = min(step.slice_s, QUICK_PATIENCE_S) if step.quick else step.slice_s
            if progress.complete or progress.elapsed_s >= slice_s:
                return progress
            await backoff.sleep()

    async def _check_transfer(self, step: WaitTransferInput) -> TransferProgress:
        request = pb.CheckTransferCompleteRequest(region=step.region, target=step.target)
        progress = TransferProgress(complete=True, lag=0)
        for receiver in step.receivers:
            try:
                call = _rpc("CheckTransferComplete", request, _deadline(step))
                reply = await self._call(receiver, call)
            except grpc.aio.AioRpcError as e:
                if not _unreachable(e):
                    raise
                progress.unreachable.append(receiver.node_id)  # never counts as complete
                progress.complete = False
                continue
            progress.complete &= reply.complete
            progress.lag += reply.total_lag
            if not reply.installed:
                progress.awaiting_snapshot.append(receiver.node_id)
            for origin, seqs in reply.lag.items():
                progress.behind[origin] = progress.behind.get(origin, 0) + seqs
        return progress

    # -- remove a peer that is down -------------------------------------------------------

    @activity.defn
    async def catch_up_dead_origin(self, step: CatchUpInput) -> StepResult:
        """Bring every survivor to the longest prefix of the dead origin's writes any holds.

        The survivor holding the most forwards to each other survivor what it lacks
        (ForwardOrigin). Retry-safe: each attempt reads the survivors' applied vectors afresh
        and forwards only what a receiver lacks, which applies each seq at most once. A
        survivor down for `down_timeout_s` (counted across retries) fails the step.
        """
        down_since = _heartbeat_detail("down_since")
        backoff = Backoff(*POLL)
        while True:
            try:
                return await self._catch_up(step)
            except grpc.aio.AioRpcError as e:
                if not _unreachable(e):
                    raise
                if step.quick:
                    raise NotQuick(f"a survivor does not answer: {e.details()}") from e
                down_since = down_since or time.time()
                if time.time() - down_since >= step.down_timeout_s:
                    raise ApplicationError(
                        f"region {step.region}: the survivors of node {step.origin} could not "
                        f"be brought to the same prefix of its writes: {e.details()}",
                        type="CatchUpFailed",
                        non_retryable=True,
                    ) from e
                _heartbeat({"down_since": down_since})
                await backoff.sleep()

    async def _catch_up(self, step: CatchUpInput) -> StepResult:
        request = pb.RegionRequest(region=step.region)
        replies = await asyncio.gather(
            *(self._stub(p).GetProgress(request, timeout=_deadline(step)) for p in step.survivors),
            return_exceptions=True,
        )
        held: dict[Peer, int] = {}
        for survivor, reply in zip(step.survivors, replies, strict=True):
            if _not_found(reply):
                continue  # no replica there: not a survivor of this region
            if isinstance(reply, BaseException):
                raise reply
            if reply.installed:  # one awaiting its snapshot gets it from a caught-up peer
                held[survivor] = reply.applied.get(step.origin, 0)
        if not held:
            return StepResult(message=f"no survivor holds region {step.region}")
        top = max(held.values())
        source = min((p for p, seq in held.items() if seq == top), key=lambda p: p.node_id)
        behind = sorted((p for p, seq in held.items() if seq < top), key=lambda p: p.node_id)
        origin = f"node {step.origin}'s writes"
        if not behind:
            return StepResult(message=f"every survivor holds {origin} up to seq {top}")
        if step.quick:
            raise NotQuick(f"nodes {[p.node_id for p in behind]} lack some of {origin}")
        for receiver in behind:
            await self._forward(step, source, receiver, top)
        return StepResult(
            changed=True,
            message=f"nodes {[p.node_id for p in behind]} brought to seq {top} of {origin}, "
            f"from node {source.node_id}",
        )

    async def _forward(self, step: CatchUpInput, source: Peer, receiver: Peer, upto: int) -> None:
        """Ask `source` to forward to `receiver` until it holds `upto`, heartbeating."""
        request = pb.ForwardOriginRequest(
            region=step.region,
            origin=step.origin,
            receiver=pb.Peer(node_id=receiver.node_id, address=receiver.address),
            upto=upto,
        )
        while True:
            reply = await self._call(source, _rpc("ForwardOrigin", request))
            _heartbeat({"receiver": receiver.node_id, "applied": reply.applied, "upto": upto})
            if reply.applied >= upto:
                return

    # -- remove peer ----------------------------------------------------------------------

    @activity.defn
    async def notify_peers_to_drop_channels(self, step: ChannelsInput) -> StepResult:
        """Every peer drops its channel to the target (and with `write_off`, refuses what the
        target never replicated). Retry-safe: dropping what is gone, writing off what is."""

        async def effect() -> StepResult:
            changed = False
            for peer in step.peers:
                request = pb.DropChannelRequest(
                    region=step.region, receiver_id=step.target.node_id, write_off=step.write_off
                )
                result = await self._membership(peer, _rpc("DropChannel", request))
                changed |= result.changed
            return StepResult(changed=changed, message=f"{len(step.peers)} peer(s) dropped")

        return await self._step(step, effect())

    @activity.defn
    async def wait_release(self, step: ReleaseInput) -> StepResult:
        """Wait until the leaving replica has released everything (polls, backing off).

        Read-only: retry-safe. A leaving node down for `skip_if_down_after_s` is skipped.
        """

        async def effect() -> StepResult:
            backoff = Backoff(*POLL)
            request = pb.RegionRequest(region=step.region)
            began = time.monotonic()
            while True:
                reply = await self._reachable(
                    step.node,
                    _rpc("GetReleaseStatus", request, _deadline(step)),
                    step.skip_if_down_after_s,
                    step.quick,
                )
                if reply is None:
                    return _skipped(step.node, step.skip_if_down_after_s)
                if reply.released:
                    return StepResult(changed=reply.exists, message=reply.detail)
                if step.quick and time.monotonic() - began >= QUICK_PATIENCE_S:
                    raise NotQuick(f"node {step.node.node_id}: {reply.detail}")
                _heartbeat({"detail": reply.detail})
                await backoff.sleep()

        return await self._step(step, effect())

    @activity.defn
    async def delete_local_peer(self, step: ReleaseInput) -> StepResult:
        """Delete the leaving replica. Retry-safe: the node renames the folder away first,
        and reports a replica already gone unchanged."""
        request = pb.RegionRequest(region=step.region)
        return await self._step(
            step,
            self._membership(
                step.node,
                _rpc("DeleteLocalPeer", request, _deadline(step)),
                step.skip_if_down_after_s,
                step.quick,
            ),
        )

    def all(self) -> list[Callable[..., Awaitable[object]]]:
        return [
            self.describe_region,
            self.describe_cluster,
            self.capture_target,
            self.create_local_peer,
            self.inactivate_peer,
            self.activate_peer,
            self.notify_peers_to_create_channels,
            self.wait_transfer_complete,
            self.notify_peers_to_drop_channels,
            self.catch_up_dead_origin,
            self.wait_release,
            self.delete_local_peer,
        ]


@dataclass(frozen=True)
class NodeListing:
    regions: list[pb.RegionInfo]
    disk: Disk


async def node_listing(stub: rpc.AirNodeStub) -> NodeListing:
    """Every region a node holds, page by page (LIST_PAGE at a time), and its disk."""
    regions: list[pb.RegionInfo] = []
    after = 0
    while True:
        request = pb.ListRegionsRequest(after_region=after, limit=LIST_PAGE)
        reply = await stub.ListRegions(request, timeout=RPC_TIMEOUT_S)
        regions.extend(reply.regions)
        if not (after := reply.next_after):
            return NodeListing(regions, Disk(capacity=reply.disk_capacity, used=reply.disk_used))


async def all_regions(stub: rpc.AirNodeStub) -> list[pb.RegionInfo]:
    """Every region a node holds."""
    return (await node_listing(stub)).regions


async def describe_cluster(nodes: dict[int, str], clients: NodeClients) -> ClusterDescription:
    """The cluster as the workflows' `describe_cluster` reads it, for a client (airctl, a test,
    a benchmark) planning as they will. Read-only."""
    directory = NodeDirectory(nodes=nodes)
    return await MembershipActivities(
        directory, clients, KillPoints(set(), Path("."))
    ).describe_cluster(0)


def _rpc(
    method: str, request: Message, timeout: float = RPC_TIMEOUT_S
) -> Callable[[rpc.AirNodeStub], Awaitable[Any]]:
    """Call `method` of a node with `request` (and the usual deadline)."""
    return lambda stub: getattr(stub, method)(request, timeout=timeout)


def _deadline(step: StepInput) -> float:
    return QUICK_RPC_TIMEOUT_S if step.quick else RPC_TIMEOUT_S


def _heartbeat(details: Any) -> None:
    """Heartbeat a regular activity; a local one (a quick try) has no heartbeat to send."""
    if not activity.info().is_local:
        activity.heartbeat(details)


def _heartbeat_detail(key: str) -> float | None:
    """A value the previous attempt of this activity heartbeated (before a crash), if any."""
    details = activity.info().heartbeat_details
    if details and isinstance(details[-1], dict) and key in details[-1]:
        return float(details[-1][key])
    return None


def _skipped(node: Peer, after_s: float | None) -> StepResult:
    return StepResult(
        skipped=True, message=f"node {node.node_id} unreachable for {after_s:.0f}s: skipped"
    )
