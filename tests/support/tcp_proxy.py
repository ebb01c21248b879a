"""A TCP proxy in its own process: the connection between two nodes, to be cut.

`python -m tests.support.tcp_proxy LISTEN_PORT UPSTREAM` pipes every connection to UPSTREAM.
Cut it loudly with SIGKILL (both ends see their connections close), or silently as a network
that drops packets: SIGUSR1 makes it a black hole, SIGUSR2 heals it (`ProxyProcess.cut` and
`heal`; a frozen proxy, SIGSTOP, is silent too).

A black hole reads whatever either end sends and delivers none of it, closes nothing, and takes
new connections without reaching UPSTREAM: every byte is taken and vanishes, as after a cut
beyond the first hop. Neither end's TCP has anything to notice (its bytes are acknowledged,
nothing is refused); only a ping of the protocol above, unanswered, shows the link dead. A
connection that lost bytes to the hole stays severed after the heal (its stream is corrupt);
new connections are piped again.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from datetime import datetime
from pathlib import Path

from stack.processes import ManagedProcess, free_port
from tests.support.waiting import eventually

READY = "proxy ready"
CUT = "black hole from"  # then the moment, as a node's log writes it
HEALED = "healed at"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S,%f"


class ProxyProcess(ManagedProcess):
    """Listens on a fixed port, so a restarted proxy is the same address to its clients."""

    def __init__(self, upstream: str, log_path: Path) -> None:
        super().__init__("proxy", log_path)
        self.upstream = upstream
        self.port = free_port()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tests.support.tcp_proxy", str(self.port), self.upstream]

    def ready_line(self) -> str:
        return READY

    async def cut(self) -> datetime:
        """Drop everything from now on, silently; returns the moment it began, by the proxy's
        clock (as a node's log writes it)."""
        cuts = len(await self._lines(CUT))
        self.send_signal(signal.SIGUSR1)
        lines = await eventually(lambda: self._lines(CUT), lambda ls: len(ls) > cuts)
        return datetime.strptime(lines[-1].removeprefix(CUT).strip(), TIME_FORMAT)

    async def heal(self) -> None:
        heals = len(await self._lines(HEALED))
        self.send_signal(signal.SIGUSR2)
        await eventually(lambda: self._lines(HEALED), lambda ls: len(ls) > heals)

    def freeze(self) -> datetime:
        """Stop the proxy (SIGSTOP), a silent cut too: the kernel takes bytes until its buffers
        are full, then none, and delivers nothing; returns the moment."""
        self.send_signal(signal.SIGSTOP)
        return datetime.now()

    def thaw(self) -> None:
        self.send_signal(signal.SIGCONT)

    async def _lines(self, start: str) -> list[str]:
        """The proxy's lines that begin with `start` (a probe, for `eventually`)."""
        return [line for line in self.output().splitlines() if line.startswith(start)]


class Link:
    """Whether bytes go through; a connection open during a cut stays severed."""

    def __init__(self) -> None:
        self.open = True
        self.epoch = 0  # counts cuts: a connection older than the last cut lost bytes

    def cut(self) -> None:
        if self.open:
            self.open, self.epoch = False, self.epoch + 1
            print(f"{CUT} {datetime.now().strftime(TIME_FORMAT)[:-3]}", flush=True)

    def heal(self) -> None:
        if not self.open:
            self.open = True
            print(f"{HEALED} {datetime.now().strftime(TIME_FORMAT)[:-3]}", flush=True)


async def _serve(port: int, upstream: str) -> None:
    host, up_port = upstream.rsplit(":", 1)
    link = Link()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, link.cut)
    loop.add_signal_handler(signal.SIGUSR2, link.heal)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        epoch = link.epoch
        try:
            if not link.open:  # reaching nothing: the client's bytes vanish
                await _swallow(reader)
                return
            up_reader, up_writer = await asyncio.open_connection(host, int(up_port))
            try:
                await asyncio.gather(
                    _copy(reader, up_writer, link, epoch), _copy(up_reader, writer, link, epoch)
                )
            finally:
                up_writer.close()
        except OSError:
            pass  # the upstream refused: so does this connection, by closing
        finally:
            writer.close()

    server = await asyncio.start_server(pipe, "127.0.0.1", port)
    print(READY, flush=True)
    await server.serve_forever()


async def _copy(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link, epoch: int
) -> None:
    """Copy until EOF; once cut, swallow what comes and keep the other end's side open: a cut
    carries no FIN either."""
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            if link.open and link.epoch == epoch:
                writer.write(data)
                await writer.drain()
    if link.open and link.epoch == epoch:
        writer.close()  # the end's FIN or reset, passed on


async def _swallow(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), sys.argv[2]))
