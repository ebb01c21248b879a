"""`airnode`: run one AirReplication node in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import grpc

from contracts.locality import BadLocality, parse_locality
from contracts.rates import AUTO, rate_limit
from contracts.ready import READY
from node.allocator import keep_large_buffers
from node.channel import BATCH_POINTS
from node.disk import FLOOD_WATERMARK
from node.guardian import REST_AFTER_S
from node.handshake_log import relay_core_stderr, verbosity_hides_handshakes
from node.metrics import serve_metrics
from node.node import Node
from node.resources import raise_descriptor_limit
from node.service import AirNodeService, register
from runtime.clients import SERVER_OPTIONS
from runtime.killswitch import KillPoints
from runtime.tls import TlsError, TlsFiles, tls_from_flags

log = logging.getLogger("airnode")

# A snapshot's or a channel's reads run in threads that hold the GIL for milliseconds at a
# time; a shorter switch interval than the default 5 ms hands it back sooner to the event loop,
# which serves the writes (the check's reads run in a process of their own: check_reader.py).
GIL_SWITCH_S = 0.0005


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="airnode", description=__doc__)
    p.add_argument("--id", type=int, required=True, help="this node's id (positive)")
    p.add_argument("--listen", default="127.0.0.1:50051", help="host:port to serve gRPC on")
    p.add_argument("--data-dir", type=Path, required=True, help="where region replicas live")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument(
        "--sync",
        choices=["full", "normal"],
        default="full",
        help="full: fsync before every acknowledgement; normal: survive kill -9, not power loss",
    )
    p.add_argument("--guardian-interval", type=float, default=5.0, help="seconds")
    p.add_argument(
        "--rest-after",
        type=float,
        default=REST_AFTER_S,
        help="seconds a region takes no write before its store closes its files "
        f"(default {REST_AFTER_S:g})",
    )
    p.add_argument(
        "--transfer-batch-points",
        type=int,
        default=BATCH_POINTS,
        help="points per channel batch (whole write batches are never split)",
    )
    p.add_argument(
        "--transfer-rate-limit",
        type=rate_limit,
        metavar="MB_PER_S|auto",
        default=AUTO,
        help="cap on the bytes all outgoing channels send per second (0: none); auto: "
        "snapshots as fast as the node's user writes stay quick (default)",
    )
    p.add_argument(
        "--disk-capacity",
        type=int,
        metavar="BYTES",
        help="count this as the node's disk, its data directory's bytes as used "
        "(default: the filesystem's size and use)",
    )
    p.add_argument(
        "--flood-watermark",
        type=float,
        default=FLOOD_WATERMARK,
        help=f"refuse new replicas past this fraction of the disk (default {FLOOD_WATERMARK})",
    )
    p.add_argument(
        "--locality",
        default="",
        metavar="KEY=VALUE[,...]",
        help="where this node stands, most significant tier first, e.g. zone=eu-1a,rack=r7 "
        "(none: apart from every other node); the planners keep a region's replicas apart",
    )
    p.add_argument("--tls-ca", type=Path, help="CA certificate: serve mTLS, admit what it signed")
    p.add_argument("--tls-cert", type=Path, help="this node's certificate (served and presented)")
    p.add_argument("--tls-key", type=Path, help="this node's private key")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if args.id <= 0:
        p.error("--id must be a positive integer")
    if ":" not in args.listen:
        p.error("--listen must be host:port")
    try:
        args.locality = parse_locality(args.locality)
    except BadLocality as e:
        raise SystemExit(f"airnode: --locality: {e}") from None  # one line, not the usage
    try:
        args.tls = tls_from_flags(args.tls_ca, args.tls_cert, args.tls_key)
        if args.tls is not None:
            args.tls.load()  # a missing or bad file is one line now, not a traceback later
    except TlsError as e:
        raise SystemExit(f"airnode: {e}") from None
    return args


def listen(server: grpc.aio.Server, address: str, tls: TlsFiles | None) -> None:
    """Plaintext, or mutual TLS only: with TLS on, a plaintext client fails its handshake."""
    port = (
        server.add_secure_port(address, tls.server_credentials())
        if tls is not None
        else server.add_insecure_port(address)
    )
    if port == 0:
        raise SystemExit(f"airnode: cannot listen on {address}")


def warn_if_handshakes_hidden(verbosity: str | None) -> None:
    """Say so at start when gRPC will not write the lines that `relay_core_stderr` explains."""
    if verbosity_hides_handshakes(verbosity):
        log.warning(
            "GRPC_VERBOSITY=%s hides gRPC's handshake errors: refused TLS connections will not "
            "be logged (unset it or set INFO to log them)",
            verbosity,
        )


def _bytes_per_s(limit: float | str | None) -> float | None:
    return limit * 1e6 if isinstance(limit, float) and limit else None


async def serve(args: argparse.Namespace) -> None:
    raise_descriptor_limit()
    killpoints = KillPoints.from_env(args.data_dir)
    node = Node(
        args.id,
        args.listen,
        args.data_dir,
        sync=args.sync,
        guardian_interval=args.guardian_interval,
        rest_after=args.rest_after,
        transfer_batch_points=args.transfer_batch_points,
        transfer_rate_limit=_bytes_per_s(args.transfer_rate_limit),
        auto_rate_limit=args.transfer_rate_limit == AUTO,
        killpoints=killpoints,
        tls=args.tls,
        disk_capacity=args.disk_capacity,
        flood_watermark=args.flood_watermark,
        locality=args.locality,
    )
    server = grpc.aio.server(options=SERVER_OPTIONS)
    service = AirNodeService(node, certified_senders=args.tls is not None)
    register(service, server)
    listen(server, args.listen, args.tls)
    if args.tls is not None:
        log.info("mutual TLS only: admitting clients whose certificate %s signed", args.tls.ca)
        warn_if_handshakes_hidden(os.environ.get("GRPC_VERBOSITY"))
    await node.start()
    await server.start()
    if args.metrics_port is not None:
        serve_metrics(
            args.listen.rsplit(":", 1)[0],
            args.metrics_port,
            node.replica_states,
            node.disk.usage,
            node.locality,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(READY.format(id=args.id, address=args.listen))
    await stop.wait()
    log.info("airnode %d stopping", args.id)
    await server.stop(grace=2)
    await node.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.tls is not None:
        relay_core_stderr(logging.getLogger("airnode.tls"))
    logging.basicConfig(
        level=args.log_level.upper(),
        format=f"%(asctime)s node{args.id} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    sys.setswitchinterval(GIL_SWITCH_S)
    keep_large_buffers()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
