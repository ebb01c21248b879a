"""A removal, step by step: IoTDB's `removeRemotePeer`, then `deleteLocalPeer` on the leaving
node. RemovePeerWorkflow runs it alone; a migration and a reconstruction run it as a phase,
and an addition that failed runs it to take its new peer out again (`rollback.py`)."""

from __future__ import annotations

from temporalio import workflow

from contracts.killpoints import KillPoint
from contracts.models import Phase, RemovePeerResult
from planning.placement import Removal
from workflows.machinery import patches
from workflows.machinery.membership import (
    delete_local_peer,
    drop_channels,
    inactivate_for_deletion,
    wait_release,
    write_off,
)
from workflows.machinery.steps import Steps
from workflows.machinery.transfer import capture_target, catch_up, wait_transfer

# The remaining peers of a removal answer; one that stays down this long (a restart takes
# seconds) fails the catch-up of a leaving peer that is down.
SURVIVORS_DOWN_S = 60.0


async def remove_peer_steps(steps: Steps, removal: Removal) -> RemovePeerResult:
    """The removal, step by step, as docs/design.md section 4 lists it."""
    leaving, remaining, down = removal.leaving, removal.remaining, removal.down_timeout_s

    def kill(point: KillPoint) -> KillPoint | None:
        return None if removal.rollback else point  # a rollback runs no kill points

    skipped: list[str] = []
    leaving_max: int | None = None

    # 1. (REMOVE_PEER_COORDINATOR_INIT) the others drop their channels to the leaving peer
    #    (AFTER_NOTIFY_PEERS_TO_REMOVE_REPLICATE_CHANNEL)
    await drop_channels(
        steps,
        leaving,
        remaining,
        kill(KillPoint.REMOVE_PEER_COORDINATOR_INIT),
        kill(KillPoint.AFTER_NOTIFY_PEERS_TO_REMOVE_REPLICATE_CHANNEL),
        removal.rollback,
    )
    # asked here, after a regular activity (patches.py says why)
    unlinked = bool(removal.unlinked) and workflow.patched(patches.UNLINKED_CATCH_UP)
    # 2. it stops taking user writes (BEFORE_INACTIVATE, AFTER_INACTIVATE on the node;
    #    AFTER_INACTIVE_PEER)
    inactive = await inactivate_for_deletion(
        steps, leaving, down, kill(KillPoint.AFTER_INACTIVE_PEER)
    )
    if inactive.skipped:
        skipped += ["inactivate", "drain", "release", "delete"]
        # a channel carries only its sender's writes: the remaining peers first hold the same
        # prefix of the leaving peer's, the longest any of them holds (CATCHING_UP)
        if workflow.patched(patches.CATCH_UP):
            await catch_up(steps, leaving, remaining, SURVIVORS_DOWN_S)
        # back, it may not drain what it never replicated into the remaining replicas alone
        # (a replica added meanwhile would lack it): told so, it hands it to every member
        if workflow.patched(patches.WRITE_OFF):
            await write_off(steps, leaving, remaining)
    else:
        # 3. its channels drain: the others apply every write it acknowledged. A leaving node
        #    that restarted may have deleted its replica by itself already, once the others
        #    held all of its writes: then nothing is left to drain, and the release and the
        #    deletion find it gone
        target = await capture_target(steps, [leaving], [leaving.node_id], missing_ok=True)
        leaving_max = target.get(leaving.node_id, 0)
        linked = [p for p in remaining if p.node_id not in removal.unlinked]
        await wait_transfer(
            steps, Phase.HANDING_OFF, linked if unlinked else remaining, target, down
        )
        #    a peer it has no channel to (added while it was absent) takes its writes from
        #    the others, which now hold them all
        if unlinked:
            await catch_up(steps, leaving, remaining, SURVIVORS_DOWN_S)
        # 4. it releases every region resource (REMOVE_PEER_COORDINATOR_FINISH)
        released = await wait_release(
            steps, leaving, down, kill(KillPoint.REMOVE_PEER_COORDINATOR_FINISH)
        )
        # 5. its replica is deleted (BEFORE_DELETE, AFTER_DELETE on the node)
        deleted = await delete_local_peer(steps, leaving, down)
        skipped += [name for name, s in (("release", released), ("delete", deleted)) if s.skipped]

    applied = await capture_target(steps, remaining, [leaving.node_id])
    return removal_result(removal, skipped, leaving_max, applied.get(leaving.node_id, 0))


def removal_result(
    removal: Removal, skipped: list[str], leaving_max: int | None, applied: int
) -> RemovePeerResult:
    leaving = removal.leaving.node_id
    holders = [p.node_id for p in removal.remaining]
    if not skipped:
        message = (
            f"node {leaving} removed from region {removal.region}; all its writes are on {holders}"
        )
    else:
        message = (
            f"node {leaving} was down: skipped {', '.join(skipped)}. The remaining peers hold "
            f"its writes up to seq {applied}; any it acknowledged beyond that are lost unless "
            "it comes back: it then hands them to the region's members and deletes its stale "
            "replica by itself."
        )
    return RemovePeerResult(
        region=removal.region,
        peer=leaving,
        peers=holders,
        clean=not skipped,
        skipped_steps=skipped,
        leaving_max_assigned=leaving_max,
        applied_from_leaving=applied,
        message=message,
    )
