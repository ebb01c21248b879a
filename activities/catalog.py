"""Every activity of the worker that calls nodes, over one set of node calls, by what it acts
on: reading the cluster (`reading`), a region's membership (`membership`), the transfers
between its replicas (`transfer`) and the consistency check (`check`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from activities.check import CheckActivities
from activities.membership import MembershipActivities
from activities.node_calls import NodeCalls
from activities.reading import ReadingActivities
from activities.transfer import TransferActivities
from runtime.clients import NodeClients
from runtime.directory import NodeDirectory
from runtime.killswitch import KillPoints


def node_activities(
    directory: NodeDirectory, clients: NodeClients, killpoints: KillPoints
) -> list[Callable[..., Awaitable[object]]]:
    nodes = NodeCalls(directory, clients, killpoints)
    return [
        *ReadingActivities(nodes).all(),
        *MembershipActivities(nodes).all(),
        *TransferActivities(nodes).all(),
        *CheckActivities(nodes).all(),
    ]
