"""The sending end of a replication channel (IoTDB's "air replication", a pipe).

A channel `(region, sender, receiver)` streams the sender's own writes, in seq order, starting
after what the receiver reports it has applied. A snapshot channel first ships a consistent
copy of the whole store when the receiver has none. Any failure ends the session; the next one
starts again from the receiver's applied vector, so nothing is skipped and nothing is applied
twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Protocol, TypeVar

import grpc

from contracts.columns import from_columns, to_columns
from contracts.locality import zone_of
from node import digests
from node.breaks import status_of, stream_ended
from node.chunk_wire import Chunk, install_snapshot
from node.compat import BelowFloor, check_batch, check_chunk_bytes, check_receiver
from node.metrics import METRICS, zone_label
from node.replica import ChannelState, PeerInfo, Replica, channel_name
from node.snapshot import Held, Sent, snapshot_chunks
from node.store import OriginBatch, fetch_origin
from node.throttle import Throttles
from protos import air_node_pb2 as pb
from runtime.backoff import Backoff
from runtime.clients import NodeClients

log = logging.getLogger(__name__)
T = TypeVar("T")
TransferCall = grpc.aio.StreamStreamCall[pb.TransferRequest, pb.TransferReply]

BATCH_POINTS = 20_000
# Batches sent and not yet answered: one overlaps the sender's read with the receiver's apply.
WINDOW = 2
# An idle channel sleeps until its replica changes (a write, a flag, an installed snapshot all
# notify); it also looks again after this long, as a safety net. Polling every second cost a
# node holding hundreds of regions most of a core; every 30 s, 6% of one at 1,000 regions
# (bench/idle.py), each look a query on a thread.
IDLE_WAIT_S = 300.0
# A session whose receiver has everything keeps its stream this long for the next write (a
# quorum write then waits no new stream), then ends it.
LINGER_S = 5.0
# A hello failing within this long was refused (a receiver down answers at once); one failing
# later went unanswered: its link broke.
AT_ONCE_S = 1.0


class ReceiverNotReady(Exception):
    """The receiver awaits a snapshot that this (non-snapshot) channel does not send."""


class WrittenOff(Exception):
    """The receiver removed this node from the region while it could not be reached."""


class Removals(Protocol):
    """Who hears what a channel learns of its sender's membership (node/retirement.py)."""

    def removed(self, region: int, by: PeerInfo) -> None:
        """`by` says this node was removed from `region`, which it did not know."""

    def suspect(self, region: int) -> None:
        """A peer holds `region` no more: this node may have been removed too."""


class NoRemovals:
    def removed(self, region: int, by: PeerInfo) -> None:
        pass

    def suspect(self, region: int) -> None:
        pass


class Channel:
    def __init__(
        self,
        replica: Replica,
        receiver_id: int,
        clients: NodeClients,
        batch_points: int = BATCH_POINTS,
        throttles: Throttles | None = None,
        removals: Removals | None = None,
        zone: str = "",
    ) -> None:
        self.replica = replica
        self.receiver_id = receiver_id
        self.clients = clients
        self.batch_points = batch_points
        self.throttles = throttles or Throttles()
        self.removals = removals or NoRemovals()
        self.name = channel_name(replica.region, replica.node_id, receiver_id)
        self._task: asyncio.Task[None] | None = None
        # the zones a snapshot goes between, as its bytes are counted (the receiver's says
        # its answer to the hello)
        self._zones = (zone_label(zone), zone_label(""))

    @property
    def state(self) -> ChannelState:
        return self.replica.meta.channels[self.receiver_id]

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running and self.state.status == "RUNNING":
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        backoff = Backoff()
        while self.state.status == "RUNNING":
            changed = self.replica.changes()  # before the look: a write after it wakes us
            if self._receiver_has_all():
                if self.replica.done_writing():
                    self._finish_draining()
                    return
                await self.replica.wait_changed(IDLE_WAIT_S, since=changed)
                continue
            if not self.replica.installed:
                await self.replica.wait_changed(IDLE_WAIT_S)
                continue
            try:
                await self._session(backoff)
                self.replica.persist_if_changed()  # the cursor, so a restart opens no stream
            except (
                grpc.aio.AioRpcError,
                ReceiverNotReady,
                ConnectionError,
                WrittenOff,
                asyncio.InvalidStateError,  # written to a stream the receiver had ended
            ) as e:
                log.debug("%s: session ended: %s", self.name, status_of(e))
                if isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.NOT_FOUND:
                    self.removals.suspect(self.replica.region)
                await backoff.sleep()
            except BelowFloor as e:
                log.warning("%s: %s", self.name, e)
                await backoff.sleep()
            except Exception:
                log.exception("%s: session failed", self.name)
                await backoff.sleep()

    def _receiver_has_all(self) -> bool:
        """Whether the receiver acknowledged every write of this node's (its cursor, durable
        across restarts): then no stream is opened until the next write. A snapshot channel
        always asks, for its receiver may await the snapshot."""
        return not self.state.snapshot and self.state.acked >= self.replica.max_assigned()

    async def _session(self, backoff: Backoff) -> None:
        """One stream, with no deadline, until the receiver holds everything and no write came
        for LINGER_S: a link that dies under it ends it within seconds all the same (gRPC
        keepalive: runtime/clients.py), and one that broke is reported (node/breaks.py): once
        the receiver had answered, or while its hello went unanswered (a link cut under an idle
        channel), but not a receiver that refused it at once (down: nothing broke)."""
        call = self.clients.stub(self.state.receiver.address).Transfer(None)  # by call.write()
        began, answered = time.monotonic(), False
        try:
            reply = await exchange(call, self._hello())
            answered = True
            acked = await self._handshake(call, reply)
            backoff.reset()
            await while_open(call, self._stream(call, acked))
        except grpc.aio.AioRpcError as e:
            if answered or time.monotonic() - began > AT_ONCE_S:
                stream_ended("channel", "sender", self.name, began, e)
            raise
        finally:
            call.cancel()

    def _hello(self) -> pb.TransferRequest:
        return pb.TransferRequest(
            hello=pb.TransferHello(region=self.replica.region, sender=self.replica.node_id)
        )

    async def _handshake(self, call: TransferCall, reply: pb.TransferReply) -> int:
        """From the receiver's answer to the hello: a snapshot first if it awaits one, under
        the digest it holds chunks under or else the best it takes (node/digests.py)."""
        check_receiver(reply, self.receiver_id)
        self._zones = (self._zones[0], zone_label(zone_of(list(reply.locality))))
        if not reply.installed:
            self._hear_standing(reply)
            if not self.state.snapshot:
                raise ReceiverNotReady(f"node {self.receiver_id} awaits a snapshot")
            check_chunk_bytes(reply.snapshot_chunk_bytes, self.receiver_id)
            held = Held.of(reply)
            kind = digests.pick(
                reply.snapshot_digests, held.kind, bool(held.digests), self.receiver_id
            )
            await self._send_snapshot(held, kind)
            reply = await exchange(call, self._hello())
            if not reply.installed:
                raise ReceiverNotReady(f"node {self.receiver_id} did not install the snapshot")
        return self._acknowledge(reply)

    def _hear_standing(self, reply: pb.TransferReply) -> None:
        """A sender written off while it could not be reached learns it here, and retires.
        A departed one drains into the receiver, as a leaving replica does: its removal is
        under way and will reach it (or write it off)."""
        if reply.standing == pb.SENDER_WRITTEN_OFF:
            self.removals.removed(self.replica.region, self.state.receiver)
            raise WrittenOff(f"node {self.receiver_id} wrote this node off")

    async def _stream(self, call: TransferCall, acked: int) -> None:
        """Send batches after `acked`, up to WINDOW unanswered: the next is read and sent while
        the receiver applies the last. A batch follows the one sent before it, so the receiver
        applies them in order; after any failure the next session starts from its answer.
        Returns once the receiver has everything and nothing new came for LINGER_S: an idle
        region holds no stream (at thousands of regions, held streams were most of a node's
        memory)."""
        store = self.replica.store
        assert store is not None
        sent, in_flight = acked, 0
        while self.state.status == "RUNNING":
            # asked before the query: a write committing during it would be missed by it, the
            # channel would stop one write short, and a removal's hand-off wait for ever
            changed = self.replica.changes()
            done_writing = self.replica.done_writing()
            if in_flight < WINDOW:
                batch = await asyncio.to_thread(
                    store.query, fetch_origin, self.replica.node_id, sent, self.batch_points
                )
                if batch.upto > sent:
                    request = pb.TransferRequest(batch=to_proto(batch))
                    await self.throttles.every.acquire(request.ByteSize())
                    METRICS.transfer_bytes.labels(region=self.replica.region).inc(
                        request.ByteSize()
                    )
                    await call.write(request)
                    sent, in_flight = batch.upto, in_flight + 1
                    continue
            if in_flight:
                self._acknowledge(await read_reply(call))
                in_flight -= 1
                continue
            if done_writing:  # nothing new, nothing unanswered
                self._finish_draining()
                return
            await self.replica.wait_changed(LINGER_S, since=changed)
            if not changed.is_set():
                return

    def _acknowledge(self, reply: pb.TransferReply) -> int:
        self._hear_standing(reply)
        acked = reply.applied.get(self.replica.node_id, 0)
        self.state.acked = acked
        self.replica.acks.record(self.receiver_id, acked, reply.active)
        lag = max(self.replica.max_assigned() - acked, 0)
        METRICS.sync_lag.labels(region=self.replica.region, receiver=self.receiver_id).set(lag)
        return acked

    def _finish_draining(self) -> None:
        """A leaving replica's channel stops, durably, once the receiver has everything."""
        log.info("%s: drained, stopping", self.name)
        self.state.status = "STOPPED"
        self.replica.persist()
        self.replica.notify()

    async def _send_snapshot(self, held: Held, kind: digests.Kind) -> None:
        """Send the chunks of a held view the receiver does not hold (`held`), under digests
        of `kind`."""
        began = time.monotonic()
        view = await self.replica.hold_view()
        held_at = time.monotonic()
        counts = self.replica.snapshots_sent.setdefault(self.receiver_id, Sent())
        before = Sent(counts.sent, counts.skipped)
        try:
            region, sender = self.replica.region, self.replica.node_id
            chunks = snapshot_chunks(view, region, sender, held, kind, counts)
            install = install_snapshot(self.clients.channel(self.state.receiver.address))
            # no deadline: a snapshot takes what it takes; keepalive ends it on a dead link,
            # and the next session resumes it where the receiver stands
            reply = await install(self._counted(chunks, counts))
        except grpc.aio.AioRpcError as e:
            stream_ended("snapshot", "sender", self.name, held_at, e)
            # reported here: the session ends without reporting its own stream as well
            raise ConnectionError(f"snapshot to node {self.receiver_id}: {status_of(e)}") from e
        finally:
            view.release()
        log.info(
            "%s: snapshot of %d bytes installed=%s: %d sent, %d held by the receiver already; "
            "%.2f s to hold the view (the checkpoint), %.2f s to send and install",
            self.name,
            view.size,
            reply.installed,
            counts.sent - before.sent,
            counts.skipped - before.skipped,
            held_at - began,
            time.monotonic() - held_at,
        )

    async def _counted(self, chunks: AsyncIterator[Chunk], counts: Sent) -> AsyncIterator[Chunk]:
        """The chunks once the throttles let them through, counted then: a chunk held by a
        throttle is not sent yet (a test holding a transfer reads that it is held)."""
        async for chunk in chunks:
            size = len(chunk.data)
            await self.throttles.acquire_snapshot(size)
            limit, chunk.fields.limit_auto = self.throttles.snapshot_limit()
            chunk.fields.limit_bytes_per_s = limit or 0.0  # the receiver's progress shows it
            counts.sent += size
            METRICS.transfer_bytes.labels(region=self.replica.region).inc(size)
            METRICS.snapshot_bytes.labels(*self._zones).inc(size)
            yield chunk


async def while_open(call: TransferCall, work: Coroutine[Any, Any, T]) -> T:
    """Run `work` on the stream until it returns or the stream ends, whichever comes first: a
    session that waits for a write or for its throttle learns that its link died as soon as
    gRPC does, and raises why (the stream's status)."""
    task = asyncio.ensure_future(work)
    ended = asyncio.ensure_future(call.code())
    try:
        await asyncio.wait((task, ended), return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        await read_reply(call)  # the stream ended first: raises its error
        raise ConnectionError("the transfer stream ended")
    finally:
        task.cancel()
        ended.cancel()
        await asyncio.gather(task, ended, return_exceptions=True)


async def exchange(call: TransferCall, request: pb.TransferRequest) -> pb.TransferReply:
    """Send one request of a transfer stream and read its answer."""
    await call.write(request)
    return await read_reply(call)


async def read_reply(call: TransferCall) -> pb.TransferReply:
    """The receiver's answer to the oldest request not yet answered."""
    reply = await call.read()
    if reply is grpc.aio.EOF:  # type: ignore[attr-defined]
        raise ConnectionError("receiver closed the transfer stream")
    assert isinstance(reply, pb.TransferReply)
    return reply


def to_proto(batch: OriginBatch) -> pb.TransferBatch:
    """The batch, its points as columns."""
    columns = to_columns(batch.rows)
    return pb.TransferBatch(after=batch.after, upto=batch.upto, seqs=batch.seqs, columns=columns)


def from_proto(batch: pb.TransferBatch) -> OriginBatch:
    """The batch a sender sent; `ValueError` unless its seqs run, in order, in (after, upto]."""
    check_batch(batch)
    seqs = list(batch.seqs)
    rows = from_columns(batch.columns)
    if len(seqs) != len(rows):
        raise ValueError(f"{len(seqs)} seqs for {len(rows)} points")
    if batch.upto < batch.after:
        raise ValueError(f"it ends at seq {batch.upto}, before it starts after {batch.after}")
    if seqs and not (batch.after < seqs[0] and seqs[-1] <= batch.upto):
        raise ValueError(f"seqs {seqs[0]}..{seqs[-1]} outside ({batch.after}, {batch.upto}]")
    if seqs != sorted(seqs):
        raise ValueError("seqs out of order")
    return OriginBatch(after=batch.after, upto=batch.upto, seqs=seqs, rows=rows)
