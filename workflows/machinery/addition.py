"""An addition, step by step: IoTDB's `createLocalPeer` on the new node, then `addRemotePeer`.
AddPeerWorkflow runs it alone; a migration and a reconstruction run it as a phase."""

from __future__ import annotations

from contracts.killpoints import KillPoint
from contracts.models import AddPeerResult, Phase
from planning.placement import Addition
from workflows.machinery.membership import (
    activate,
    create_channels,
    create_local_peer,
    inactivate_new_peer,
)
from workflows.machinery.steps import Steps
from workflows.machinery.transfer import capture_target, wait_transfer


async def add_peer_steps(steps: Steps, addition: Addition) -> dict[int, int]:
    """The addition, step by step, as docs/design.md section 4 lists it; returns the target."""
    new, down = addition.new, addition.down_timeout_s
    others = [p for p in addition.live_peers() if p != addition.coordinator]

    # 1. the new replica, inactive from the start (DESTINATION_CREATE_LOCAL_PEER on the node)
    await create_local_peer(steps, new, [*addition.peers, new], down)
    # 2. inactivate it: a confirmation (IoTDB's coordinator takes this step too)
    await inactivate_new_peer(steps, new, down)
    # 3. the others create channels to it (ORIGINAL_ADD_PEER_DONE on each); the coordinator's
    #    channel sends a snapshot first
    await create_channels(
        steps, new, others, addition.coordinator, KillPoint.COORDINATOR_ADD_PEER_TRANSITION
    )
    # 4. capture the target once, then wait until the new peer has applied it; an absent
    #    peer's writes, which reach it from no channel, are the removal's to bring (a node
    #    declared dead that comes back sends the survivors more of them meanwhile)
    captured = await capture_target(steps, addition.live_peers())
    target = {o: seq for o, seq in captured.items() if o not in addition.absent}
    await wait_transfer(steps, Phase.TRANSFERRING, [new], target, down, cancellable=True)
    # 5. activate it (DESTINATION_ADD_PEER_DONE on the node)
    await activate(steps, new, KillPoint.COORDINATOR_ADD_PEER_DONE, down)
    return target


def addition_result(addition: Addition, target: dict[int, int]) -> AddPeerResult:
    return AddPeerResult(
        region=addition.region,
        new_peer=addition.new.node_id,
        coordinator=addition.coordinator.node_id,
        peers=sorted([*(p.node_id for p in addition.peers), addition.new.node_id]),
        target=target,
    )
