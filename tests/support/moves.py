"""A move caught in its transfer, its senders held: a new replica still awaiting its snapshot."""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from contracts.ids import region_workflow_id
from contracts.models import Phase
from protos import air_node_pb2 as pb
from tests.support.cluster import Cluster
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.machinery.operation import MovesWorkflow


async def awaits_snapshot(cluster: Cluster, node: int, region: int) -> bool:
    """Whether `node`'s new replica of `region` is there and still awaits its snapshot."""
    new = (await cluster.regions_of(node)).get(region)
    return new is not None and not new.installed


async def snapshot_senders(
    cluster: Cluster, node: int, region: int
) -> list[tuple[int, pb.ChannelProgress]]:
    """The live nodes with a snapshot channel to `node`'s replica of `region`, and that
    channel."""
    peers = (await cluster.progress(node, region)).peers
    senders = []
    for peer in peers:
        if peer.node_id == node or not cluster.nodes[peer.node_id].alive():
            continue  # a node that is down sends nothing
        channels = (await cluster.progress(peer.node_id, region)).channels
        senders += [
            (peer.node_id, c) for c in channels if c.receiver.node_id == node and c.snapshot
        ]
    return senders


async def held_by_its_sender(cluster: Cluster, node: int, region: int) -> bool:
    """Whether the snapshot `node` awaits for `region` is held whole by a held sender: its
    senders are held nodes (`cluster.throttle(ids, HELD)`) and none let a byte of it through.
    A transfer that passed the throttle before the hold was set is not: it may end any time."""
    senders = await snapshot_senders(cluster, node, region)
    return bool(senders) and all(
        cluster.holds(sender) and channel.snapshot_bytes_sent == 0 for sender, channel in senders
    )


async def held_transfer(stack: Stack, operation: WorkflowHandle[Any, Any]) -> tuple[int, int]:
    """Until a running move of `operation` is transferring a snapshot its destination has not
    installed and a held sender holds: (region, destination). Hold the senders first
    (`cluster.throttle(ids, HELD)`): the move stays there, so a kill lands mid-transfer however
    fast or busy the machine."""

    async def probe() -> tuple[int, int] | None:
        state = await operation.query(MovesWorkflow.moves_progress)
        for move in state.planned:
            if move.region not in state.running:
                continue
            handle = stack.client.get_workflow_handle(region_workflow_id(move.region))
            try:
                phase = (await stack.progress(handle)).phase
            except RPCError:  # not started yet
                continue
            if (
                phase == Phase.TRANSFERRING
                and await awaits_snapshot(stack.cluster, move.to_node, move.region)
                and await held_by_its_sender(stack.cluster, move.to_node, move.region)
            ):
                return move.region, move.to_node
        return None

    found = await eventually(probe, lambda f: f is not None, timeout=60, what="a held transfer")
    assert found is not None
    return found
