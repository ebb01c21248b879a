"""Every membership activity of the worker, over one set of node calls: reading the cluster
(`reading`), the add-peer steps (`add_peer`) and the remove-peer steps (`remove_peer`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from activities.add_peer import AddPeerActivities
from activities.node_calls import NodeCalls
from activities.reading import ReadingActivities
from activities.remove_peer import RemovePeerActivities
from runtime.clients import NodeClients
from runtime.directory import NodeDirectory
from runtime.killswitch import KillPoints


def membership_activities(
    directory: NodeDirectory, clients: NodeClients, killpoints: KillPoints
) -> list[Callable[..., Awaitable[object]]]:
    nodes = NodeCalls(directory, clients, killpoints)
    return [
        *ReadingActivities(nodes).all(),
        *AddPeerActivities(nodes).all(),
        *RemovePeerActivities(nodes).all(),
    ]
