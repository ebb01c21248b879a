"""A few Prometheus metrics for the node, served in the text exposition format."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

Labels = tuple[tuple[str, str], ...]


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self.values: dict[Labels, float] = defaultdict(float)

    @staticmethod
    def _key(labels: dict[str, object]) -> Labels:
        return tuple(sorted((k, str(v)) for k, v in labels.items()))

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for labels, value in sorted(self.values.items()):
            text = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{self.name}{{{text}}} {value:g}" if text else f"{self.name} {value:g}")
        return lines


class Counter(_Metric):
    kind = "counter"

    def inc(self, amount: float = 1, **labels: object) -> None:
        self.values[self._key(labels)] += amount


class Gauge(_Metric):
    kind = "gauge"

    def set(self, value: float, **labels: object) -> None:
        self.values[self._key(labels)] = value

    def remove(self, **labels: object) -> None:
        self.values.pop(self._key(labels), None)


class NodeMetrics:
    def __init__(self) -> None:
        self.writes = Counter("air_writes_total", "User write batches acknowledged")
        self.written_points = Counter("air_written_points_total", "User points acknowledged")
        self.applied_points = Counter(
            "air_applied_points_total", "Points applied from replication channels"
        )
        self.sync_lag = Gauge("air_sync_lag", "Seqs of this node's origin not yet acked")
        self.transfer_bytes = Counter("air_transfer_bytes_total", "Bytes sent on channels")

    def render(self) -> str:
        metrics: list[_Metric] = [
            self.writes,
            self.written_points,
            self.applied_points,
            self.sync_lag,
            self.transfer_bytes,
        ]
        return "\n".join(line for m in metrics for line in m.render()) + "\n"


METRICS = NodeMetrics()


async def serve_metrics(host: str, port: int) -> asyncio.Server:
    """Answer every HTTP request with the current metrics."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            body = METRICS.render().encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, host, port)
