"""What moving data in 1 MiB buffers costs on this machine, below the node's code.

Two measures, each case in a fresh process after a pause (`--pause`, as a node between
transfers: some virtual machines hand memory that stays free back to their host, and taking it
again costs more than reusing it):
- `page_cache_writes`: `--mb` MiB written to a new file in blocks of 64 KiB to 4 MiB
  (`os.pwrite`, no fsync): seconds and CPU seconds per size, and each size's CPU against
  128 KiB (the block `cp` writes). `node/snapshot.py` writes a chunk in 128 KiB pieces.
- `snapshots`: a region of `--points` points snapshotted to a new replica, sender and receiver
  both started with glibc's own thresholds (`AIRNODE_MALLOC=glibc`) or with the node's
  (`node/allocator.py`), alternately, `--rounds` of each: seconds and the CPU seconds of
  sender and receiver (medians), and the ratios glibc / node.
Run: `python bench/buffers.py [--mb 1000] [--pause 6] [--points 6000000] [--rounds 3]`;
prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_s, create_region
from bench.migrate import pid
from bench.transfer import REGION, bring_up, ingest
from node.allocator import KEEP_DEFAULTS
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from stack.processes import NodeProcess

BLOCKS_KIB = (64, 128, 256, 512, 1024, 4096)

WRITE = """
import os, sys, time
path, block, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = os.urandom(block)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
began, cpu = time.perf_counter(), time.process_time()
for i in range(total // block):
    os.pwrite(fd, data, i * block)
print(time.perf_counter() - began, time.process_time() - cpu)
os.close(fd)
os.unlink(path)
"""


def fresh(script: str, *args: object, pause: float) -> list[float]:
    time.sleep(pause)
    out = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, check=True
    ).stdout
    return [float(x) for x in out.split()]


def page_cache_writes(mb: int, pause: float) -> dict[str, dict[str, float]]:
    writes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kib in BLOCKS_KIB:
            seconds, cpu = fresh(WRITE, Path(tmp) / "f", kib * 1024, mb * 2**20, pause=pause)
            writes[f"{kib}_kib"] = {"seconds": round(seconds, 3), "cpu_s": round(cpu, 3)}
    return writes


async def snapshot_with(
    clients: NodeClients, root: Path, allocator: str, turn: int, pause: float
) -> dict[str, float]:
    """The region of node 1's store snapshotted to a new node, both with `allocator`'s
    thresholds: seconds, and the CPU seconds of each end."""
    variable, value = KEEP_DEFAULTS
    env = {variable: value} if allocator == "glibc" else {}
    await asyncio.sleep(pause)
    source = NodeProcess(1, root / "n1", env=env).start()
    new = NodeProcess(2 + turn, root / f"n{2 + turn}", env=env).start()
    try:
        await clients.stub(source.address).SetThrottle(pb.ThrottleRequest())  # lifted
        before = cpu_s(pid(source)), cpu_s(pid(new))
        seconds = await bring_up(clients, source, new, snapshot=True)
        sender, receiver = cpu_s(pid(source)) - before[0], cpu_s(pid(new)) - before[1]
        await clients.stub(source.address).DropChannel(
            pb.DropChannelRequest(region=REGION, receiver_id=new.node_id)
        )
    finally:
        new.terminate()
        source.terminate()
    shutil.rmtree(new.data_dir)
    return {"seconds": seconds, "sender_cpu_s": sender, "receiver_cpu_s": receiver}


async def snapshots(points: int, rounds: int, pause: float) -> dict[str, object]:
    clients = NodeClients()
    try:
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
            root = Path(tmp)
            source = NodeProcess(1, root / "n1").start()
            try:
                await create_region(clients, [source], REGION)
                await ingest(clients, source, points)
            finally:
                source.terminate()
            store_bytes = sum(
                f.stat().st_size for f in (root / "n1" / "region_1").glob("store.db*")
            )
            runs: dict[str, list[dict[str, float]]] = {"glibc": [], "node": []}
            for round_ in range(rounds):
                for allocator, results in runs.items():
                    turn = 2 * round_ + (allocator == "node")  # a new receiver's id each time
                    results.append(await snapshot_with(clients, root, allocator, turn, pause))
    finally:
        await clients.close()
    medians = {
        allocator: {k: round(statistics.median(r[k] for r in results), 3) for k in results[0]}
        for allocator, results in runs.items()
    }
    return {
        "store_bytes": store_bytes,
        **medians,
        "ratios_glibc_vs_node": {
            k: round(medians["glibc"][k] / medians["node"][k], 2) for k in medians["node"]
        },
    }


def main(mb: int, pause: float, points: int, rounds: int) -> dict[str, object]:
    writes = page_cache_writes(mb, pause)
    base = writes["128_kib"]["cpu_s"]
    return {
        "mb": mb,
        "page_cache_writes": writes,
        "write_cpu_vs_128_kib": {k: round(v["cpu_s"] / base, 2) for k, v in writes.items()},
        "snapshots": asyncio.run(snapshots(points, rounds, pause)),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=1000)
    parser.add_argument("--pause", type=float, default=6.0)
    parser.add_argument("--points", type=int, default=6_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(main(args.mb, args.pause, args.points, args.rounds), indent=2))
