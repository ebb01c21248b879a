"""What deleting a large replica does to the writes of the replicas that stay on its disk.

A node holds a region of `--points` points (24,000,000 make a store of about 1 GB) and a
small region that takes one-point writes every 5 ms (bench/foreground.py). Each round, in the
same run: the store's files copied beside it and unlinked at once from this process (what a
deletion did before: `unlink_at_once`, the baseline), then one more copy of the region,
recovered by the node as a replica of its own, deleted by `DeleteLocalPeer` (`node_delete`:
the call's own time, and until its folder is gone from the disk). For each, the writes sent
from the deletion's start until a second after it ended: their p50, p99 and slowest.
Run: `python bench/delete.py [--points N] [--repeat 3]`; prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import create_region
from bench.foreground import ScheduledWrites, ms
from bench.load import load
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from stack.processes import NodeProcess

BIG, SMALL = 1, 2
AFTER_S = 1.0  # writes sent this long after a deletion ended count too: a late stall shows


def summary(latencies: list[float]) -> dict[str, float]:
    return {**ms(latencies), "max_ms": round(max(latencies) * 1000, 2)}


def copy_region(data_dir: Path, region: int) -> Path:
    """The big region's folder copied as `region` (its replica.json saying so), fsynced."""
    folder = data_dir / f"region_{region}"
    shutil.copytree(data_dir / f"region_{BIG}", folder)
    meta = json.loads((folder / "replica.json").read_text())
    meta["region"] = region
    (folder / "replica.json").write_text(json.dumps(meta))
    os.sync()
    return folder


async def measured(writes: ScheduledWrites, deletion: Awaitable[object]) -> list[float]:
    """The writes' latencies from now until AFTER_S past the deletion's end."""
    writes.take()
    writes.measuring = True
    await deletion
    await asyncio.sleep(AFTER_S)
    writes.measuring = False
    return writes.take()


def unlink_at_once(files: list[Path]) -> float:
    """Seconds to unlink `files`, one after another. Run on a thread: on the event loop it
    would hold back the very writes that measure it."""
    began = time.perf_counter()
    for f in files:
        f.unlink()
    return time.perf_counter() - began


async def node_delete(clients: NodeClients, node: NodeProcess, region: int) -> dict[str, float]:
    began = time.perf_counter()
    await clients.stub(node.address).DeleteLocalPeer(pb.RegionRequest(region=region), timeout=60)
    answered = time.perf_counter() - began
    while list(node.data_dir.glob(f"region_{region}.deleting*")):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return {"call_ms": round(answered * 1000, 1), "gone_s": round(time.perf_counter() - began, 3)}


async def main(points: int, repeat: int) -> dict[str, object]:
    clients = NodeClients()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        node = NodeProcess(1, Path(tmp) / "n1").start()
        try:
            await create_region(clients, [node], BIG)
            await load(clients.stub(node.address), points, BIG)
            await create_region(clients, [node], SMALL)
            store_bytes = sum(f.stat().st_size for f in (node.data_dir / "region_1").iterdir())
            rounds: list[dict[str, object]] = []
            for r in range(repeat):
                node.terminate()
                copy_region(node.data_dir, 100 + r)
                beside = copy_region(node.data_dir, 200 + r)  # unlinked by this process
                node.start()
                writes = ScheduledWrites(clients.stub(node.address), SMALL).start()
                try:
                    await asyncio.sleep(1.0)  # the node's first writes after its start pass
                    files = [f for f in beside.iterdir() if f.is_file()]
                    task = asyncio.ensure_future(asyncio.to_thread(unlink_at_once, files))
                    at_once = await measured(writes, task)
                    shutil.rmtree(beside)
                    gentle = asyncio.ensure_future(node_delete(clients, node, 100 + r))
                    by_node = await measured(writes, gentle)
                finally:
                    await writes.stop()
                rounds.append(
                    {
                        "unlink_at_once": {"seconds": round(task.result(), 3), **summary(at_once)},
                        "node_delete": {**gentle.result(), **summary(by_node)},
                    }
                )
        finally:
            node.terminate()
    worst = [
        (r["node_delete"]["max_ms"], r["unlink_at_once"]["max_ms"])  # type: ignore[index]
        for r in rounds
    ]
    return {
        "points": points,
        "store_bytes": store_bytes,
        "rounds": rounds,
        "ratios": {
            "slowest_write_node_delete_vs_unlink_at_once": [round(a / b, 2) for a, b in worst]
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=24_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.points < 1 or args.repeat < 1:
        parser.error("--points and --repeat must be above 0")
    print(json.dumps(asyncio.run(main(args.points, args.repeat)), indent=2))
