"""What the benchmarks share: a throwaway local stack on free ports, and region setup."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client

from client import connection
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from stack.local import LocalStack
from stack.processes import NodeProcess, free_ports


@contextlib.asynccontextmanager
async def bench_stack(
    nodes: int = 4, zones: int = 0
) -> AsyncIterator[tuple[LocalStack, Client, NodeClients]]:
    """The Temporal dev server, `nodes` nodes (dealt into `zones` zones, if any) and one
    worker, all stopped afterwards."""
    ports = free_ports(2)
    base = free_ports(nodes, consecutive=True)[0]
    clients = NodeClients()
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp), nodes, ports[0], ports[1], base, zones=zones)
        stack.start()
        try:
            yield stack, await connection.connect(connection.local(stack.temporal.address)), clients
        finally:
            stack.stop()
            await clients.close()


async def create_region(clients: NodeClients, nodes: list[NodeProcess], region: int) -> None:
    peers = [pb.Peer(node_id=n.node_id, address=n.address) for n in nodes]
    for n in nodes:
        await clients.stub(n.address).CreateLocalPeer(
            pb.CreateLocalPeerRequest(region=region, peers=peers, active=True)
        )
