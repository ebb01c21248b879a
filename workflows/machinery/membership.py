"""The membership steps on one region: each builds its activity's input, names the step for the
UI and picks its options. An addition and a removal are sequences of these."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from activities.membership import MembershipActivities
from contracts.activity_models import (
    ChannelsInput,
    CreateLocalPeerInput,
    Peer,
    ReleaseInput,
    SetActiveInput,
    StepResult,
)
from contracts.killpoints import KillPoint
from contracts.models import Phase
from workflows.machinery.options import BOUNDARY, MEMBERSHIP, ROLLBACK, skippable, within
from workflows.machinery.steps import Steps, ids


async def create_local_peer(
    steps: Steps, node: Peer, peers: list[Peer], down_timeout_s: float
) -> StepResult:
    return await steps.step(
        Phase.CREATING_LOCAL_PEER,
        MembershipActivities.create_local_peer,
        CreateLocalPeerInput(region=steps.region, node=node, peers=peers),
        f"create region {steps.region} on node {node.node_id}, inactive, peers {ids(peers)}",
        # the first side effect: the plan is in history before it
        within(BOUNDARY, down_timeout_s),
    )


async def inactivate_new_peer(steps: Steps, node: Peer, down_timeout_s: float) -> StepResult:
    return await steps.step(
        Phase.INACTIVATING_NEW_PEER,
        MembershipActivities.inactivate_peer,
        SetActiveInput(region=steps.region, node=node, active=False),
        f"inactivate node {node.node_id}",
        within(MEMBERSHIP, down_timeout_s),
    )


async def create_channels(
    steps: Steps, target: Peer, peers: list[Peer], coordinator: Peer, kill_after: KillPoint
) -> StepResult:
    return await steps.step(
        Phase.CREATING_CHANNELS,
        MembershipActivities.notify_peers_to_create_channels,
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


async def activate(
    steps: Steps, node: Peer, kill_after: KillPoint, down_timeout_s: float
) -> StepResult:
    return await steps.step(
        Phase.ACTIVATING,
        MembershipActivities.activate_peer,
        SetActiveInput(region=steps.region, node=node, active=True, kill_after=kill_after),
        f"activate node {node.node_id}",
        within(MEMBERSHIP, down_timeout_s),
    )


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
        MembershipActivities.notify_peers_to_drop_channels,
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
        MembershipActivities.notify_peers_to_drop_channels,
        ChannelsInput(region=steps.region, target=target, peers=peers, write_off=True),
        f"nodes {ids(peers)} write off node {target.node_id}'s writes not replicated",
        ROLLBACK,  # retried until done: the region must not take them back later
    )


async def inactivate_for_deletion(
    steps: Steps, node: Peer, down_timeout_s: float, kill_after: KillPoint | None
) -> StepResult:
    step = SetActiveInput(
        region=steps.region,
        node=node,
        active=False,
        for_deletion=True,
        skip_if_down_after_s=down_timeout_s,
        kill_after=kill_after,
    )
    summary = f"inactivate node {node.node_id} for deletion"
    phase = Phase.INACTIVATING_LEAVING_PEER
    return await _on_leaving_node(steps, phase, MembershipActivities.inactivate_peer, step, summary)


async def wait_release(
    steps: Steps, node: Peer, down_timeout_s: float, kill_after: KillPoint | None
) -> StepResult:
    step = ReleaseInput(
        region=steps.region, node=node, skip_if_down_after_s=down_timeout_s, kill_after=kill_after
    )
    summary = f"wait until node {node.node_id} released region {steps.region}"
    return await _on_leaving_node(
        steps, Phase.RELEASING, MembershipActivities.wait_release, step, summary
    )


async def delete_local_peer(steps: Steps, node: Peer, down_timeout_s: float) -> StepResult:
    step = ReleaseInput(region=steps.region, node=node, skip_if_down_after_s=down_timeout_s)
    summary = f"delete region {steps.region} on node {node.node_id}"
    return await _on_leaving_node(
        steps, Phase.DELETING, MembershipActivities.delete_local_peer, step, summary
    )


async def _on_leaving_node(
    steps: Steps,
    phase: Phase,
    activity: Callable[[Any, Any], Awaitable[StepResult]],
    step: SetActiveInput | ReleaseInput,
    summary: str,
) -> StepResult:
    """A step on a leaving node, which may be down: it waits `skip_if_down_after_s` for the
    node, then skips it."""
    assert step.skip_if_down_after_s is not None
    return await steps.step(phase, activity, step, summary, skippable(step.skip_if_down_after_s))
