"""What tests on test hosts need: their slot, probes of what reaches what (TCP, HTTP/2, UDP) from
any host, and what of a slot is left on the machine."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import subprocess

from stack.hosts import SLOTS, Host

# A connection across a cut hears nothing: a connect is given this long to show it, where one
# that is answered (accepted or refused) takes a fraction of a millisecond.
SILENCE_S = 1.0
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_SETTINGS, H2_PING = 4, 6
SO_RCVBUFFORCE = 33  # linux/socket.h: root may pass net.core.rmem_max


def xdist_slot() -> int:
    """This pytest-xdist process's slot (gw0 -> 0, gw1 -> 1; 0 outside xdist), as its ports."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker.removeprefix("gw")) % SLOTS


def socket_on(host: Host | None, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket on `host` (None: the operator host, the machine itself)."""
    if host is None:
        return socket.socket(socket.AF_INET, kind)
    return host.call(lambda: socket.socket(socket.AF_INET, kind))


def attempt(
    host: Host | None, address: str, port: int, timeout: float = SILENCE_S
) -> OSError | None:
    """Connect from `host`: None if it opened, else what stopped it (TimeoutError: silence;
    ConnectionRefusedError: a reset; EHOSTUNREACH/ENETUNREACH: a route said no)."""
    with socket_on(host) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
        except OSError as e:
            return e
    return None


def listener(host: Host, port: int = 0) -> socket.socket:
    """A TCP server socket on `host` at its address (the kernel picks the port for 0)."""
    return host.call(lambda: socket.create_server((host.address, port)))


def _h2_frame(kind: int, payload: bytes = b"", flags: int = 0) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + b"\0\0\0\0" + payload


def _read_frame(sock: socket.socket) -> tuple[int, int]:
    """The next frame's type and flags (its payload read and dropped)."""
    header = _read_exactly(sock, 9)
    length = int.from_bytes(header[:3], "big")
    _read_exactly(sock, length)
    return header[3], header[4]


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def h2_open(host: Host | None, address: str, port: int, timeout: float = 10) -> socket.socket:
    """An HTTP/2 connection from `host` to a gRPC server (a node, Temporal), past the
    server's first SETTINGS: proof that the server itself answered."""
    sock = socket_on(host)
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
        sock.sendall(H2_PREFACE + _h2_frame(H2_SETTINGS))
        kind, _ = _read_frame(sock)
        assert kind == H2_SETTINGS, f"{address}:{port} answered frame type {kind}, not SETTINGS"
    except BaseException:
        sock.close()
        raise
    return sock


def h2_ping(sock: socket.socket, timeout: float = SILENCE_S) -> bool:
    """Whether the server at the other end of `sock` acknowledges a PING within `timeout`."""
    sock.settimeout(timeout)
    sock.sendall(_h2_frame(H2_PING, b"airping!"))
    try:
        while True:
            kind, flags = _read_frame(sock)
            if kind == H2_PING and flags & 1:
                return True
    except (TimeoutError, ConnectionError):
        return False


def answers(host: Host | None, address: str, port: int, timeout: float = 10) -> bool:
    """Whether a gRPC server at address:port answers an HTTP/2 connection from `host`."""
    try:
        h2_open(host, address, port, timeout).close()
    except (OSError, ConnectionError):
        return False
    return True


def udp_delivered(sender: Host, receiver: Host, count: int, quiet_s: float = 1.0) -> int:
    """Send `count` datagrams from `sender` to `receiver`; how many arrived. Every one that is
    not dropped arrives within microseconds: the count is final once `quiet_s` passes with
    none (the receive buffer holds them all: nothing is lost to a slow reader)."""
    with (
        socket_on(receiver, socket.SOCK_DGRAM) as inbox,
        socket_on(sender, socket.SOCK_DGRAM) as outbox,
    ):
        inbox.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
        inbox.bind((receiver.address, 0))
        target = inbox.getsockname()
        for i in range(count):
            outbox.sendto(i.to_bytes(4, "big"), target)
        inbox.settimeout(quiet_s)
        seen = set()
        with contextlib.suppress(TimeoutError):
            while True:
                seen.add(inbox.recv(16))
        return len(seen)


async def run_on(host: Host, argv: list[str], timeout: float = 120) -> tuple[int, str]:
    """Run a program on `host` to its end: its exit status and what it printed."""
    proc = await asyncio.create_subprocess_exec(
        *host.wrap(argv), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, output.decode(errors="replace")


def leftovers(slot: int) -> list[str]:
    """What of `slot` exists on the machine: its namespaces, links (veths, bridge)."""
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = json.loads(
        subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout
    )
    prefix = f"air{slot}-"
    return [
        *(f"namespace {line.split()[0]}" for line in namespaces.splitlines()
          if line.startswith(prefix)),
        *(f"link {link['ifname']}" for link in links
          if link["ifname"].startswith(prefix) or link["ifname"] == f"airbr{slot}"),
    ]  # fmt: skip


def unreachable_route(net: str) -> bool:
    """Whether the machine routes `net` unreachable."""
    routes = subprocess.run(
        ["ip", "-j", "route", "show", "table", "all"], capture_output=True, text=True
    ).stdout
    return any(r.get("type") == "unreachable" and r.get("dst") == net for r in json.loads(routes))


def our_bridges() -> list[str]:
    links = json.loads(
        subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout
    )
    return [link["ifname"] for link in links if link["ifname"].startswith("airbr")]
