"""The membership activities: a replica created, activated or inactivated, released and
deleted; the peers' channels to a replica created or dropped. An addition and a removal are
each a sequence of these (workflows/machinery/addition.py, removal.py). Why each is safe to
retry: `node_calls`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from temporalio import activity

from activities.keep_alive import heartbeat
from activities.node_calls import POLL, QUICK_PATIENCE_S, NodeCalls, NotQuick, deadline, skipped
from contracts.activity_models import (
    ChannelsInput,
    CreateLocalPeerInput,
    Peer,
    ReleaseInput,
    SetActiveInput,
    StepResult,
)
from protos import air_node_pb2 as pb
from runtime.backoff import Backoff
from runtime.clients import RPC_TIMEOUT_S


class MembershipActivities:
    def __init__(self, nodes: NodeCalls) -> None:
        self.nodes = nodes

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
        return await self.nodes.step(
            step,
            self.nodes.membership(
                step.node, lambda stub: stub.CreateLocalPeer(request, timeout=RPC_TIMEOUT_S)
            ),
        )

    @activity.defn
    async def activate_peer(self, step: SetActiveInput) -> StepResult:
        """Let the new replica take user writes. Retry-safe: a flag set twice."""
        return await self._set_active(step)

    @activity.defn
    async def inactivate_peer(self, step: SetActiveInput) -> StepResult:
        """Set a replica inactive (for deletion, when leaving). Retry-safe: a flag set twice."""
        return await self._set_active(step)

    async def _set_active(self, step: SetActiveInput) -> StepResult:
        request = pb.SetActiveRequest(
            region=step.region, active=step.active, for_deletion=step.for_deletion
        )
        timeout = deadline(step)
        return await self.nodes.step(
            step,
            self.nodes.membership(
                step.node,
                lambda stub: stub.SetActive(request, timeout=timeout),
                step.skip_if_down_after_s,
                step.quick,
            ),
        )

    @activity.defn
    async def notify_peers_to_create_channels(self, step: ChannelsInput) -> StepResult:
        """Every peer creates its channel to the new peer; the coordinator's last, a snapshot.

        The coordinator goes last, as in IoTDB, so the others' channels exist before the
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
                result = await self._create_channel(step.region, sender, target, snapshot)
                changed |= result.changed
            return StepResult(changed=changed, message=f"{len(senders)} channel(s) to the new peer")

        return await self.nodes.step(step, effect())

    async def _create_channel(
        self, region: int, sender: Peer, target: pb.Peer, snapshot: bool
    ) -> StepResult:
        request = pb.CreateChannelRequest(region=region, receiver=target, snapshot=snapshot)
        return await self.nodes.membership(
            sender, lambda stub: stub.CreateChannel(request, timeout=RPC_TIMEOUT_S)
        )

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
            self.create_local_peer,
            self.activate_peer,
            self.inactivate_peer,
            self.notify_peers_to_create_channels,
            self.notify_peers_to_drop_channels,
            self.wait_release,
            self.delete_local_peer,
        ]
