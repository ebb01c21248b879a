"""AddPeerWorkflow: the destination's `createLocalPeer`, then the source's `addRemotePeer`."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ApplicationError, is_cancelled_exception

from activities.add_peer import AddPeerActivities as Add
from activities.remove_peer import RemovePeerActivities as Remove
from contracts.activity_models import (
    ChannelsInput,
    CreateLocalPeerInput,
    Peer,
    SetActiveInput,
    StepResult,
)
from contracts.errors import InvalidRequest
from contracts.killpoints import KillPoint as K
from contracts.models import AddPeerInput, AddPeerResult, Phase
from planning.placement import Addition, Removal, plan_addition
from workflows.machinery.change import MembershipChange
from workflows.machinery.failures import ADD_PEER_FAILED, root_cause
from workflows.machinery.options import BOUNDARY, MEMBERSHIP, within
from workflows.machinery.steps import Steps, ids
from workflows.machinery.transfer import wait_transfer
from workflows.remove_peer import remove_peer_steps


async def add_peer_steps(steps: Steps, a: Addition) -> dict[int, int]:
    """The addition, step by step, as docs/design.md section 4 lists it; returns the target."""
    new = a.new
    others = [p for p in a.live_peers() if p != a.coordinator]

    # 1. the new replica, inactive from the start (DESTINATION_CREATE_LOCAL_PEER on the node)
    await create_local_peer(steps, new, [*a.peers, new], a.down_timeout_s)
    # 2. inactivate it: a confirmation, kept as the source's step
    await inactivate(steps, new, a.down_timeout_s)
    # 3. the others create channels to it (ORIGINAL_ADD_PEER_DONE on each); the coordinator's
    #    channel sends a snapshot first
    await create_channels(steps, new, others, a.coordinator, K.COORDINATOR_ADD_PEER_TRANSITION)
    # 4. capture the target once, then wait until the new peer has applied it
    target = await steps.capture_target(a.live_peers())
    await wait_transfer(
        steps, Phase.TRANSFERRING, [new], target, a.down_timeout_s, cancellable=True
    )
    # 5. activate it (DESTINATION_ADD_PEER_DONE on the node)
    await activate(steps, new, K.COORDINATOR_ADD_PEER_DONE, a.down_timeout_s)
    return target


async def create_local_peer(
    steps: Steps, node: Peer, peers: list[Peer], down_timeout_s: float
) -> StepResult:
    return await steps.step(
        Phase.CREATING_LOCAL_PEER,
        Add.create_local_peer,
        CreateLocalPeerInput(region=steps.region, node=node, peers=peers),
        f"create region {steps.region} on node {node.node_id}, inactive, peers {ids(peers)}",
        # the first side effect: the plan is in history before it
        within(BOUNDARY, down_timeout_s),
    )


async def inactivate(steps: Steps, node: Peer, down_timeout_s: float) -> StepResult:
    return await steps.step(
        Phase.INACTIVATING_NEW_PEER,
        Remove.inactivate_peer,
        SetActiveInput(region=steps.region, node=node, active=False),
        f"inactivate node {node.node_id}",
        within(MEMBERSHIP, down_timeout_s),
    )


async def create_channels(
    steps: Steps, target: Peer, peers: list[Peer], coordinator: Peer, kill_after: K
) -> StepResult:
    return await steps.step(
        Phase.CREATING_CHANNELS,
        Add.notify_peers_to_create_channels,
        ChannelsInput(
            region=steps.region,
            target=target,
            peers=peers,
            coordinator=coordinator,
            kill_after=kill_after,
        ),
        f"nodes {ids(peers)} create channels to node {target.node_id} "
        f"(snapshot from node {coordinator.node_id})",
    )


async def activate(steps: Steps, node: Peer, kill_after: K, down_timeout_s: float) -> StepResult:
    return await steps.step(
        Phase.ACTIVATING,
        Add.activate_peer,
        SetActiveInput(region=steps.region, node=node, active=True, kill_after=kill_after),
        f"activate node {node.node_id}",
        within(MEMBERSHIP, down_timeout_s),
    )


async def add_or_roll_back(steps: Steps, a: Addition) -> dict[int, int]:
    """The addition; on failure or cancellation, the new peer removed the safe way (retried
    until done) and the error raised again: a failed addition as `AddPeerFailed`."""
    try:
        return await add_peer_steps(steps, a)
    except (asyncio.CancelledError, Exception) as e:
        steps.reporter.enter(Phase.ROLLING_BACK)
        await remove_peer_steps(steps, Removal(a.region, a.new, a.peers, a.down_timeout_s, True))
        steps.reporter.enter(Phase.ROLLED_BACK, f"rolled back: {_reason(e)}")
        if is_cancelled_exception(e):
            raise
        raise ApplicationError(
            f"adding node {a.new.node_id} to region {a.region} failed and was rolled "
            f"back: {_reason(e)}",
            type=ADD_PEER_FAILED,
            non_retryable=True,
        ) from e


def _reason(error: BaseException) -> str:
    return "cancelled" if is_cancelled_exception(error) else root_cause(error)


# a membership change finishes on the build that started it
@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)
class AddPeerWorkflow(MembershipChange):
    kind = "add-peer"

    @workflow.run
    async def run(self, req: AddPeerInput) -> AddPeerResult:
        self.reporter.begin(req.region, [req.new_peer], req.stall_after_s)
        steps = Steps(self.reporter, req.region)
        try:
            addition = plan_addition(await steps.describe(), req, workflow.random())
        except InvalidRequest as e:
            raise await self.verdict.refuse(e) from None
        self.verdict.accept(
            f"add node {req.new_peer} to region {req.region} "
            f"(snapshot from node {addition.coordinator.node_id})"
        )
        target = await add_or_roll_back(steps, addition)
        self.reporter.enter(
            Phase.DONE, f"node {req.new_peer} is an active replica of region {req.region}"
        )
        return addition_result(addition, target)


def addition_result(a: Addition, target: dict[int, int]) -> AddPeerResult:
    return AddPeerResult(
        region=a.region,
        new_peer=a.new.node_id,
        coordinator=a.coordinator.node_id,
        peers=sorted([*(p.node_id for p in a.peers), a.new.node_id]),
        target=target,
    )
