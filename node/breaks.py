"""A stream between nodes that broke: one log line and one count, at either end.

A link that drops packets ends a stream only when gRPC's keepalive finds it dead
(runtime/clients.py): the line says which stream, how long it had run and how it ended, so an
operator (and a test) sees the time from a cut to the break; air_stream_breaks_total counts
them by kind (channel, snapshot, forward) and end (sender, receiver).
"""

from __future__ import annotations

import logging
import time

import grpc

from node.metrics import METRICS
from runtime.refusals import refused

log = logging.getLogger(__name__)

BROKEN = "stream broken after"  # the words every line has, for a reader of the logs


def stream_ended(kind: str, end: str, name: str, opened: float, error: BaseException) -> None:
    """The `kind` stream `name`, open since `opened` (monotonic), ended with `error`: reported
    unless the peer refused something (no such region, not a peer, a gap): a peer that ends a
    stream on purpose answered, and its caller handles the refusal as such."""
    if refused(error):
        return
    ran = time.monotonic() - opened
    log.warning("%s: %s %s %.1f s, at the %s: %s", name, kind, BROKEN, ran, end, status_of(error))
    METRICS.stream_breaks.labels(kind=kind, end=end).inc()


def status_of(error: BaseException) -> str:
    """`CODE: details` of a failed call; otherwise what ended the stream."""
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return str(error) or type(error).__name__
