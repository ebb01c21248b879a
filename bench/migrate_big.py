"""How long a real migration of a large region takes beside a writer at full speed, and what it
does to the writes of a probe, at the defaults and with the transfer limit lifted.

Through the local stack (a Temporal dev server, a worker, four nodes): a region of `--points`
points (bulk-loaded, 100 series) on nodes 1-3. Then, the whole time, a client writes to it as
fast as it is acknowledged (as `airctl load`: 20-point batches, one at a time, round robin over
the region's holders; its keys cycle, so the region keeps its size) and a probe writes one
point to node 2 every 10 ms on a fixed schedule. Each run measures the probe for `--before-s`,
then migrates the region (1 -> 4, and back 4 -> 1 in the next run, so every run moves the
same data) through `RegionMigrationWorkflow` and times it from the start call to the result,
the probe measured meanwhile. Runs alternate: at the defaults (every node `auto`) and with the
limit lifted on every node (`airctl throttle --node N --mbps 0`), `--repeat` pairs in one run.
Prints JSON: each run (with the limit the migration's progress showed while the snapshot
arrived, sampled every 0.2 s: `limit_shown_mb_per_s`, 0 for none), each mode's medians, and
`ratios.busy_default_vs_unthrottled` (the default migration's seconds over the unthrottled
one's).
Run: `python bench/migrate_big.py [--points 2000000] [--repeat 2]`; the issue's region is
`--points 15000000` (630 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc
from temporalio.client import Client

from bench.common import bench_stack, create_region
from bench.foreground import ScheduledWrites, ms
from bench.load import Acknowledged, FullSpeed, load, until_applied
from client.starter import start_change
from contracts.models import MigrationInput
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from stack.local import LocalStack
from workflows.migration import RegionMigrationWorkflow

REGION = 7
PROBE_NODE = 2
PROBE_INTERVAL_S = 0.01
MODES = ("default", "unthrottled")


async def set_throttles(clients: NodeClients, stack: LocalStack, mode: str) -> None:
    """`auto` on every node (the default), or no limit on any."""
    request = pb.ThrottleRequest(auto=mode == "default")
    for node in stack.nodes:
        await clients.stub(node.address).SetThrottle(request)


async def store_bytes(clients: NodeClients, stack: LocalStack) -> int:
    info = await clients.stub(stack.nodes[PROBE_NODE - 1].address).DescribeRegion(
        pb.RegionRequest(region=REGION)
    )
    return info.store_bytes


@dataclass(frozen=True)
class Run:
    mode: str
    move: tuple[int, int]
    coordinator: int
    seconds: float
    store_bytes: int
    before: list[float]  # the probe's latencies before the migration, s
    during: list[float]
    limits: list[float]  # the snapshot's limit as the progress showed it, bytes/s (0: none)

    def ratio(self) -> float:
        return ms(self.during)["p99_ms"] / ms(self.before)["p99_ms"]

    def report(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "from": self.move[0],
            "to": self.move[1],
            "coordinator": self.coordinator,
            "seconds": round(self.seconds, 2),
            "store_mb": round(self.store_bytes / 1e6, 1),
            "mb_per_s": round(self.store_bytes / self.seconds / 1e6, 1),
            "probe_before": ms(self.before),
            "probe_during": ms(self.during),
            "probe_p99_during_vs_before": round(self.ratio(), 2),
            "limit_shown_mb_per_s": {
                "samples": len(self.limits),
                **{
                    name: round(f(self.limits) / 1e6, 1)
                    for name, f in (("min", min), ("median", statistics.median), ("max", max))
                    if self.limits
                },
            },
        }


async def run_one(
    clients: NodeClients,
    stack: LocalStack,
    client: Client,
    probe: ScheduledWrites,
    holders: list[int],
    mode: str,
    move: tuple[int, int],
    before_s: float,
    coordinator: int | None,
) -> Run:
    await set_throttles(clients, stack, mode)
    size = await store_bytes(clients, stack)
    probe.take()
    probe.measuring = True
    await asyncio.sleep(before_s)
    before = probe.take()
    request = MigrationInput(
        region=REGION, from_node=move[0], to_node=move[1], coordinator=coordinator
    )
    began = time.perf_counter()
    started = await start_change(client, RegionMigrationWorkflow.run, request)
    limits: list[float] = []
    watching = asyncio.create_task(watch_limit(clients, stack, move[1], limits))
    result = await started.handle.result()
    seconds = time.perf_counter() - began
    watching.cancel()
    during = probe.take()
    probe.measuring = False
    holders[holders.index(move[0])] = move[1]
    return Run(mode, move, result.add.coordinator, seconds, size, before, during, limits)


async def watch_limit(
    clients: NodeClients, stack: LocalStack, receiver: int, limits: list[float]
) -> None:
    """The snapshot's limit as the progress shows it (the receiver says what its sender's
    is), every 0.2 s while it arrives; 0: none."""
    stub = clients.stub(stack.nodes[receiver - 1].address)
    check = pb.CheckTransferCompleteRequest(region=REGION)
    while True:
        await asyncio.sleep(0.2)
        try:
            reply = await stub.CheckTransferComplete(check, timeout=5)
        except grpc.aio.AioRpcError:  # not created yet
            continue
        if reply.installed:
            return
        if reply.snapshot_received:
            # (a node of an earlier build says nothing of its limit: none shown)
            limits.append(getattr(reply, "snapshot_limit_bytes_per_s", 0.0))


def summary(runs: list[Run], mode: str) -> dict[str, float]:
    mine = [r for r in runs if r.mode == mode]

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 2)

    return {
        "seconds_median": median([r.seconds for r in mine]),
        "mb_per_s_median": median([r.store_bytes / r.seconds / 1e6 for r in mine]),
        "probe_p50_before_ms_median": median([ms(r.before)["p50_ms"] for r in mine]),
        "probe_p50_during_ms_median": median([ms(r.during)["p50_ms"] for r in mine]),
        "probe_p99_before_ms_median": median([ms(r.before)["p99_ms"] for r in mine]),
        "probe_p99_during_ms_median": median([ms(r.during)["p99_ms"] for r in mine]),
        "probe_p99_during_vs_before_median": median([r.ratio() for r in mine]),
    }


async def main(points: int, repeat: int, before_s: float, coordinator: int | None) -> object:
    async with bench_stack() as (stack, client, clients):
        nodes = stack.nodes
        await create_region(clients, nodes[:3], REGION)
        acked = Acknowledged()
        fill_s = await load(clients.stub(nodes[0].address), points, REGION, acked)
        await until_applied([clients.stub(n.address) for n in nodes[1:3]], acked.seqs[-1], REGION)

        holders = [1, 2, 3]
        writer = FullSpeed(lambda: [clients.stub(nodes[h - 1].address) for h in holders], REGION)
        probe = ScheduledWrites(
            clients.stub(nodes[PROBE_NODE - 1].address), REGION, PROBE_INTERVAL_S
        )
        writer.start()
        probe.start()
        runs: list[Run] = []
        try:
            began, written = time.perf_counter(), writer.acknowledged
            await asyncio.sleep(5)  # the writer at its pace before the first measure
            writer_rate = (writer.acknowledged - written) / (time.perf_counter() - began)
            for i in range(2 * repeat):
                move = (1, 4) if i % 2 == 0 else (4, 1)
                mode = MODES[i % 2] if (i // 2) % 2 == 0 else MODES[1 - i % 2]
                runs.append(
                    await run_one(
                        clients, stack, client, probe, holders, mode, move, before_s, coordinator
                    )
                )
                print(json.dumps(runs[-1].report()), file=sys.stderr)
        finally:
            await probe.stop()
            await writer.stop()
    default, unthrottled = summary(runs, "default"), summary(runs, "unthrottled")
    return {
        "points": points,
        "fill_s": round(fill_s, 1),
        "writer": {
            "batch_points": writer.batch,
            "batches_per_s_before_migrations": round(writer_rate),
            "refusals": writer.refusals,
        },
        "probe": {"node": PROBE_NODE, "interval_ms": PROBE_INTERVAL_S * 1000},
        "runs": [r.report() for r in runs],
        "default": default,
        "unthrottled": unthrottled,
        "ratios": {
            "busy_default_vs_unthrottled": round(
                default["seconds_median"] / unthrottled["seconds_median"], 2
            ),
            "probe_p99_during_vs_before_default": default["probe_p99_during_vs_before_median"],
            "probe_p99_during_vs_before_unthrottled": unthrottled[
                "probe_p99_during_vs_before_median"
            ],
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=2_000_000)
    parser.add_argument(
        "--repeat", type=int, default=2, help="pairs of migrations (default, unthrottled)"
    )
    parser.add_argument(
        "--before-s", type=float, default=10.0, help="the probe measured before each"
    )
    parser.add_argument(
        "--coordinator", type=int, help="the snapshot's sender (default: the workflow's choice)"
    )
    args = parser.parse_args()
    print(
        json.dumps(
            asyncio.run(main(args.points, args.repeat, args.before_s, args.coordinator)), indent=2
        )
    )
