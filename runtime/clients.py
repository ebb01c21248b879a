"""gRPC clients for node services, one channel per address, shared by everything in a process."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from protos import air_node_pb2_grpc as rpc
from runtime.tls import TlsFiles

if TYPE_CHECKING:
    # mypy-protobuf's type of a stub over an aio channel: every call typed, every reply awaited
    from protos.air_node_pb2_grpc import AirNodeAsyncStub as NodeStub
else:
    from protos.air_node_pb2_grpc import AirNodeStub as NodeStub

__all__ = [
    "CHANNEL_OPTIONS",
    "MAX_MESSAGE_BYTES",
    "RPC_TIMEOUT_S",
    "NodeClients",
    "NodeStub",
    "not_found",
]

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
RPC_TIMEOUT_S = 10.0  # the deadline of a call that does not say otherwise
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # reconnect quickly after a peer restarts: the default backoff grows to two minutes
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    # gRPC core reads this one as the least time a connection attempt gets (TCP and the HTTP/2
    # SETTINGS exchange), not as a backoff: at 100 ms a busy machine's handshake timed out, and
    # a worker that had just started listed three live nodes unreachable ("connection attempt
    # timed out before receiving SETTINGS frame"), so a migration was refused. A peer that is
    # down refuses at once whatever this is; each call keeps its own deadline.
    ("grpc.min_reconnect_backoff_ms", 5000),
]


class NodeClients:
    """Stubs by address. Channels are created on first use and closed together.

    With `tls`, every channel is mutual TLS: it trusts only nodes the CA signed and presents
    the given certificate (the files are read and checked here, once: `TlsError` if bad).
    """

    def __init__(self, tls: TlsFiles | None = None) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._credentials = tls.channel_credentials() if tls is not None else None

    def stub(self, address: str) -> NodeStub:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._open(address)
            self._channels[address] = channel
        return rpc.AirNodeStub(channel)

    def _open(self, address: str) -> grpc.aio.Channel:
        if self._credentials is None:
            return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        return grpc.aio.secure_channel(address, self._credentials, options=CHANNEL_OPTIONS)

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            await channel.close(grace=None)


def not_found(error: object) -> bool:
    """Whether a call failed because the node has no such region (or replica)."""
    return isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.NOT_FOUND
