"""The AirNode gRPC service: translates requests to `Node` calls and errors to status codes."""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from contracts.columns import from_columns
from node.acks import Level
from node.channel import from_proto
from node.check import RangeRequest
from node.chunk_wire import Chunk, decode
from node.digests import TAKEN
from node.errors import NodeError
from node.identity import require_node
from node.inbound import Inbound
from node.membership import Outcome
from node.metrics import METRICS
from node.node import Node
from node.replica import PeerInfo
from node.reports import RegionSummary
from node.resources import exhausted
from node.snapshot import ChecksumMismatch
from node.store import GapError
from protos import air_node_pb2 as pb
from protos import air_node_pb2_grpc as rpc

log = logging.getLogger(__name__)

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])

# A write is stored as one seq and travels whole in one transfer batch, which adds a seq per
# point: capped well below the 64 MiB message limit, that batch always fits in a message.
MAX_WRITE_BYTES = 16 * 1024 * 1024
# How long a write waits for its acknowledgement level when its call has no deadline.
DEFAULT_ACK_WAIT_S = 10.0


def _refusals(handler: Handler) -> Handler:
    """Map a refused request to its status code with a clear message; the node keeps serving.
    The call's duration goes to air_rpc_duration_seconds."""
    duration = METRICS.rpc_duration.labels(method=handler.__name__)

    @functools.wraps(handler)
    async def wrapper(self: AirNodeService, request: Any, context: grpc.aio.ServicerContext) -> Any:  # type: ignore[type-arg]
        try:
            with duration.time():
                return await handler(self, request, context)
        except NodeError as e:
            log.info("%s refused: %s", handler.__name__, e.message)
            await context.abort(e.code, e.message)
        except (OSError, sqlite3.OperationalError, RuntimeError) as e:
            if (what := exhausted(e)) is None:
                raise
            message = f"node {self.node.node_id} has run out of {what}: {e}"
            log.error("%s refused: %s", handler.__name__, message)
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, message)

    return wrapper  # type: ignore[return-value]


def _peer(p: pb.Peer) -> PeerInfo:
    return PeerInfo(node_id=p.node_id, address=p.address)


def _proto_peer(p: PeerInfo) -> pb.Peer:
    return pb.Peer(node_id=p.node_id, address=p.address)


def _region_info(r: RegionSummary) -> pb.RegionInfo:
    return pb.RegionInfo(
        region=r.region,
        peers=[_proto_peer(p) for p in r.peers],
        active=r.active,
        installed=r.installed,
        leaving=r.leaving,
        store_bytes=r.store_bytes,
        check_reads=r.check_reads,
    )


def _reply(outcome: Outcome) -> pb.MembershipReply:
    return pb.MembershipReply(changed=outcome.changed, message=outcome.message)


class AirNodeService(rpc.AirNodeServicer):
    """With `certified_senders` (TLS on), only node N's certificate may send as node N."""

    def __init__(self, node: Node, *, certified_senders: bool = False) -> None:
        self.node = node
        self.certified_senders = certified_senders

    def _check_sender(self, context: Any, sender: int, what: str) -> None:
        if self.certified_senders:
            require_node(context, sender, what)

    # -- membership -----------------------------------------------------------------------

    @_refusals
    async def CreateLocalPeer(
        self, request: pb.CreateLocalPeerRequest, context: Any
    ) -> pb.MembershipReply:
        peers = [_peer(p) for p in request.peers]
        return _reply(
            await self.node.membership.create_local_peer(
                request.region, peers, request.active, request.await_snapshot
            )
        )

    @_refusals
    async def DeleteLocalPeer(self, request: pb.RegionRequest, context: Any) -> pb.MembershipReply:
        return _reply(await self.node.membership.delete_local_peer(request.region))

    @_refusals
    async def SetActive(self, request: pb.SetActiveRequest, context: Any) -> pb.MembershipReply:
        return _reply(
            await self.node.membership.set_active(
                request.region, request.active, request.for_deletion
            )
        )

    @_refusals
    async def CreateChannel(
        self, request: pb.CreateChannelRequest, context: Any
    ) -> pb.MembershipReply:
        return _reply(
            await self.node.membership.create_channel(
                request.region, _peer(request.receiver), request.snapshot
            )
        )

    @_refusals
    async def DropChannel(self, request: pb.DropChannelRequest, context: Any) -> pb.MembershipReply:
        membership = self.node.membership
        return _reply(
            await membership.drop_channel(request.region, request.receiver_id, request.write_off)
        )

    @_refusals
    async def ResetPeerList(
        self, request: pb.ResetPeerListRequest, context: Any
    ) -> pb.MembershipReply:
        peers = [_peer(p) for p in request.peers]
        return _reply(await self.node.membership.reset_peer_list(request.region, peers))

    # -- progress -------------------------------------------------------------------------

    @_refusals
    async def GetProgress(self, request: pb.RegionRequest, context: Any) -> pb.Progress:
        report = self.node.progress(request.region)
        return pb.Progress(
            region=report.region,
            applied=report.applied,
            max_assigned=report.max_assigned,
            channels=[
                pb.ChannelProgress(
                    name=c.name,
                    receiver=_proto_peer(c.receiver),
                    snapshot=c.snapshot,
                    status=c.status,
                    acked=c.acked,
                    lag=c.lag,
                    snapshot_bytes_sent=c.snapshot_sent.sent,
                    snapshot_bytes_skipped=c.snapshot_sent.skipped,
                )
                for c in report.channels
            ],
            active=report.active,
            installed=report.installed,
            leaving=report.leaving,
            peers=[_proto_peer(p) for p in report.peers],
            departed=report.departed,
            written_off=report.written_off,
            confirmed=report.confirmed,
            snapshot_received=report.snapshot_received,
        )

    @_refusals
    async def CheckTransferComplete(
        self, request: pb.CheckTransferCompleteRequest, context: Any
    ) -> pb.CheckTransferCompleteReply:
        check = self.node.check_transfer_complete(request.region, dict(request.target))
        return pb.CheckTransferCompleteReply(
            complete=check.complete,
            lag=check.lag,
            total_lag=sum(check.lag.values()),
            installed=check.installed,
            snapshot_received=check.snapshot_received,
            snapshot_limit_bytes_per_s=check.snapshot_limit[0],
            snapshot_limit_auto=check.snapshot_limit[1],
        )

    @_refusals
    async def GetReleaseStatus(
        self, request: pb.RegionRequest, context: Any
    ) -> pb.ReleaseStatusReply:
        status = self.node.release_status(request.region)
        return pb.ReleaseStatusReply(
            released=status.released, exists=status.exists, detail=status.detail
        )

    # -- data -----------------------------------------------------------------------------

    @_refusals
    async def Write(self, request: pb.WriteRequest, context: Any) -> pb.WriteReply:
        if (size := request.ByteSize()) > MAX_WRITE_BYTES:
            raise NodeError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"a write of {size} bytes is over the {MAX_WRITE_BYTES} byte limit: split it",
            )
        try:
            columns = from_columns(request.columns)
        except ValueError as e:
            raise NodeError(grpc.StatusCode.INVALID_ARGUMENT, f"malformed columns: {e}") from e
        rows = [(p.series, p.timestamp, p.value) for p in request.points] + columns
        remaining = context.time_remaining()
        # answer a little before the caller's deadline, so it reads why rather than a timeout
        patience = DEFAULT_ACK_WAIT_S if remaining is None else max(remaining * 0.9 - 0.05, 0)
        written = await self.node.write(request.region, rows, _level(request.acks), patience)
        return pb.WriteReply(
            origin=self.node.node_id,
            seq=written.seq,
            count=len(rows),
            applied_by=written.applied_by,
        )

    @_refusals
    async def Read(self, request: pb.ReadRequest, context: Any) -> pb.ReadReply:
        rows = await self.node.read(
            request.region, request.series, request.start, request.end or None
        )
        return pb.ReadReply(points=[pb.Point(series=s, timestamp=t, value=v) for s, t, v in rows])

    @_refusals
    async def Digest(self, request: pb.RegionRequest, context: Any) -> pb.DigestReply:
        d = await self.node.digest(request.region)
        return pb.DigestReply(
            region=request.region,
            count=d.count,
            hash=d.hash,
            active=d.active,
            installed=d.installed,
        )

    @_refusals
    async def ListRegions(
        self, request: pb.ListRegionsRequest, context: Any
    ) -> pb.ListRegionsReply:
        page = self.node.list_regions(request.after_region, request.limit)
        return pb.ListRegionsReply(
            node_id=self.node.node_id,
            regions=[_region_info(r) for r in page.regions],
            next_after=page.next_after,
            disk_capacity=page.disk.capacity,
            disk_used=page.disk.used,
            locality=self.node.locality,
        )

    @_refusals
    async def DescribeRegion(self, request: pb.RegionRequest, context: Any) -> pb.RegionInfo:
        return _region_info(self.node.describe(request.region))

    @_refusals
    async def CheckRange(self, request: pb.CheckRangeRequest, context: Any) -> pb.CheckRangeReply:
        """Read-only: a retry reads the range again."""
        report = await self.node.check_range(
            request.region,
            RangeRequest(
                settled=dict(request.settled),
                after=None if request.from_start else (request.after_series, request.after_ts),
                until=None if request.to_end else (request.until_series, request.until_ts),
                limit=request.limit,
                list_points=request.list_points,
            ),
        )
        last = report.last or ("", 0)
        return pb.CheckRangeReply(
            hash=report.hash,
            settled=report.settled,
            unsettled=report.unsettled,
            more=report.more,
            last_series=last[0],
            last_ts=last[1],
            bytes_read=report.bytes_read,
            applied=report.applied,
            cpu_s=report.cpu_s,
            points=[
                pb.CheckedPoint(series=s, timestamp=t, value=v, origin=o, seq=q)
                for s, t, v, o, q in report.points
            ],
        )

    # -- operations -----------------------------------------------------------------------

    @_refusals
    async def SetThrottle(self, request: pb.ThrottleRequest, context: Any) -> pb.ThrottleReply:
        """Idempotent: setting the limit it has changes nothing."""
        change = self.node.set_throttle(request.bytes_per_s, request.auto)
        return pb.ThrottleReply(bytes_per_s=request.bytes_per_s, previous=change.previous or 0)

    @_refusals
    async def Probe(self, request: pb.ProbeRequest, context: Any) -> pb.ProbeReply:
        """Read-only: a retry probes again."""
        remaining = context.time_remaining()
        # answer a little before the caller's deadline, so it reads "not reached", not a timeout
        within = None if remaining is None else remaining * 0.9 - 0.05
        reached = await self.node.probe(_peer(request.target), request.timeout_s, within)
        return pb.ProbeReply(
            reached=reached.reached, detail=reached.detail, seconds=reached.seconds
        )

    # -- receiving ------------------------------------------------------------------------

    async def Transfer(
        self,
        request_iterator: AsyncIterator[pb.TransferRequest],
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> AsyncIterator[pb.TransferReply]:
        """Receive a channel: a hello, then batches, each answered with the applied vector."""
        requests = aiter(request_iterator)
        try:
            first = await anext(requests, None)
            if first is None or not first.HasField("hello"):
                raise NodeError(
                    grpc.StatusCode.INVALID_ARGUMENT, "a transfer must start with a hello"
                )
            hello = first.hello
            self._check_sender(context, hello.sender, "transfer")
            with self.node.receive(
                hello.region, hello.sender, hello.origin, hello.retiring
            ) as inbound:
                yield _transfer_reply(inbound, self.node.locality)
                async for request in requests:
                    if inbound.standing == pb.SENDER_WRITTEN_OFF:
                        return  # told: it retires, handing its writes over as `retiring`
                    if not request.HasField("hello"):
                        await inbound.apply(from_proto(request.batch))
                    elif request.hello != hello:
                        raise NodeError(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"a transfer stream of region {hello.region} from node {hello.sender} "
                            f"cannot switch to region {request.hello.region} from node "
                            f"{request.hello.sender}",
                        )
                    yield _transfer_reply(inbound, self.node.locality)
        except NodeError as e:
            await context.abort(e.code, e.message)
        except GapError as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        except ValueError as e:  # a batch whose seqs and points do not pair up
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed batch: {e}")

    @_refusals
    async def ForwardOrigin(
        self, request: pb.ForwardOriginRequest, context: Any
    ) -> pb.ForwardOriginReply:
        """Idempotent: it sends the receiver only the seqs it lacks (node/forward.py)."""
        forwarded = await self.node.forward_origin(
            request.region, request.origin, _peer(request.receiver), request.upto
        )
        return pb.ForwardOriginReply(applied=forwarded.applied, points=forwarded.points)

    async def InstallSnapshot(  # type: ignore[override]
        self,
        request_iterator: AsyncIterator[Chunk],
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> pb.SnapshotReply:
        """Receive a whole store into a side file; install it with one rename when complete.
        Its chunks are parsed by node/chunk_wire.py (`register`)."""
        try:
            return await self._install_snapshot(request_iterator, context)
        except NodeError as e:
            await context.abort(e.code, e.message)
            raise  # unreachable: abort raises

    async def _install_snapshot(
        self, chunks: AsyncIterator[Chunk], context: Any
    ) -> pb.SnapshotReply:
        chunks = aiter(chunks)
        first = await anext(chunks, None)
        if first is None:
            raise NodeError(grpc.StatusCode.INVALID_ARGUMENT, "an empty snapshot stream")
        self._check_sender(context, first.fields.sender, "snapshot")
        with self.node.receive(first.fields.region, first.fields.sender) as inbound:
            if inbound.installed:
                return pb.SnapshotReply(installed=True, applied=inbound.applied())
            return await _receive_snapshot(inbound, first, chunks)


def _level(acks: int) -> Level:
    try:
        return Level(acks)
    except ValueError:
        known = ", ".join(f"{level.value} ({level.name})" for level in Level)
        raise NodeError(
            grpc.StatusCode.INVALID_ARGUMENT, f"acks {acks} is not a level: one of {known}"
        ) from None


def _transfer_reply(inbound: Inbound, locality: list[str]) -> pb.TransferReply:
    reply = pb.TransferReply(
        installed=inbound.installed,
        applied=inbound.applied(),
        active=inbound.active,
        columnar=True,  # a sender of the floor build reads it (node/compat.py)
        standing=inbound.standing or pb.SENDER_PEER,
        locality=locality,
    )
    if not reply.installed:  # the sender sends only the snapshot's chunks not held here
        held = inbound.held_snapshot()
        reply.snapshot_chunk_bytes = held.chunk_bytes
        reply.snapshot_held.update(held.digests)
        reply.snapshot_held_digest = held.kind
        reply.snapshot_digests.extend(TAKEN)
    return reply


async def _receive_snapshot(
    inbound: Inbound, first: Chunk, rest: AsyncIterator[Chunk]
) -> pb.SnapshotReply:
    """Write each chunk in place in the side file, kept if the stream breaks (the next one
    resumes it); install the file once whole and checked."""
    try:
        async with inbound.incoming_snapshot() as incoming:
            chunk: Chunk | None = first
            while chunk is not None and not chunk.fields.last:
                await incoming.add(chunk)
                chunk = await anext(rest, None)
            if chunk is None:  # what a stream whose sender's link died looks like here
                raise NodeError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "the snapshot stream ended before its last chunk (its sender stopped, or "
                    "the link to it was lost)",
                )
            size = await inbound.install(incoming, chunk)
    except ChecksumMismatch as e:
        raise NodeError(grpc.StatusCode.DATA_LOSS, str(e)) from e
    except ValueError as e:
        raise NodeError(grpc.StatusCode.INVALID_ARGUMENT, f"malformed snapshot: {e}") from e
    return pb.SnapshotReply(installed=True, bytes=size, applied=inbound.applied())


def register(service: AirNodeService, server: grpc.aio.Server) -> None:
    """Serve `service` on `server`, as the generated code would, but InstallSnapshot's chunks
    parsed by node/chunk_wire.py: their data a view into the message, not copied."""
    capture = _Handlers()
    rpc.add_AirNodeServicer_to_server(service, capture)  # type: ignore[arg-type]
    handlers = dict(capture.handlers)
    handlers["InstallSnapshot"] = grpc.stream_unary_rpc_method_handler(
        service.InstallSnapshot,
        request_deserializer=decode,
        response_serializer=pb.SnapshotReply.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(capture.name, handlers),))
    # grpc-stubs predates registered methods (which the generated code registers too)
    server.add_registered_method_handlers(capture.name, handlers)  # type: ignore[attr-defined]


class _Handlers:
    """What the generated code registers on a server, kept to register again."""

    name = ""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        pass

    def add_registered_method_handlers(
        self, name: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        self.name, self.handlers = name, handlers
