"""A TCP proxy in its own process, to be SIGKILLed: the connection between two nodes cut.

`python -m tests.support.tcp_proxy LISTEN_PORT UPSTREAM` pipes every connection to UPSTREAM.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from stack.processes import ManagedProcess, free_port

READY = "proxy ready"


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


async def _serve(port: int, upstream: str) -> None:
    host, up_port = upstream.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(up_port))
        await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))

    server = await asyncio.start_server(pipe, "127.0.0.1", port)
    print(READY, flush=True)
    await server.serve_forever()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(ConnectionError, RuntimeError):
        writer.close()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), sys.argv[2]))
