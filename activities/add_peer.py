"""The add-peer steps as activities: create the new replica, have the peers open channels to
it, wait for it to catch up, activate it. Why each is safe to retry: `node_calls`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import grpc
from temporalio import activity

from activities.keep_alive import heartbeat
from activities.node_calls import (
    POLL,
    QUICK_PATIENCE_S,
    NodeCalls,
    deadline,
    unreachable,
)
from contracts.activity_models import (
    ChannelsInput,
    CreateLocalPeerInput,
    Peer,
    SetActiveInput,
    StepResult,
    TransferProgress,
    WaitTransferInput,
)
from protos import air_node_pb2 as pb
from runtime.backoff import Backoff
from runtime.clients import RPC_TIMEOUT_S


class AddPeerActivities:
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
            heartbeat(progress.model_dump(mode="json"))
            slice_s = min(step.slice_s, QUICK_PATIENCE_S) if step.quick else step.slice_s
            if progress.complete or progress.elapsed_s >= slice_s:
                return progress
            await backoff.sleep()

    async def _check_transfer(self, step: WaitTransferInput) -> TransferProgress:
        request = pb.CheckTransferCompleteRequest(region=step.region, target=step.target)
        timeout = deadline(step)
        progress = TransferProgress(complete=True, lag=0)
        for receiver in step.receivers:
            try:
                reply = await self.nodes.call(
                    receiver, lambda stub: stub.CheckTransferComplete(request, timeout=timeout)
                )
            except grpc.aio.AioRpcError as e:
                if not unreachable(e):
                    raise
                progress.unreachable.append(receiver.node_id)  # never counts as complete
                progress.complete = False
                continue
            progress.complete &= reply.complete
            progress.lag += reply.total_lag
            if not reply.installed:
                progress.awaiting_snapshot.append(receiver.node_id)
                progress.snapshot_received += reply.snapshot_received
                if reply.snapshot_limit_auto or reply.snapshot_limit_bytes_per_s:
                    progress.snapshot_limit = reply.snapshot_limit_bytes_per_s
                    progress.snapshot_limit_auto = reply.snapshot_limit_auto
            for origin, seqs in reply.lag.items():
                progress.behind[origin] = progress.behind.get(origin, 0) + seqs
        return progress

    @activity.defn
    async def activate_peer(self, step: SetActiveInput) -> StepResult:
        """Let the new replica take user writes. Retry-safe: a flag set twice."""
        return await set_active(self.nodes, step)

    def all(self) -> list[Callable[..., Awaitable[object]]]:
        return [
            self.create_local_peer,
            self.notify_peers_to_create_channels,
            self.wait_transfer_complete,
            self.activate_peer,
        ]


async def set_active(nodes: NodeCalls, step: SetActiveInput) -> StepResult:
    """SetActive, the step both adding (activate) and removing (inactivate) take."""
    request = pb.SetActiveRequest(
        region=step.region, active=step.active, for_deletion=step.for_deletion
    )
    timeout = deadline(step)
    return await nodes.step(
        step,
        nodes.membership(
            step.node,
            lambda stub: stub.SetActive(request, timeout=timeout),
            step.skip_if_down_after_s,
            step.quick,
        ),
    )
