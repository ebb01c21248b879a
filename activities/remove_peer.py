"""The remove-peer steps as activities: inactivate the leaving replica, have the peers drop
their channels to it (after bringing the survivors level when it is dead), wait until it has
released everything, delete it. Why each is safe to retry: `node_calls`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.add_peer import set_active
from activities.keep_alive import heartbeat, heartbeat_detail
from activities.node_calls import (
    POLL,
    QUICK_PATIENCE_S,
    NodeCalls,
    NotQuick,
    deadline,
    skipped,
    unreachable,
)
from contracts.activity_models import (
    CatchUpInput,
    ChannelsInput,
    Peer,
    ReleaseInput,
    SetActiveInput,
    StepResult,
)
from protos import air_node_pb2 as pb
from runtime.backoff import Backoff
from runtime.clients import RPC_TIMEOUT_S, not_found


class RemovePeerActivities:
    def __init__(self, nodes: NodeCalls) -> None:
        self.nodes = nodes

    @activity.defn
    async def inactivate_peer(self, step: SetActiveInput) -> StepResult:
        """Set a replica inactive (for deletion, when leaving). Retry-safe: a flag set twice."""
        return await set_active(self.nodes, step)

    @activity.defn
    async def catch_up_dead_origin(self, step: CatchUpInput) -> StepResult:
        """Bring every survivor to the longest prefix of the dead origin's writes any holds.

        The survivor holding the most forwards to each other survivor what it lacks
        (ForwardOrigin). Retry-safe: each attempt reads the survivors' applied vectors afresh
        and forwards only what a receiver lacks, which applies each seq at most once. A
        survivor down for `down_timeout_s` (counted across retries) fails the step.
        """
        down_since = heartbeat_detail("down_since")
        backoff = Backoff(*POLL)
        while True:
            try:
                return await self._catch_up(step)
            except grpc.aio.AioRpcError as e:
                if not unreachable(e):
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
                heartbeat({"down_since": down_since})
                await backoff.sleep()

    async def _catch_up(self, step: CatchUpInput) -> StepResult:
        request = pb.RegionRequest(region=step.region)
        timeout = deadline(step)
        replies = await asyncio.gather(
            *(self.nodes.stub(p).GetProgress(request, timeout=timeout) for p in step.survivors),
            return_exceptions=True,
        )
        held: dict[Peer, int] = {}
        for survivor, reply in zip(step.survivors, replies, strict=True):
            if not_found(reply):
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
            reply = await self.nodes.call(
                source, lambda stub: stub.ForwardOrigin(request, timeout=RPC_TIMEOUT_S)
            )
            heartbeat({"receiver": receiver.node_id, "applied": reply.applied, "upto": upto})
            if reply.applied >= upto:
                return

    @activity.defn
    async def notify_peers_to_drop_channels(self, step: ChannelsInput) -> StepResult:
        """Every peer drops its channel to the target (and with `write_off`, refuses what the
        target never replicated). Retry-safe: dropping what is gone, writing off what is."""

        async def effect() -> StepResult:
            changed = False
            request = pb.DropChannelRequest(
                region=step.region, receiver_id=step.target.node_id, write_off=step.write_off
            )
            for peer in step.peers:
                result = await self.nodes.membership(
                    peer, lambda stub: stub.DropChannel(request, timeout=RPC_TIMEOUT_S)
                )
                changed |= result.changed
            return StepResult(changed=changed, message=f"{len(step.peers)} peer(s) dropped")

        return await self.nodes.step(step, effect())

    @activity.defn
    async def wait_release(self, step: ReleaseInput) -> StepResult:
        """Wait until the leaving replica has released everything (polls, backing off).

        Read-only: retry-safe. A leaving node down for `skip_if_down_after_s` is skipped.
        """

        async def effect() -> StepResult:
            backoff = Backoff(*POLL)
            request = pb.RegionRequest(region=step.region)
            timeout = deadline(step)
            began = time.monotonic()
            while True:
                reply = await self.nodes.reachable(
                    step.node,
                    lambda stub: stub.GetReleaseStatus(request, timeout=timeout),
                    step.skip_if_down_after_s,
                    step.quick,
                )
                if reply is None:
                    return skipped(step.node, step.skip_if_down_after_s)
                if reply.released:
                    return StepResult(changed=reply.exists, message=reply.detail)
                if step.quick and time.monotonic() - began >= QUICK_PATIENCE_S:
                    raise NotQuick(f"node {step.node.node_id}: {reply.detail}")
                heartbeat({"detail": reply.detail})
                await backoff.sleep()

        return await self.nodes.step(step, effect())

    @activity.defn
    async def delete_local_peer(self, step: ReleaseInput) -> StepResult:
        """Delete the leaving replica. Retry-safe: the node renames the folder away first,
        and reports a replica already gone unchanged."""
        request = pb.RegionRequest(region=step.region)
        timeout = deadline(step)
        return await self.nodes.step(
            step,
            self.nodes.membership(
                step.node,
                lambda stub: stub.DeleteLocalPeer(request, timeout=timeout),
                step.skip_if_down_after_s,
                step.quick,
            ),
        )

    def all(self) -> list[Callable[..., Awaitable[object]]]:
        return [
            self.inactivate_peer,
            self.catch_up_dead_origin,
            self.notify_peers_to_drop_channels,
            self.wait_release,
            self.delete_local_peer,
        ]
