"""How fast a new replica of a region (1,000,000 points by default) becomes complete.

Prints JSON: the snapshot transfer (the coordinator's channel to a new peer) as points/s and
store bytes/s, beside, in the same run, the physical floor (`cp` of the store's files and an
fsync, `copy_floor_s`), the same region streamed point by point (a plain channel), the node's
own batched ingest rate, and this machine's sequential disk write rate. Then a snapshot to a
fourth node SIGKILLed when it holds half: the bytes sent in all, against the size of one whole
snapshot (the main file with its log checkpointed into it).
CPU: what each end of the snapshot used, user and system, from the processes' own counters
(`/proc/<pid>/stat`), per GB of the snapshot (`cpu_s_per_gb`: the median of `--repeat`
snapshots, each to a new node), beside what `cp` and `sync` used to copy the same files
(`copy_floor_cpu_s_per_gb`); and one more snapshot with sender and receiver each pinned to a
core of its own (`snapshot_vs_copy_floor_pinned`: as if each had a core, as on two machines).
Last, one-point writes to the sender on a fixed schedule (every 5 ms), idle and while it sends
snapshots over and over, until 2,000 of each: their p99s side by side, with no limit and with
the default one (`auto`), and the speed of `auto`'s snapshots as a share of unlimited ones'
(`auto_vs_unlimited_speed`: 1.0 as fast); with `auto`, also beside busy loops that take the
CPU the snapshots took (each end's share of a core, in bursts as long as that end's CPU for a
chunk, at the nodes' priority: `busy_loop`), since on shared cores any CPU used raises the
writes' tail, and what a transfer should answer for is what it adds beyond its CPU; the same
with a fixed limit of 100 MB/s (`fixed`); then the same with sender and receiver as if on two
machines (the sender alone on one core, the receiver's store on tmpfs: `apart_*`).
Run: `python bench/transfer.py [--points N] [--repeat 3]` (24,000,000 points make a store of
about 1 GB).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import busy_loops, cpu_s, create_region
from bench.foreground import ScheduledWrites, ms
from bench.load import load
from bench.migrate import pid
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from stack.processes import NodeProcess

REGION = 1
FOREGROUND_REGION = 2
FOREGROUND_WRITES = 2_000
GB = 1e9
CHUNK_BYTES = 1024 * 1024  # a snapshot's (node/snapshot.py): a busy loop's burst is a chunk's CPU
BUSY_LOOP_START_S = 0.3
FIXED_LIMIT = 100e6  # bytes/s: a limit an operator might set (`--transfer-rate-limit 100`)


def disk_write_rate(directory: Path, total: int = 512 * 1024 * 1024) -> float:
    """Sequential write in 128 KiB blocks, fsynced at the end (as `cp` writes, then `sync`):
    bytes/s. (Blocks of 4 MiB, as this bench used, measured on these virtual machines the
    kernel's cost of allocating large page-cache blocks more than the disk: 127-216 MB/s.)"""
    block = os.urandom(128 * 1024)
    path = directory / "dd.bin"
    start = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(total // len(block)):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    elapsed = time.perf_counter() - start
    path.unlink()
    return total / elapsed


def copy_floor(files: list[Path], directory: Path) -> tuple[float, float]:
    """Seconds to `cp` the files into `directory` and fsync them there, the physical floor of
    making a replica of them on this disk, and the CPU seconds `cp` and `sync` used."""
    directory.mkdir()
    before = children_cpu_s()
    began = time.perf_counter()
    subprocess.run(["cp", *map(str, files), str(directory)], check=True)
    subprocess.run(["sync", *(str(directory / f.name) for f in files)], check=True)
    elapsed = time.perf_counter() - began
    cpu = children_cpu_s() - before
    shutil.rmtree(directory)
    return elapsed, cpu


def children_cpu_s() -> float:
    """CPU seconds (user and system) of this process's children that ended, so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def ingest(clients: NodeClients, node: NodeProcess, points: int) -> float:
    """Write `points` in batches of 10,000, four in flight: points/s."""
    return points / await load(clients.stub(node.address), points, REGION)


def anon_rss(process: NodeProcess) -> int:
    """The process's anonymous resident memory, bytes (RssAnon: its heap, not file pages)."""
    assert process.proc is not None
    status = Path(f"/proc/{process.proc.pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("RssAnon:"))
    return int(line.split()[1]) * 1024


class RssGrowth:
    """The largest growth of anonymous RSS seen over each process's first sample."""

    def __init__(self, *processes: NodeProcess) -> None:
        self.first = {p.node_id: anon_rss(p) for p in processes}
        self.most = dict.fromkeys(self.first, 0)
        self.processes = processes

    def sample(self) -> None:
        for p in self.processes:
            self.most[p.node_id] = max(self.most[p.node_id], anon_rss(p) - self.first[p.node_id])


async def bring_up(
    clients: NodeClients,
    source: NodeProcess,
    new: NodeProcess,
    snapshot: bool,
    kill_at: int | None = None,
    rss: RssGrowth | None = None,
) -> float:
    """Add `new` as a replica of the region on `source`; seconds until it reaches the target.
    With `kill_at`, `new` is SIGKILLed once it holds that many bytes of the snapshot, and
    started again."""
    peers = [pb.Peer(node_id=n.node_id, address=n.address) for n in (source, new)]
    await clients.stub(new.address).CreateLocalPeer(
        pb.CreateLocalPeerRequest(region=REGION, peers=peers, await_snapshot=snapshot)
    )
    target = (
        await clients.stub(source.address).GetProgress(pb.RegionRequest(region=REGION))
    ).applied
    check = pb.CheckTransferCompleteRequest(region=REGION, target=target)
    began = time.perf_counter()
    await clients.stub(source.address).CreateChannel(
        pb.CreateChannelRequest(region=REGION, receiver=peers[1], snapshot=snapshot)
    )
    while kill_at is not None:
        progress = await clients.stub(new.address).GetProgress(pb.RegionRequest(region=REGION))
        if progress.installed:
            raise RuntimeError("the snapshot was whole before the kill: --points too few")
        if progress.snapshot_received >= kill_at:
            new.kill()
            new.start()
            kill_at = None
        await asyncio.sleep(0.005)
    # a fixed 5 ms poll: the measurement's resolution, the same for both modes
    while not (await clients.stub(new.address).CheckTransferComplete(check)).complete:
        if rss is not None:
            rss.sample()
        await asyncio.sleep(0.005)
    return time.perf_counter() - began


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of process `pid` onto `cpus`; the threads it starts later inherit it."""
    for thread in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(thread), cpus)


@dataclass(frozen=True)
class Snapshot:
    """A snapshot to a new node: its seconds and the CPU seconds of each end."""

    seconds: float
    sender_cpu_s: float
    receiver_cpu_s: float


async def timed_snapshot(
    clients: NodeClients,
    source: NodeProcess,
    new: NodeProcess,
    rss: RssGrowth | None = None,
    pinned: bool = False,
    drop: bool = True,
) -> Snapshot:
    """`new` brought up by a snapshot of the region, then (`drop`) its channel dropped, so
    that the sender keeps none to it. `pinned`: sender and receiver each on a core of its own."""
    everything = os.sched_getaffinity(0)
    if pinned:
        first = min(everything)
        pin(pid(source), {first})
        pin(pid(new), {min(everything - {first})})
    try:
        before = cpu_s(pid(source)), cpu_s(pid(new))
        seconds = await bring_up(clients, source, new, True, rss=rss)
        cpu = cpu_s(pid(source)) - before[0], cpu_s(pid(new)) - before[1]
    finally:
        if pinned:
            pin(pid(source), everything)
            pin(pid(new), everything)
    if drop:
        await clients.stub(source.address).DropChannel(
            pb.DropChannelRequest(region=REGION, receiver_id=new.node_id)
        )
    return Snapshot(seconds, *cpu)


@contextlib.contextmanager
def apart(source: NodeProcess, receiver: NodeProcess) -> Iterator[None]:
    """Sender and receiver as if on two machines: the sender alone on the first core, the
    receiver (its store on tmpfs, not the sender's disk) and this process on the others."""
    everything = os.sched_getaffinity(0)
    first = min(everything)
    rest = everything - {first}
    assert source.proc is not None and receiver.proc is not None
    pin(source.proc.pid, {first})
    pin(receiver.proc.pid, rest)
    pin(os.getpid(), rest)
    try:
        yield
    finally:
        for pid in (source.proc.pid, receiver.proc.pid, os.getpid()):
            pin(pid, everything)


async def foreground(
    clients: NodeClients,
    source: NodeProcess,
    receiver: NodeProcess,
    auto: bool,
    busy_loop: bool = False,
    limit: float = 0.0,
) -> dict[str, dict[str, float]]:
    """One-point writes to another region of the sender: latencies idle, then while it sends
    snapshots of the region to `receiver` (made again and again until there are enough),
    with no limit, the adaptive one (the default) or a fixed `limit`. With `busy_loop`, after
    each snapshot the same writes for as long beside busy loops that take what each end of it
    took of a core, without it: the two alternate, so that whatever else the machine runs meanwhile
    falls on both alike."""
    stub = clients.stub(source.address)
    await stub.SetThrottle(pb.ThrottleRequest(auto=auto, bytes_per_s=limit))
    await create_region(clients, [source], FOREGROUND_REGION)
    writes = ScheduledWrites(stub, FOREGROUND_REGION).start()
    ends = [pid(source), pid(receiver)]
    try:
        writes.measuring = True
        while len(writes.latencies) < FOREGROUND_WRITES:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        writes.measuring = False
        idle, during, beside = writes.take(), list[float](), list[float]()
        snapshots, cpu = list[float](), [0.0, 0.0]
        while len(during) < FOREGROUND_WRITES or (busy_loop and len(beside) < FOREGROUND_WRITES):
            before = [cpu_s(p) for p in ends]
            writes.measuring = True
            snapshots.append(await bring_up(clients, source, receiver, True))
            writes.measuring = False
            took = [cpu_s(p) - b for p, b in zip(ends, before, strict=True)]
            cpu = [c + t for c, t in zip(cpu, took, strict=True)]
            sent = await bytes_sent_to(clients, source, receiver.node_id)
            during += writes.take()
            await stub.DropChannel(
                pb.DropChannelRequest(region=REGION, receiver_id=receiver.node_id)
            )
            await clients.stub(receiver.address).DeleteLocalPeer(pb.RegionRequest(region=REGION))
            if busy_loop:
                chunks = max(sent / CHUNK_BYTES, 1.0)
                loops = [(t / chunks, t / snapshots[-1]) for t in took]  # burst s, core share
                beside += await beside_busy_loops(writes, loops, snapshots[-1])
    finally:
        await writes.stop()
    await stub.SetThrottle(pb.ThrottleRequest())
    seconds = sum(snapshots)
    result = {
        "idle": ms(idle),
        "during_snapshots": ms(during),
        "snapshots": {
            "count": len(snapshots),
            "median_s": round(statistics.median(snapshots), 3),
            "cpu_share_sender": round(cpu[0] / seconds, 3),
            "cpu_share_receiver": round(cpu[1] / seconds, 3),
        },
    }
    if busy_loop:
        result["busy_loop"] = ms(beside)
    return result


async def beside_busy_loops(
    writes: ScheduledWrites, loops: list[tuple[float, float]], seconds: float
) -> list[float]:
    """The scheduled writes' latencies for `seconds` beside a busy loop per (burst, share of a
    core), each started before they are timed."""
    async with busy_loops(loops):
        await asyncio.sleep(BUSY_LOOP_START_S)  # the interpreters' start is not their load
        writes.measuring = True
        await asyncio.sleep(seconds)
        writes.measuring = False
        return writes.take()


async def bytes_sent_to(clients: NodeClients, source: NodeProcess, receiver: int) -> int:
    """The snapshot bytes the source's channel to `receiver` sent (0 if it has none)."""
    progress = await clients.stub(source.address).GetProgress(pb.RegionRequest(region=REGION))
    return sum(c.snapshot_bytes_sent for c in progress.channels if c.receiver.node_id == receiver)


async def main(points: int, repeat: int) -> dict[str, object]:
    clients = NodeClients()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        source = NodeProcess(1, root / "n1").start()
        nodes = [source]
        try:
            # the snapshot and its resumption are measured with the default (auto) limit lifted
            await clients.stub(source.address).SetThrottle(pb.ThrottleRequest())
            await create_region(clients, [source], REGION)
            ingest_rate = await ingest(clients, source, points)
            files = sorted((root / "n1" / "region_1").glob("store.db*"))
            store_bytes = sum(f.stat().st_size for f in files)
            floor, floor_cpu = copy_floor(files, root / "floor")
            results = {}
            for node_id, mode, snapshot in ((2, "snapshot", True), (3, "streamed", False)):
                new = NodeProcess(node_id, root / f"n{node_id}").start()
                nodes.append(new)
                growth = RssGrowth(source, new) if snapshot else None
                if snapshot:
                    first = await timed_snapshot(clients, source, new, rss=growth, drop=False)
                    seconds = first.seconds
                else:
                    seconds = await bring_up(clients, source, new, snapshot)
                if growth is not None:
                    rss_growth = {"sender": growth.most[1], "receiver": growth.most[node_id]}
                results[mode] = {
                    "seconds": round(seconds, 3),
                    "points_per_s": round(points / seconds),
                    "store_mb_per_s": round(store_bytes / seconds / 1e6, 1),
                }
            # what one whole snapshot sends: the main file, its log checkpointed into it by the
            # snapshot above (the store's files before had a log repeating pages of the file)
            snapshot_bytes = (root / "n1" / "region_1" / "store.db").stat().st_size
            # more snapshots to new nodes for the CPU's median, then one with each end pinned
            snapshots = [first]
            for node_id in range(7, 7 + repeat):
                new = NodeProcess(node_id, root / f"n{node_id}").start()
                try:
                    pinned = node_id == 6 + repeat
                    taken = await timed_snapshot(clients, source, new, pinned=pinned)
                finally:
                    new.terminate()
                shutil.rmtree(new.data_dir)
                snapshots.append(taken)
            pinned_snapshot = snapshots.pop()
            resumed = NodeProcess(4, root / "n4").start()
            nodes.append(resumed)
            await bring_up(clients, source, resumed, True, kill_at=snapshot_bytes // 2)
            channels = (
                await clients.stub(source.address).GetProgress(pb.RegionRequest(region=REGION))
            ).channels
            to_resumed = next(c for c in channels if c.receiver.node_id == 4)
            receiver = NodeProcess(5, root / "n5").start()
            nodes.append(receiver)
            fg = {
                "no_limit": await foreground(clients, source, receiver, auto=False),
                "auto": await foreground(clients, source, receiver, auto=True, busy_loop=True),
                "fixed": await foreground(
                    clients, source, receiver, auto=False, busy_loop=True, limit=FIXED_LIMIT
                ),
            }
            if len(os.sched_getaffinity(0)) > 1:
                with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
                    elsewhere = NodeProcess(6, Path(shm) / "n6").start()
                    nodes.append(elsewhere)
                    with apart(source, elsewhere):
                        fg["apart_no_limit"] = await foreground(
                            clients, source, elsewhere, auto=False
                        )
                        fg["apart_auto"] = await foreground(clients, source, elsewhere, auto=True)
                    elsewhere.terminate()
            disk = disk_write_rate(root)
        finally:
            for n in nodes:
                n.terminate()
            await clients.close()
    snap = results["snapshot"]
    gb = snapshot_bytes / GB

    def per_gb(cpu: float) -> float:
        return round(cpu / gb, 3)

    return {
        "points": points,
        "store_bytes": store_bytes,
        "copy_floor_s": round(floor, 3),
        "new_replica_snapshot": snap,
        "cpu_s_per_gb": {
            "sender": per_gb(statistics.median(s.sender_cpu_s for s in snapshots)),
            "receiver": per_gb(statistics.median(s.receiver_cpu_s for s in snapshots)),
            "both": per_gb(statistics.median(s.sender_cpu_s + s.receiver_cpu_s for s in snapshots)),
            "snapshots": len(snapshots),
        },
        "copy_floor_cpu_s_per_gb": round(floor_cpu / (store_bytes / GB), 3),
        "snapshot_pinned": {
            "seconds": round(pinned_snapshot.seconds, 3),
            "cpu_s_per_gb": {
                "sender": per_gb(pinned_snapshot.sender_cpu_s),
                "receiver": per_gb(pinned_snapshot.receiver_cpu_s),
            },
        },
        "new_replica_streamed": results["streamed"],
        "local_ingest_points_per_s": round(ingest_rate),
        "disk_seq_write_mb_per_s": round(disk / 1e6, 1),
        "foreground": fg,
        "rss_growth_mb": {k: round(v / 2**20, 1) for k, v in rss_growth.items()},
        "resume": {
            "store_bytes": snapshot_bytes,
            "bytes_sent": to_resumed.snapshot_bytes_sent,
            "bytes_skipped": to_resumed.snapshot_bytes_skipped,
        },
        "ratios": {
            "snapshot_vs_copy_floor": round(snap["seconds"] / floor, 2),
            "snapshot_vs_copy_floor_pinned": round(pinned_snapshot.seconds / floor, 2),
            "streamed_vs_local_ingest": round(results["streamed"]["points_per_s"] / ingest_rate, 2),
            "snapshot_vs_streamed": round(results["streamed"]["seconds"] / snap["seconds"], 2),
            "snapshot_points_vs_local_ingest": round(snap["points_per_s"] / ingest_rate, 2),
            "snapshot_store_bytes_vs_disk_write": round(snap["store_mb_per_s"] * 1e6 / disk, 2),
            **{
                f"foreground_p99_during_vs_idle_{mode}": round(
                    runs["during_snapshots"]["p99_ms"] / runs["idle"]["p99_ms"], 2
                )
                for mode, runs in fg.items()
            },
            **{
                f"foreground_p99_during_vs_busy_loop_{mode}": round(
                    fg[mode]["during_snapshots"]["p99_ms"] / fg[mode]["busy_loop"]["p99_ms"], 2
                )
                for mode in ("auto", "fixed")
            },
            "resume_bytes_sent_vs_store": round(to_resumed.snapshot_bytes_sent / snapshot_bytes, 2),
            **{
                f"{where}auto_vs_unlimited_speed": round(
                    fg[f"{where}no_limit"]["snapshots"]["median_s"]
                    / fg[f"{where}auto"]["snapshots"]["median_s"],
                    2,
                )
                for where in ("", "apart_")
                if f"{where}auto" in fg
            },
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="snapshots whose CPU's median is taken (above 0)"
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be above 0, not {args.repeat}")
    print(json.dumps(asyncio.run(main(args.points, args.repeat)), indent=2))
