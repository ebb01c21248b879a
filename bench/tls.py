"""What mutual TLS costs: the same transfers and writes over plaintext and over mTLS.

Prints JSON: per mode, the seconds until a new replica of an N-point region is complete (the
snapshot channel) and the latency of one-point writes issued one after another, with the
mTLS/plaintext ratios. The modes alternate round by round in one run, so machine noise falls
on both. Run: `python bench/tls.py [--points N] [--rounds R] [--writes W]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.transfer import REGION, bring_up, ingest
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from runtime.identity import node_name
from runtime.tls import TlsFiles
from stack.certs import CLIENT_NAME, Authority
from stack.processes import NodeProcess

MODES = ("plaintext", "mtls")


class Mode:
    """One side of the comparison: a source node holding the region, and its clients."""

    def __init__(self, root: Path, name: str, authority: Authority) -> None:
        self.root = root / name
        self.authority = authority if name == "mtls" else None
        self.clients = NodeClients(self._certificate(CLIENT_NAME))
        self.nodes: list[NodeProcess] = []

    def _certificate(self, name: str) -> TlsFiles | None:
        return self.authority.write(self.root / "tls", name) if self.authority else None

    def node(self, node_id: int) -> NodeProcess:
        # each node its own certificate: only node N's may send a region's points as node N
        tls = self._certificate(node_name(node_id))
        process = NodeProcess(node_id, self.root / f"n{node_id}", tls=tls).start()
        self.nodes.append(process)
        return process

    async def close(self) -> None:
        for n in self.nodes:
            n.terminate()
        await self.clients.close()


async def write_latencies(clients: NodeClients, node: NodeProcess, count: int) -> list[float]:
    stub = clients.stub(node.address)
    seconds = []
    for t in range(count):
        point = pb.Point(series="latency", timestamp=t, value=float(t))
        began = time.perf_counter()
        await stub.Write(pb.WriteRequest(region=REGION, points=[point]))
        seconds.append(time.perf_counter() - began)
    return seconds


async def main(points: int, rounds: int, writes: int) -> dict[str, object]:
    authority = Authority.create("bench CA")
    transfer: dict[str, list[float]] = {m: [] for m in MODES}
    latency: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        modes = {m: Mode(Path(tmp), m, authority) for m in MODES}
        try:
            sources = {}
            for name, mode in modes.items():
                source = sources[name] = mode.node(1)
                peers = [pb.Peer(node_id=1, address=source.address)]
                await mode.clients.stub(source.address).CreateLocalPeer(
                    pb.CreateLocalPeerRequest(region=REGION, peers=peers, active=True)
                )
                await ingest(mode.clients, source, points)
            for r in range(rounds):
                for name, mode in modes.items():
                    new = mode.node(2 + r)
                    seconds = await bring_up(mode.clients, sources[name], new, snapshot=True)
                    transfer[name].append(seconds)
                    latency[name] += await write_latencies(mode.clients, sources[name], writes)
        finally:
            for mode in modes.values():
                await mode.close()
    return report(points, transfer, latency)


def report(
    points: int, transfer: dict[str, list[float]], latency: dict[str, list[float]]
) -> dict[str, object]:
    snapshot = {m: statistics.median(transfer[m]) for m in MODES}
    write_p50 = {m: statistics.median(latency[m]) for m in MODES}
    return {
        "points": points,
        "rounds": len(transfer["mtls"]),
        "snapshot_seconds": {m: [round(s, 3) for s in transfer[m]] for m in MODES},
        "snapshot_median_s": {m: round(snapshot[m], 3) for m in MODES},
        "write_p50_ms": {m: round(write_p50[m] * 1e3, 3) for m in MODES},
        "ratios_mtls_over_plaintext": {
            "snapshot_seconds": round(snapshot["mtls"] / snapshot["plaintext"], 2),
            "write_p50": round(write_p50["mtls"] / write_p50["plaintext"], 2),
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writes", type=int, default=500, help="one-point writes per round")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.points, args.rounds, args.writes)), indent=2))
