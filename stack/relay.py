"""A TCP relay in a thread: how a test host reaches a server that listens on loopback only.

The Temporal dev server cannot listen beyond loopback (its own services dial 127.0.0.1), so
the worker, on a host of its own, reaches it through this relay on the operator host's bridge
address. A fault between the worker and Temporal then drops the worker's packets to the relay
while airctl, on the operator host, still reaches the server directly.

A thread of the process that owns the network, not a process of its own: it lives and dies
with that owner (a SIGKILLed owner leaves no relay holding a port, and there is nothing to
supervise), and what crosses it is one worker's polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Self

# A peer cut off by a fault sends nothing, not even a reset: keepalives close the dead half of
# a relayed connection (and with it the other half) within about KEEPIDLE + INTVL * CNT.
KEEPIDLE_S = 5
KEEPINTVL_S = 2
KEEPCNT = 3
USER_TIMEOUT_MS = 15_000  # unacknowledged data: the same verdict for a link cut mid-send


def keep_alive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPIDLE_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPINTVL_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPCNT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)


class Relay:
    """Every connection to `listen_host` (on a port the kernel picks) piped to `upstream`."""

    def __init__(self, listen_host: str, upstream: str) -> None:
        self.listen_host = listen_host
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()  # both ends of every connection

    @property
    def address(self) -> str:
        return f"{self.listen_host}:{self.port}"

    def start(self) -> Self:
        """Listen, and return once listening (a bind failure is raised here)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            try:
                asyncio.run(self._serve(ready))
            except BaseException as e:  # before `ready`: the caller raises it
                failure.append(e)
                ready.set()

        self._thread = threading.Thread(target=main, name=f"relay to {self.upstream}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._pipe, self.listen_host, 0)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        await self._stopped.wait()
        server.close()
        for writer in self._writers:
            writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), timeout=10
            )
        except (OSError, TimeoutError):
            writer.close()
            return
        for w in (writer, up_writer):
            keep_alive(w.get_extra_info("socket"))
            self._writers.add(w)
        try:
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
        finally:
            self._writers.difference_update((writer, up_writer))

    def stop(self) -> None:
        """Close the listener and every relayed connection; return once the thread is done."""
        if self._loop is not None and self._stopped is not None:
            with contextlib.suppress(RuntimeError):  # its loop already closed
                self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until either side ends or fails, then close the writer: the other copy ends too."""
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError, RuntimeError):
        writer.close()
