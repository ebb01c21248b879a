"""The sending end of a replication channel (the source's "air replication", a pipe).

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
from collections.abc import AsyncIterator

import grpc

from contracts.columns import from_columns, to_columns
from node.metrics import METRICS
from node.replica import ChannelState, Replica, channel_name
from node.snapshot import Held, Sent, snapshot_chunks
from node.store import OriginBatch, fetch_origin
from node.throttle import Throttles
from protos import air_node_pb2 as pb
from runtime.backoff import Backoff
from runtime.clients import NodeClients, NodeStub

log = logging.getLogger(__name__)
TransferCall = grpc.aio.StreamStreamCall[pb.TransferRequest, pb.TransferReply]

BATCH_POINTS = 20_000
# Batches sent and not yet answered: one overlaps the sender's read with the receiver's apply.
WINDOW = 2
# An idle channel sleeps until its replica changes (a write, a flag, an installed snapshot all
# notify); it also looks again after this long, as a safety net. Polling every second cost a
# node holding hundreds of regions most of a core; every 30 s, 6% of one at 1,000 regions
# (bench/idle.py), each look a query on a thread.
IDLE_WAIT_S = 300.0


class ReceiverNotReady(Exception):
    """The receiver awaits a snapshot that this (non-snapshot) channel does not send."""


class Channel:
    def __init__(
        self,
        replica: Replica,
        receiver_id: int,
        clients: NodeClients,
        batch_points: int = BATCH_POINTS,
        throttles: Throttles | None = None,
    ) -> None:
        self.replica = replica
        self.receiver_id = receiver_id
        self.clients = clients
        self.batch_points = batch_points
        self.throttles = throttles or Throttles()
        self.name = channel_name(replica.region, replica.node_id, receiver_id)
        self._task: asyncio.Task[None] | None = None
        self._columnar = False  # the receiver takes columns: it says so on every reply

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
            if self.replica.done_writing() and self.replica.max_assigned() == 0:
                self._finish_draining()  # it never took a user write: nothing to drain
                return
            if not self.replica.installed:
                await self.replica.wait_changed(IDLE_WAIT_S)
                continue
            try:
                await self._session(backoff)
            except (grpc.aio.AioRpcError, ReceiverNotReady, ConnectionError) as e:
                log.debug("%s: session ended: %s", self.name, _describe(e))
                await backoff.sleep()
            except Exception:
                log.exception("%s: session failed", self.name)
                await backoff.sleep()

    async def _session(self, backoff: Backoff) -> None:
        stub = self.clients.stub(self.state.receiver.address)
        call = stub.Transfer(None)  # None: requests go by call.write()
        try:
            acked = await self._handshake(stub, call)
            backoff.reset()
            await self._stream(call, acked)
        finally:
            call.cancel()

    async def _handshake(self, stub: NodeStub, call: TransferCall) -> int:
        hello = pb.TransferRequest(
            hello=pb.TransferHello(region=self.replica.region, sender=self.replica.node_id)
        )
        reply = await exchange(call, hello)
        if not reply.installed:
            if not self.state.snapshot:
                raise ReceiverNotReady(f"node {self.receiver_id} awaits a snapshot")
            await self._send_snapshot(stub, Held.of(reply))
            reply = await exchange(call, hello)
            if not reply.installed:
                raise ReceiverNotReady(f"node {self.receiver_id} did not install the snapshot")
        return self._acknowledge(reply)

    async def _stream(self, call: TransferCall, acked: int) -> None:
        """Send batches after `acked`, up to WINDOW unanswered: the next is read and sent while
        the receiver applies the last. A batch follows the one sent before it, so the receiver
        applies them in order; after any failure the next session starts from its answer."""
        store = self.replica.store
        assert store is not None
        sent, in_flight = acked, 0
        while self.state.status == "RUNNING":
            # asked before the query: a write committing during it would be missed by it, and
            # this channel stopped one write short (seen: a removal waiting for ever)
            changed = self.replica.changes()
            done_writing = self.replica.done_writing()
            if in_flight < WINDOW:
                batch = await asyncio.to_thread(
                    store.query, fetch_origin, self.replica.node_id, sent, self.batch_points
                )
                if batch.upto > sent:
                    request = pb.TransferRequest(batch=to_proto(batch, self._columnar))
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
            await self.replica.wait_changed(IDLE_WAIT_S, since=changed)

    def _acknowledge(self, reply: pb.TransferReply) -> int:
        acked = reply.applied.get(self.replica.node_id, 0)
        self.state.acked = acked
        self._columnar = reply.columnar
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

    async def _send_snapshot(self, stub: NodeStub, held: Held) -> None:
        """Send the chunks of a held view the receiver does not hold (`held`)."""
        began = time.monotonic()
        view = await self.replica.hold_view()
        held_at = time.monotonic()
        counts = self.replica.snapshots_sent.setdefault(self.receiver_id, Sent())
        before = Sent(counts.sent, counts.skipped)
        try:
            chunks = snapshot_chunks(view, self.replica.region, self.replica.node_id, held, counts)
            reply = await stub.InstallSnapshot(self._counted(chunks, counts))
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

    async def _counted(
        self, chunks: AsyncIterator[pb.SnapshotChunk], counts: Sent
    ) -> AsyncIterator[pb.SnapshotChunk]:
        """The chunks once the throttles let them through, counted then: a chunk held by a
        throttle is not sent yet (a test holding a transfer reads that it is held)."""
        async for chunk in chunks:
            size = len(chunk.data)  # once: each read of the field copies the chunk
            await self.throttles.acquire_snapshot(size)
            limit, chunk.limit_auto = self.throttles.snapshot_limit()
            chunk.limit_bytes_per_s = limit or 0.0  # the receiver's progress shows it
            counts.sent += size
            METRICS.transfer_bytes.labels(region=self.replica.region).inc(size)
            yield chunk


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


def to_proto(batch: OriginBatch, columnar: bool) -> pb.TransferBatch:
    """The batch as columns, or as one Point a point for a receiver that takes no columns
    (a node of an earlier build)."""
    if columnar:
        columns = to_columns(batch.rows)
        return pb.TransferBatch(
            after=batch.after, upto=batch.upto, seqs=batch.seqs, columns=columns
        )
    return pb.TransferBatch(
        after=batch.after,
        upto=batch.upto,
        seqs=batch.seqs,
        points=[pb.Point(series=s, timestamp=t, value=v) for s, t, v in batch.rows],
    )


def from_proto(batch: pb.TransferBatch) -> OriginBatch:
    """The batch a sender sent; `ValueError` unless its seqs run, in order, in (after, upto]."""
    seqs = list(batch.seqs)
    rows = from_columns(batch.columns) + [(p.series, p.timestamp, p.value) for p in batch.points]
    if len(seqs) != len(rows):
        raise ValueError(f"{len(seqs)} seqs for {len(rows)} points")
    if batch.upto < batch.after:
        raise ValueError(f"it ends at seq {batch.upto}, before it starts after {batch.after}")
    if seqs and not (batch.after < seqs[0] and seqs[-1] <= batch.upto):
        raise ValueError(f"seqs {seqs[0]}..{seqs[-1]} outside ({batch.after}, {batch.upto}]")
    if seqs != sorted(seqs):
        raise ValueError("seqs out of order")
    return OriginBatch(after=batch.after, upto=batch.upto, seqs=seqs, rows=rows)


def _describe(e: Exception) -> str:
    if isinstance(e, grpc.aio.AioRpcError):
        return f"{e.code().name}: {e.details()}"
    return str(e)
