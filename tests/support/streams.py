"""Hand-made node-to-node streams: a transfer's hello and batches, as a sending node makes them."""

from __future__ import annotations

from collections.abc import AsyncIterator

from contracts.columns import to_columns
from protos import air_node_pb2 as pb
from runtime.clients import NodeStub


def hello(sender: int, region: int) -> pb.TransferRequest:
    return pb.TransferRequest(hello=pb.TransferHello(region=region, sender=sender))


def batch(after: int, upto: int, seqs: list[int]) -> pb.TransferRequest:
    columns = to_columns([("z", i, 0.0) for i in range(len(seqs))])
    return pb.TransferRequest(
        batch=pb.TransferBatch(after=after, upto=upto, seqs=seqs, columns=columns)
    )


async def transfer(stub: NodeStub, *messages: pb.TransferRequest) -> None:
    """Send `messages` on one Transfer stream and read every reply."""

    async def requests() -> AsyncIterator[pb.TransferRequest]:
        for message in messages:
            yield message

    async for _ in stub.Transfer(requests()):
        pass
