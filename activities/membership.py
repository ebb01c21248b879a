"""Every activity of the worker that calls nodes, over one set of node calls: reading the
cluster (`reading`), the add-peer steps (`add_peer`), the remove-peer steps (`remove_peer`)
and the consistency check (`check`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from activities.add_peer import AddPeerActivities
from activities.check import CheckActivities
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
        *CheckActivities(nodes).all(),
    ]
