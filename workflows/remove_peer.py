"""RemovePeerWorkflow: the source's `removeRemotePeer`, then the leaving `deleteLocalPeer`."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import VersioningBehavior

from activities.remove_peer import RemovePeerActivities as Remove
from contracts.activity_models import ChannelsInput, Peer, ReleaseInput, SetActiveInput, StepResult
from contracts.errors import InvalidRequest
from contracts.killpoints import KillPoint
from contracts.killpoints import KillPoint as K
from contracts.models import Phase, RemovePeerInput, RemovePeerResult
from planning.placement import Removal, plan_removal
from workflows.machinery import patches
from workflows.machinery.change import MembershipChange, finish_even_if_cancelled
from workflows.machinery.options import BOUNDARY, ROLLBACK, skippable
from workflows.machinery.steps import Steps, ids
from workflows.machinery.transfer import wait_transfer

# The remaining peers of a removal answer; one that stays down this long (a restart takes
# seconds) fails the catch-up of a leaving peer that is down.
SURVIVORS_DOWN_S = 60.0


async def remove_peer_steps(steps: Steps, r: Removal) -> RemovePeerResult:
    """The removal, step by step, as docs/design.md section 4 lists it."""
    leaving, down = r.leaving, r.down_timeout_s

    def kill(point: K) -> K | None:
        return None if r.rollback else point  # a rollback runs no kill points

    skipped: list[str] = []
    leaving_max: int | None = None

    # 1. (REMOVE_PEER_COORDINATOR_INIT) the others drop their channels to the leaving peer
    #    (AFTER_NOTIFY_PEERS_TO_REMOVE_REPLICATE_CHANNEL)
    await drop_channels(
        steps,
        leaving,
        r.remaining,
        kill(K.REMOVE_PEER_COORDINATOR_INIT),
        kill(K.AFTER_NOTIFY_PEERS_TO_REMOVE_REPLICATE_CHANNEL),
        r.rollback,
    )
    # 2. it stops taking user writes (BEFORE_INACTIVATE, AFTER_INACTIVATE on the node;
    #    AFTER_INACTIVE_PEER)
    inactive = await inactivate_for_deletion(steps, leaving, down, kill(K.AFTER_INACTIVE_PEER))
    if inactive.skipped:
        skipped += ["inactivate", "drain", "release", "delete"]
        # a channel carries only its sender's writes: the remaining peers first hold the same
        # prefix of the leaving peer's, the longest any of them holds (CATCHING_UP)
        if workflow.patched(patches.CATCH_UP):
            await steps.catch_up(leaving, r.remaining, SURVIVORS_DOWN_S)
        # back, it may not drain what it never replicated into the remaining replicas alone
        # (a replica added meanwhile would lack it): told so, it hands it to every member
        if workflow.patched(patches.WRITE_OFF):
            await write_off(steps, leaving, r.remaining)
    else:
        # 3. its channels drain: the others apply every write it acknowledged. A leaving node
        #    that restarted may have deleted its replica by itself already, once the others
        #    held all of its writes: then nothing is left to drain, and the release and the
        #    deletion find it gone
        target = await steps.capture_target([leaving], origins=[leaving.node_id], missing_ok=True)
        leaving_max = target.get(leaving.node_id, 0)
        await wait_transfer(steps, Phase.HANDING_OFF, r.remaining, target, down)
        # 4. it releases every region resource (REMOVE_PEER_COORDINATOR_FINISH)
        released = await wait_release(steps, leaving, down, kill(K.REMOVE_PEER_COORDINATOR_FINISH))
        # 5. its replica is deleted (BEFORE_DELETE, AFTER_DELETE on the node)
        deleted = await delete_local_peer(steps, leaving, down)
        skipped += [name for name, s in (("release", released), ("delete", deleted)) if s.skipped]

    applied = await steps.capture_target(r.remaining, origins=[leaving.node_id])
    return _result(r, skipped, leaving_max, applied.get(leaving.node_id, 0))


async def drop_channels(
    steps: Steps,
    target: Peer,
    peers: list[Peer],
    kill_before: KillPoint | None,
    kill_after: KillPoint | None,
    rollback: bool = False,
) -> StepResult:
    return await steps.step(
        Phase.DROPPING_CHANNELS,
        Remove.notify_peers_to_drop_channels,
        ChannelsInput(
            region=steps.region,
            target=target,
            peers=peers,
            kill_before=kill_before,
            kill_after=kill_after,
        ),
        f"nodes {ids(peers)} drop their channels to node {target.node_id}",
        # the removal's first step: a migration's addition is in history before it
        ROLLBACK if rollback else BOUNDARY,
    )


async def write_off(steps: Steps, target: Peer, peers: list[Peer]) -> StepResult:
    return await steps.step(
        Phase.DROPPING_CHANNELS,
        Remove.notify_peers_to_drop_channels,
        ChannelsInput(region=steps.region, target=target, peers=peers, write_off=True),
        f"nodes {ids(peers)} write off node {target.node_id}'s writes not replicated",
        ROLLBACK,  # retried until done: the region must not take them back later
    )


async def inactivate_for_deletion(
    steps: Steps, node: Peer, down_timeout_s: float, kill_after: KillPoint | None
) -> StepResult:
    return await steps.step(
        Phase.INACTIVATING_LEAVING_PEER,
        Remove.inactivate_peer,
        SetActiveInput(
            region=steps.region,
            node=node,
            active=False,
            for_deletion=True,
            skip_if_down_after_s=down_timeout_s,
            kill_after=kill_after,
        ),
        f"inactivate node {node.node_id} for deletion",
        skippable(down_timeout_s),
    )


async def wait_release(
    steps: Steps, node: Peer, down_timeout_s: float, kill_after: KillPoint | None
) -> StepResult:
    return await steps.step(
        Phase.RELEASING,
        Remove.wait_release,
        ReleaseInput(
            region=steps.region,
            node=node,
            skip_if_down_after_s=down_timeout_s,
            kill_after=kill_after,
        ),
        f"wait until node {node.node_id} released region {steps.region}",
        skippable(down_timeout_s),
    )


async def delete_local_peer(steps: Steps, node: Peer, down_timeout_s: float) -> StepResult:
    return await steps.step(
        Phase.DELETING,
        Remove.delete_local_peer,
        ReleaseInput(region=steps.region, node=node, skip_if_down_after_s=down_timeout_s),
        f"delete region {steps.region} on node {node.node_id}",
        skippable(down_timeout_s),
    )


def _result(
    r: Removal, skipped: list[str], leaving_max: int | None, applied: int
) -> RemovePeerResult:
    leaving = r.leaving.node_id
    if not skipped:
        holders = [p.node_id for p in r.remaining]
        message = f"node {leaving} removed from region {r.region}; all its writes are on {holders}"
    else:
        message = (
            f"node {leaving} was down: skipped {', '.join(skipped)}. The remaining peers hold "
            f"its writes up to seq {applied}; any it acknowledged beyond that are lost unless "
            "it comes back: it then hands them to the region's members and deletes its stale "
            "replica by itself."
        )
    return RemovePeerResult(
        region=r.region,
        peer=leaving,
        peers=[p.node_id for p in r.remaining],
        clean=not skipped,
        skipped_steps=skipped,
        leaving_max_assigned=leaving_max,
        applied_from_leaving=applied,
        message=message,
    )


# a membership change finishes on the build that started it
@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)
class RemovePeerWorkflow(MembershipChange):
    kind = "remove-peer"

    @workflow.run
    async def run(self, req: RemovePeerInput) -> RemovePeerResult:
        self.reporter.begin(req.region, [req.peer], req.stall_after_s)
        steps = Steps(self.reporter, req.region)
        try:
            removal = plan_removal(await steps.describe(), req)
        except InvalidRequest as e:
            raise await self.verdict.refuse(e) from None
        self.verdict.accept(f"remove node {req.peer} from region {req.region}")
        # Once started, a removal is finished even if cancelled: half a removal helps no one.
        result, cancelled = await finish_even_if_cancelled(
            asyncio.ensure_future(remove_peer_steps(steps, removal))
        )
        if cancelled:
            result.message += " (cancelled after the removal had started: it was finished)"
        self.reporter.enter(Phase.DONE, result.message)
        return result
