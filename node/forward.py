"""Forwarding writes to a peer: a dead origin's (the catch-up before a removal), or this node's
own when it retires a replica removed behind its back.

A channel carries only its sender's own writes, so when a node dies, survivors that applied
different prefixes of its writes would stay different for good. Before the dead peer is removed,
the survivor holding the longest prefix forwards the rest to each other survivor, through the
receiver's ordinary Transfer stream (its hello names the origin), which applies each seq at most
once: a forward repeated after any crash sends again from where the receiver stands.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import grpc

from node.breaks import stream_ended
from node.channel import exchange, to_proto
from node.compat import BelowFloor, check_receiver
from node.errors import NodeError
from node.replica import PeerInfo, Replica
from node.store import fetch_origin
from node.throttle import Throttle
from protos import air_node_pb2 as pb
from runtime.clients import RPC_TIMEOUT_S, NodeClients
from runtime.refusals import refused

# A call forwards this long at most, then reports: the caller heartbeats and asks again.
SLICE_S = 5.0


@dataclass(frozen=True)
class Forwarded:
    applied: int  # the receiver's applied seq of the origin, as it last acknowledged
    points: int  # points sent by this call


async def forward_origin(
    replica: Replica,
    origin: int,
    receiver: PeerInfo,
    upto: int,
    clients: NodeClients,
    throttle: Throttle,
    batch_points: int,
) -> Forwarded:
    """Send `receiver` the writes of `origin` it lacks, up to `upto` (or for SLICE_S).

    Idempotent: it reads what the receiver has applied first and sends only what follows;
    the receiver skips any seq it holds, so a repeat after a crash of either end is harmless.
    """
    store = replica.store
    if store is None:
        raise NodeError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"region {replica.region} on node {replica.node_id} awaits its snapshot: "
            "it has no writes to forward",
        )
    if origin in (0, replica.node_id) or receiver.node_id == replica.node_id:
        raise NodeError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"node {replica.node_id} forwards another node's writes to a third node "
            f"(origin {origin}, receiver {receiver.node_id}); its own go by its channels",
        )
    held = store.applied_of(origin)
    if held < upto:
        raise NodeError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"node {replica.node_id} holds node {origin}'s writes of region {replica.region} "
            f"up to seq {held}, not {upto}",
        )
    hello = pb.TransferHello(region=replica.region, sender=replica.node_id, origin=origin)
    return await _send(replica, hello, receiver, upto, clients, throttle, batch_points)


async def hand_over(
    replica: Replica,
    receiver: PeerInfo,
    clients: NodeClients,
    throttle: Throttle,
    batch_points: int,
) -> Forwarded:
    """Send `receiver` the writes of this node's own origin it lacks (or for SLICE_S): a
    replica removed while this node could not be told retires so (node/retirement.py).

    Idempotent, as `forward_origin` is: it sends from what the receiver has applied."""
    if replica.store is None:
        return Forwarded(applied=0, points=0)  # awaiting a snapshot, it took no write
    hello = pb.TransferHello(
        region=replica.region, sender=replica.node_id, origin=replica.node_id, retiring=True
    )
    upto = replica.max_assigned()
    return await _send(replica, hello, receiver, upto, clients, throttle, batch_points)


async def _send(
    replica: Replica,
    hello: pb.TransferHello,
    receiver: PeerInfo,
    upto: int,
    clients: NodeClients,
    throttle: Throttle,
    batch_points: int,
) -> Forwarded:
    store = replica.store
    assert store is not None
    origin = hello.origin
    # requests go by call.write(); a deadline, as every call's: the slice and an answer
    call = clients.stub(receiver.address).Transfer(None, timeout=SLICE_S + RPC_TIMEOUT_S)
    sent = 0
    opened = None
    try:
        reply = await exchange(call, pb.TransferRequest(hello=hello))
        opened = time.monotonic()
        if not reply.installed:
            raise NodeError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"node {receiver.node_id} awaits a snapshot of region {replica.region}",
            )
        check_receiver(reply, receiver.node_id)
        acked = reply.applied.get(origin, 0)
        ends = time.monotonic() + SLICE_S
        while acked < upto and time.monotonic() < ends:
            batch = await asyncio.to_thread(store.query, fetch_origin, origin, acked, batch_points)
            request = pb.TransferRequest(batch=to_proto(batch))
            await throttle.acquire(request.ByteSize())
            acked = (await exchange(call, request)).applied.get(origin, 0)
            sent += len(batch.seqs)
        return Forwarded(applied=acked, points=sent)
    except grpc.aio.AioRpcError as e:
        if opened is not None:
            name = f"forward of region {replica.region} origin {origin} to node {receiver.node_id}"
            stream_ended("forward", "sender", name, opened, e)
        # the receiver's refusal is passed on as it is; any other failure: it cannot be reached
        code = e.code()
        status = code if refused(e) else grpc.StatusCode.UNAVAILABLE
        details = f"forwarding to node {receiver.node_id}: {code.name}: {e.details()}"
        raise NodeError(status, details) from e
    except ConnectionError as e:
        raise NodeError(grpc.StatusCode.UNAVAILABLE, str(e)) from e
    except BelowFloor as e:
        raise NodeError(grpc.StatusCode.FAILED_PRECONDITION, str(e)) from e
    finally:
        call.cancel()
