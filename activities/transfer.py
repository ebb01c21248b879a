"""The transfer activities: a target vector captured, the wait until receivers applied it, and
the survivors of a dead peer brought to the same prefix of its writes. Why each is safe to
retry: `node_calls`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.keep_alive import heartbeat
from activities.node_calls import (
    POLL,
    QUICK_PATIENCE_S,
    NodeCalls,
    NodeRefused,
    NotQuick,
    StillDown,
    deadline,
    until_answered,
)
from contracts.activity_models import (
    CaptureTargetInput,
    CatchUpInput,
    Peer,
    StepResult,
    TransferProgress,
    WaitTransferInput,
)
from contracts.errors import CATCH_UP_FAILED
from protos import air_node_pb2 as pb
from runtime.backoff import Backoff
from runtime.clients import RPC_TIMEOUT_S
from runtime.refusals import not_found, unreachable


class TransferActivities:
    def __init__(self, nodes: NodeCalls) -> None:
        self.nodes = nodes

    @activity.defn
    async def capture_target(self, step: CaptureTargetInput) -> dict[int, int]:
        """The target vector, captured once so a retried wait uses the same one.

        The componentwise max of the nodes' applied vectors (a node's own origin there is its
        max assigned seq). Read-only: a retry captures again, which is as good (the workflow
        records only the result it receives).
        """
        request = pb.RegionRequest(region=step.region)
        target: dict[int, int] = {}
        for node in step.nodes:
            try:
                progress = await self.nodes.call(
                    node, lambda stub: stub.GetProgress(request, timeout=RPC_TIMEOUT_S)
                )
            except NodeRefused as e:
                if step.missing_ok and not_found(e.__cause__):
                    continue  # no replica there: nothing of it to wait for
                raise
            for origin, seq in progress.applied.items():
                if step.origins is None or origin in step.origins:
                    target[origin] = max(target.get(origin, 0), seq)
        return target

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
    async def catch_up_dead_origin(self, step: CatchUpInput) -> StepResult:
        """Bring every survivor to the longest prefix of the dead origin's writes any holds.

        The survivor holding the most forwards to each other survivor what it lacks
        (ForwardOrigin). Retry-safe: each attempt reads the survivors' applied vectors afresh
        and forwards only what a receiver lacks, which applies each seq at most once. A
        survivor down for `down_timeout_s` (counted across retries) fails the step.
        """
        try:
            return await until_answered(
                lambda: self._catch_up(step), step.down_timeout_s, step.quick, "a survivor"
            )
        except StillDown as e:
            raise ApplicationError(
                f"region {step.region}: the survivors of node {step.origin} could not "
                f"be brought to the same prefix of its writes: {e.error.details()}",
                type=CATCH_UP_FAILED,
                non_retryable=True,
            ) from e

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
        holder = min((p for p, seq in held.items() if seq == top), key=lambda p: p.node_id)
        behind = sorted((p for p, seq in held.items() if seq < top), key=lambda p: p.node_id)
        origin = f"node {step.origin}'s writes"
        if not behind:
            return StepResult(message=f"every survivor holds {origin} up to seq {top}")
        if step.quick:
            raise NotQuick(f"nodes {[p.node_id for p in behind]} lack some of {origin}")
        for receiver in behind:
            await self._forward(step, holder, receiver, top)
        return StepResult(
            changed=True,
            message=f"nodes {[p.node_id for p in behind]} brought to seq {top} of {origin}, "
            f"from node {holder.node_id}",
        )

    async def _forward(self, step: CatchUpInput, holder: Peer, receiver: Peer, upto: int) -> None:
        """Ask `holder` to forward to `receiver` until it holds `upto`, heartbeating."""
        request = pb.ForwardOriginRequest(
            region=step.region,
            origin=step.origin,
            receiver=pb.Peer(node_id=receiver.node_id, address=receiver.address),
            upto=upto,
        )
        while True:
            reply = await self.nodes.call(
                holder, lambda stub: stub.ForwardOrigin(request, timeout=RPC_TIMEOUT_S)
            )
            heartbeat({"receiver": receiver.node_id, "applied": reply.applied, "upto": upto})
            if reply.applied >= upto:
                return

    def all(self) -> list[Callable[..., Awaitable[object]]]:
        return [self.capture_target, self.wait_transfer_complete, self.catch_up_dead_origin]
