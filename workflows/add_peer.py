"""AddPeerWorkflow: the destination's `createLocalPeer`, then the source's `addRemotePeer`."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from temporalio import workflow
from temporalio.exceptions import ApplicationError, is_cancelled_exception

from workflows.common import MembershipWorkflow, invalid, region_peers, require_node, root_cause
from workflows.remove_peer import Removal, remove_peer_steps
from workflows.steps import Steps

with workflow.unsafe.imports_passed_through():
    from activities.models import Peer, RegionDescription
    from node.killpoints import KillPoint as K
    from workflows.models import AddPeerInput, AddPeerResult, Phase


@dataclass(frozen=True)
class Addition:
    region: int
    new: Peer
    peers: list[Peer]  # the region's peers before
    coordinator: Peer
    down_timeout_s: float


def choose_coordinator(
    description: RegionDescription, wanted: int | None, rng: random.Random, exclude: int = 0
) -> Peer:
    """A live, active holder: the one asked for, or one at random (the source's choice)."""
    live = [
        r
        for r in description.replicas
        if r.active and r.node_id not in description.unreachable and r.node_id != exclude
    ]
    if wanted is not None:
        if wanted not in {r.node_id for r in live}:
            raise invalid(
                f"coordinator node {wanted} is not a live, active holder of region "
                f"{description.region} (live holders: {sorted(r.node_id for r in live)})"
            )
        return require_node(description, wanted, "coordinator")
    if not live:
        raise invalid(f"region {description.region} has no live, active replica to copy from")
    chosen = rng.choice(sorted(live, key=lambda r: r.node_id))
    return Peer(node_id=chosen.node_id, address=chosen.address)


def plan_addition(
    description: RegionDescription, req: AddPeerInput, rng: random.Random, exclude: int = 0
) -> Addition:
    """Validate the request against the region as its holders describe it."""
    peers = region_peers(description)
    new = require_node(description, req.new_peer, "new peer")
    if req.new_peer in {p.node_id for p in peers} or description.replica(req.new_peer):
        raise invalid(f"node {req.new_peer} is already a peer of region {req.region}")
    if req.new_peer in description.unreachable:
        raise invalid(f"the new peer, node {req.new_peer}, cannot be reached")
    coordinator = choose_coordinator(description, req.coordinator, rng, exclude)
    return Addition(req.region, new, peers, coordinator, req.down_timeout_s)


async def add_peer_steps(wf: MembershipWorkflow, a: Addition) -> dict[int, int]:
    """The addition, step by step, as DESIGN.md section 5 lists it; returns the target."""
    steps, new = Steps(wf, a.region), a.new
    others = [p for p in a.peers if p != a.coordinator]

    # 1. the new replica, inactive from the start (DESTINATION_CREATE_LOCAL_PEER on the node)
    await steps.create_local_peer(new, [*a.peers, new])
    # 2. inactivate it: a confirmation, kept as the source's step
    await steps.inactivate(new)
    # 3. the others create channels to it (ORIGINAL_ADD_PEER_DONE on each); the coordinator's
    #    channel sends a snapshot first
    await steps.create_channels(new, others, a.coordinator, K.COORDINATOR_ADD_PEER_TRANSITION)
    # 4. capture the target once, then wait until the new peer has applied it
    target = await steps.capture_target(a.peers)
    await wf.wait_transfer(Phase.TRANSFERRING, [new], target, a.down_timeout_s)
    # 5. activate it (DESTINATION_ADD_PEER_DONE on the node)
    await steps.activate(new, K.COORDINATOR_ADD_PEER_DONE)
    return target


async def roll_back(wf: MembershipWorkflow, a: Addition) -> None:
    """Undo an addition: remove the new peer the safe way, retried until done."""
    wf.enter(Phase.ROLLING_BACK)
    removal = Removal(a.region, a.new, a.peers, a.down_timeout_s, rollback=True)
    await remove_peer_steps(wf, removal)


@workflow.defn
class AddPeerWorkflow(MembershipWorkflow):
    kind = "add-peer"

    @workflow.run
    async def run(self, req: AddPeerInput) -> AddPeerResult:
        self.begin(req.region, [req.new_peer])
        self.stall_after_s = req.stall_after_s
        description = await Steps(self, req.region).describe()
        addition = plan_addition(description, req, workflow.random())
        try:
            target = await add_peer_steps(self, addition)
        except (asyncio.CancelledError, Exception) as e:
            await roll_back(self, addition)
            self.enter(Phase.ROLLED_BACK, f"rolled back: {_reason(e)}")
            if is_cancelled_exception(e):
                raise
            raise ApplicationError(
                f"adding node {req.new_peer} to region {req.region} failed and was rolled "
                f"back: {_reason(e)}",
                type="AddPeerFailed",
                non_retryable=True,
            ) from e
        self.enter(Phase.DONE, f"node {req.new_peer} is an active replica of region {req.region}")
        return AddPeerResult(
            region=req.region,
            new_peer=req.new_peer,
            coordinator=addition.coordinator.node_id,
            peers=sorted([*(p.node_id for p in addition.peers), req.new_peer]),
            target=target,
        )


def _reason(error: BaseException) -> str:
    return "cancelled" if is_cancelled_exception(error) else root_cause(error)
