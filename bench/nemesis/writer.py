"""The nemesis's writer: on the client host, writes to every region at one acknowledgement
level and logs each acknowledged point, until it is told to stop (SIGTERM).

It writes through every replica of a region in turn, as the holders are now: they are asked
again every few seconds, so writes follow the region as operations move it, and go on through
a node that the worker cannot reach. A node that refuses or does not answer is failed over.
Run: `python -m bench.nemesis.writer --cluster F --regions 1,2,3 --acks quorum --out DIR`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

import grpc

from client.load import AckedLog, LoadWriter
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from runtime.cluster_file import load_cluster

LEVELS = {"one": pb.ACKS_ONE, "quorum": pb.ACKS_QUORUM, "all": pb.ACKS_ALL}
REFRESH_S = 3.0
ASK_TIMEOUT_S = 2.0
READY = "writer ready"


def acked_log(out: Path, level: str, region: int) -> Path:
    """Where the writer of `level` logs the points of `region` it had acknowledged."""
    return out / f"acked-{level}-{region}.log"


async def write(cluster: Path, regions: list[int], level: str, out: Path, rate: float) -> None:
    config = load_cluster(cluster)
    clients = NodeClients(config.tls)
    addresses = {n.id: n.address for n in config.nodes}

    writers = {
        region: LoadWriter(
            lambda node: clients.stub(addresses[node]),
            region,
            sorted(addresses),
            batch=10,
            log=AckedLog(acked_log(out, level, region)),
            series=f"{level}-{region}",
            acks=LEVELS[level],
        )
        for region in regions
    }
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    refreshing = asyncio.create_task(_follow_holders(clients, addresses, writers))
    for writer in writers.values():
        writer.start(rate=rate)
    print(READY, flush=True)
    await stop.wait()
    refreshing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await refreshing
    for writer in writers.values():
        await writer.stop()
    await clients.close()


async def _follow_holders(
    clients: NodeClients, addresses: dict[int, str], writers: dict[int, LoadWriter]
) -> None:
    """Point each region's writer at the nodes that hold it now (those that answer)."""
    while True:
        for region, writer in writers.items():
            asked = await asyncio.gather(
                *(
                    clients.stub(address).DescribeRegion(
                        pb.RegionRequest(region=region), timeout=ASK_TIMEOUT_S
                    )
                    for address in addresses.values()
                ),
                return_exceptions=True,
            )
            holders = [
                node
                for node, answer in zip(addresses, asked, strict=True)
                if isinstance(answer, pb.RegionInfo) and answer.active
            ]
            unanswered = [
                node
                for node, answer in zip(addresses, asked, strict=True)
                if isinstance(answer, grpc.aio.AioRpcError)
                and answer.code() != grpc.StatusCode.NOT_FOUND
            ]
            # a node that does not answer the client may hold the region still: keep it
            writer.targets = sorted({*holders, *(n for n in writer.targets if n in unanswered)})
            if not writer.targets:
                writer.targets = sorted(addresses)
        await asyncio.sleep(REFRESH_S)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cluster", type=Path, required=True)
    p.add_argument("--regions", required=True, help="comma-separated region ids")
    p.add_argument("--acks", choices=sorted(LEVELS), required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rate", type=float, default=40.0, help="points/s per region")
    args = p.parse_args()
    regions = [int(r) for r in args.regions.split(",")]
    asyncio.run(write(args.cluster, regions, args.acks, args.out, args.rate))


if __name__ == "__main__":
    main()
