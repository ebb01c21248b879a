"""What each acknowledgement level costs: one-point write latency at `one`, `quorum`, `all`.

Three nodes holding one region (three replicas, active). One-point writes go to node 1 one
after another, the levels interleaved write by write so that each sees the same machine; then
the p50/p99 latency per level and each level's ratio to `one`, all in one JSON object.
Run: `python bench/acks.py [--writes 1000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import create_region
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from stack.processes import NodeProcess

LEVELS = {"one": pb.ACKS_ONE, "quorum": pb.ACKS_QUORUM, "all": pb.ACKS_ALL}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)]


async def measure(root: Path, writes: int) -> dict[str, object]:
    nodes = [NodeProcess(i, root / f"n{i}").start() for i in (1, 2, 3)]
    clients = NodeClients()
    try:
        await create_region(clients, nodes, 1)
        stub = clients.stub(nodes[0].address)
        latencies: dict[str, list[float]] = {name: [] for name in LEVELS}
        for t in range(writes * len(LEVELS)):
            name, level = list(LEVELS.items())[t % len(LEVELS)]
            request = pb.WriteRequest(
                region=1, points=[pb.Point(series="s", timestamp=t, value=1.0)], acks=level
            )
            began = time.perf_counter()
            await stub.Write(request, timeout=10)
            latencies[name].append(time.perf_counter() - began)
    finally:
        await clients.close()
        for n in nodes:
            n.terminate()
    ms = {
        name: {
            "p50_ms": round(statistics.median(v) * 1000, 3),
            "p99_ms": round(percentile(v, 0.99) * 1000, 3),
        }
        for name, v in latencies.items()
    }
    return {
        "writes_per_level": writes,
        "latency": ms,
        "ratios_to_one": {
            name: {
                "p50": round(m["p50_ms"] / ms["one"]["p50_ms"], 2),
                "p99": round(m["p99_ms"] / ms["one"]["p99_ms"], 2),
            }
            for name, m in ms.items()
        },
    }


async def main(writes: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        return await measure(Path(tmp), writes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=1000, help="writes per level")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.writes)), indent=2))
