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
    "SERVER_OPTIONS",
    "NodeClients",
    "NodeStub",
]

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
RPC_TIMEOUT_S = 10.0  # the deadline of a call that does not say otherwise

# Keepalive: a link that silently drops packets (a cut, not a refusal) ends every stream over
# it within KEEPALIVE_TIME_MS + KEEPALIVE_TIMEOUT_MS = 8 s (a ping is due at most 3 s after the
# last one was answered, then has 5 s), which leaves 2 s of the 10 s the design allows for the
# node to see the break on a busy machine. Without it, TCP gives up after ~15 minutes. A ping
# is answered by gRPC's own threads, without the GIL: 5 s without an answer is a peer that is
# gone or frozen, not one that is busy. gRPC also sets TCP_USER_TIMEOUT to the timeout on
# each socket, so bytes left unacknowledged that long end the connection too.
KEEPALIVE_TIME_MS = 3_000
KEEPALIVE_TIMEOUT_MS = 5_000
_KEEPALIVE = [
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    # gRPC core times a keepalive ping out after this one (default 1 minute), not after the
    # keepalive timeout: with that alone, a black-holed stream breaks a minute after the cut
    ("grpc.http2.ping_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    # ping an idle connection too, so the next call does not find a dead one
    ("grpc.keepalive_permit_without_calls", 1),
    # keep pinging a stream that sends nothing (an idle channel waits minutes for a write):
    # by default a client stops after 2 pings without data
    ("grpc.http2.max_pings_without_data", 0),
]
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # reconnect quickly after a peer restarts: the default backoff grows to two minutes
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    # gRPC core reads this one as the least time a connection attempt gets (TCP and the HTTP/2
    # SETTINGS exchange), not as a backoff: at 100 ms a busy machine's handshake times out, and
    # a worker that has just started finds live nodes unreachable ("connection attempt timed
    # out before receiving SETTINGS frame") and refuses a migration. A peer that is down
    # refuses at once whatever this is; each call keeps its own deadline.
    ("grpc.min_reconnect_backoff_ms", 5000),
    *_KEEPALIVE,
]
# A node's server pings its clients the same way (a snapshot's sender that vanished ends the
# receiver's stream, and with it the receiver's hold on that sender's snapshot), and permits
# their pings. A server answers GOAWAY "too_many_pings" once a client has pinged more often
# than it allows more than max_ping_strikes times; by default it allows one ping in 5 minutes
# while no data flows, one in 2 hours on a connection without calls. Ours, permitting pings
# without calls (keepalive_permit_without_calls, in _KEEPALIVE), allow one every second: a
# third of the clients' interval, so a ping delayed on its way is no strike either.
SERVER_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    *_KEEPALIVE,
    # GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS in gRPC's C headers
    ("grpc.http2.min_ping_interval_without_data_ms", 1_000),
    ("grpc.http2.max_ping_strikes", 2),
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
