"""One nemesis run: five nodes on test hosts under writes at every acknowledgement level, a
seeded schedule of faults and operations with the autopilot on, then everything healed, and
the cluster judged (checker.py) into one JSON report.

The Temporal server stays on the operator host (loopback), the worker on its own host behind
the network's relay, the writers on the client host (so they write through nodes the worker
cannot reach), and this process, the operator, reaches every host.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from temporalio.client import Client, WorkflowFailureError

from bench.nemesis.checker import Region, Replica, anomalies
from bench.nemesis.schedule import Fault, FaultKind, Operation, OperationKind, Schedule, plan
from bench.nemesis.writer import LEVELS, READY, acked_log
from client import connection
from client.load import AckedLog, missing_points
from client.starter import (
    RegionBusy,
    RequestRefused,
    Started,
    start_autopilot,
    start_change,
    start_check,
    start_operation,
)
from contracts.check import CheckInput
from contracts.errors import root_cause
from contracts.ids import AUTOPILOT_WORKFLOW_ID, check_workflow_id
from contracts.models import (
    AddPeerInput,
    AutopilotInput,
    DrainInput,
    MigrationInput,
    RebalanceInput,
    RemovePeerInput,
)
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from stack import faults as net
from stack.hosts import Network, node_host
from stack.local import LocalStack
from stack.processes import ManagedProcess, free_ports
from workflows.add_peer import AddPeerWorkflow
from workflows.drain import DrainNodeWorkflow
from workflows.migration import RegionMigrationWorkflow
from workflows.rebalance import RebalanceWorkflow
from workflows.remove_peer import RemovePeerWorkflow

W = TypeVar("W")
R = TypeVar("R")

NODES = [1, 2, 3, 4, 5]
REPLICATION = 3
# Each region on three nodes, every node holding three or four replicas.
REGIONS = {1: [1, 2, 3], 2: [2, 3, 4], 3: [3, 4, 5], 4: [4, 5, 1], 5: [5, 1, 2], 6: [1, 3, 5]}
DEAD_AFTER_S = 12.0
PROBE_EVERY_S = 1.0
WRITE_RATE = 20.0  # points/s per region per level
ASK_TIMEOUT_S = 3.0
SETTLE_S = 240.0  # once healed, the operations and the cluster have this long to settle
# Once the writers stop, the replicas have this long to agree before they are read: a write
# whose channel broke just before the heal is still on its way then, not lost.
CONVERGE_S = 60.0
ROOT = Path(__file__).resolve().parents[2]


class Writer(ManagedProcess):
    """The writer of one acknowledgement level (writer.py), on the client host."""

    def __init__(self, level: str, out: Path, cluster_file: Path, network: Network) -> None:
        super().__init__(
            f"writer-{level}",
            out / f"writer-{level}.log",
            env={"PYTHONPATH": str(ROOT)},
            host=network.client,
        )
        self.level, self.out, self.cluster_file = level, out, cluster_file
        self.die_with_parent = True

    def command(self) -> list[str]:
        regions = ",".join(str(r) for r in REGIONS)
        return [
            sys.executable, "-m", "bench.nemesis.writer",
            "--cluster", str(self.cluster_file), "--regions", regions,
            "--acks", self.level, "--out", str(self.out), "--rate", str(WRITE_RATE),
        ]  # fmt: skip

    def ready_line(self) -> str:
        return READY


@dataclass
class Outcomes:
    """What became of the operations the schedule started."""

    started: Counter[str] = field(default_factory=Counter)
    completed: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    failed: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "started": dict(self.started),
            "completed": dict(self.completed),
            "refused": dict(self.refused),
            "failed": self.failed,
        }


class Nemesis:
    def __init__(self, schedule: Schedule, stack: LocalStack, network: Network) -> None:
        self.schedule = schedule
        self.stack = stack
        self.network = network
        self.faults = net.Faults(network)
        self.clients = NodeClients()
        self.outcomes = Outcomes()
        self.struck: Counter[str] = Counter()
        self.operations: list[asyncio.Task[None]] = []
        self.client: Client | None = None
        self.began = 0.0

    @property
    def temporal(self) -> Client:
        assert self.client is not None
        return self.client

    def stub(self, node: int) -> Any:
        return self.clients.stub(self.stack.nodes[node - 1].address)

    # -- the run ----------------------------------------------------------------------------

    async def run(self, out: Path) -> dict[str, Any]:
        self.client = await connection.connect(connection.local(self.stack.temporal.address))
        for region, peers in REGIONS.items():
            await self._create(region, peers)
        await start_autopilot(
            self.temporal, AutopilotInput(dead_after_s=DEAD_AFTER_S, probe_every_s=PROBE_EVERY_S)
        )
        writers = [Writer(level, out, self.stack.cluster_file, self.network) for level in LEVELS]
        for writer in writers:
            writer.start()
        keeping_up = asyncio.create_task(self._keep_up())
        self.began = time.monotonic()
        try:
            await asyncio.gather(self._strike_all(), self._operate_all())
            self.faults.heal()
            settled = await self._settle()
        finally:
            for writer in writers:
                writer.terminate()
            keeping_up.cancel()
        converged = await self._converge()
        regions, unreachable = await self._observe(out)
        check = await self._check()
        found = anomalies(regions, REPLICATION, await self._open_operations(), unreachable)
        found += [
            {"kind": "unequal", "region": d["region"], "found_by": "check", "detail": d["detail"]}
            for d in check["diverged"]
        ]
        acked = {level: sum(len(AckedLog.read(acked_log(out, level, r))) for r in REGIONS)
                 for level in LEVELS}  # fmt: skip
        return {
            "seed": self.schedule.seed,
            "seconds": round(time.monotonic() - self.began, 1),
            "settled": settled,
            "converged": converged,
            "operations": self.outcomes.as_json(),
            "faults": dict(self.struck),
            "acked": acked,
            "check": check,
            "anomalies": found,
        }

    async def _create(self, region: int, peers: list[int]) -> None:
        members = [pb.Peer(node_id=n, address=self.stack.nodes[n - 1].address) for n in peers]
        request = pb.CreateLocalPeerRequest(region=region, peers=members, active=True)
        for node in peers:
            await self.stub(node).CreateLocalPeer(request, timeout=10)

    async def _keep_up(self) -> None:
        """Start again what a kill stopped (the supervisor runs in this thread)."""
        while True:
            self.stack.supervisor.check()
            await asyncio.sleep(0.25)

    async def _until(self, at_s: float) -> None:
        await asyncio.sleep(max(0.0, self.began + at_s - time.monotonic()))

    # -- faults -----------------------------------------------------------------------------

    async def _strike_all(self) -> None:
        for fault in self.schedule.faults:
            await self._until(fault.at_s)
            self.struck[fault.kind] += 1
            healing = self._strike(fault)
            await self._until(fault.ends_s)
            healing()

    def _strike(self, fault: Fault) -> Any:
        """Put `fault` in force; returns what heals it."""
        hosts = [node_host(n) for n in fault.nodes]
        match fault.kind:
            case FaultKind.FREEZE:
                self.faults.freeze(hosts[0])
                return lambda: self.faults.thaw(hosts[0])
            case FaultKind.KILL_NODE:
                self.stack.nodes[fault.nodes[0] - 1].kill()  # the supervisor starts it again
                return lambda: None
            case FaultKind.KILL_WORKER:
                self.stack.worker.kill()
                return lambda: None
        cut = self._cut(fault, hosts)
        active = self.faults.apply(cut)
        return lambda: self.faults.heal(active.id)

    def _cut(self, fault: Fault, hosts: list[str]) -> net.Fault:
        match fault.kind:
            case FaultKind.ISOLATE:
                return net.Isolate(hosts[0])
            case FaultKind.CUT | FaultKind.ONE_WAY:
                return net.Cut(hosts[0], hosts[1], one_way=fault.kind is FaultKind.ONE_WAY)
            case FaultKind.FLAKY:
                return net.Flaky(hosts[0], hosts[1], fault.loss)
            case FaultKind.PARTITION:
                return net.Partition((tuple(hosts), tuple(node_host(n) for n in fault.others)))
            case FaultKind.CUT_WORKER:
                return net.Cut("worker", hosts[0])
            case FaultKind.CUT_TEMPORAL:
                return net.Cut("worker", net.TEMPORAL)
        raise ValueError(f"no cut for {fault.kind}")

    # -- operations -------------------------------------------------------------------------

    async def _operate_all(self) -> None:
        for operation in self.schedule.operations:
            await self._until(operation.at_s)
            self.operations.append(asyncio.create_task(self._operate(operation)))

    async def _operate(self, op: Operation) -> None:
        kind = str(op.kind)
        self.outcomes.started[kind] += 1
        try:
            await self._run_operation(op)
        except (RegionBusy, RequestRefused) as e:
            self.outcomes.refused[kind] += 1
            self.outcomes.failed.append({"kind": kind, "refused": str(e)})
            return
        except WorkflowFailureError as e:
            self.outcomes.failed.append({"kind": kind, "reason": root_cause(e)})
            return
        self.outcomes.completed[kind] += 1

    async def _run_operation(self, op: Operation) -> None:
        members = await self._members()
        region = sorted(members)[op.pick % len(members)]
        held = members[region]
        others = [n for n in NODES if n not in held]
        pick = op.pick >> 8
        match op.kind:
            case OperationKind.MIGRATE if held and others:
                request = MigrationInput(
                    region=region,
                    from_node=held[pick % len(held)],
                    to_node=others[(pick >> 4) % len(others)],
                )
                await self._finish(
                    await start_change(self.temporal, RegionMigrationWorkflow.run, request)
                )
            case OperationKind.ADD_REMOVE if held and others:
                new = others[pick % len(others)]
                await self._finish(
                    await start_change(
                        self.temporal,
                        AddPeerWorkflow.run,
                        AddPeerInput(region=region, new_peer=new),
                    )
                )
                leaving = held[(pick >> 4) % len(held)]
                await self._finish(
                    await start_change(
                        self.temporal,
                        RemovePeerWorkflow.run,
                        RemovePeerInput(region=region, peer=leaving),
                    )
                )
            case OperationKind.DRAIN:
                drain = DrainInput(node=NODES[pick % len(NODES)])
                await self._finish(
                    await start_operation(self.temporal, DrainNodeWorkflow.run, drain)
                )
            case OperationKind.REBALANCE:
                await self._finish(
                    await start_operation(self.temporal, RebalanceWorkflow.run, RebalanceInput())
                )

    @staticmethod
    async def _finish(started: Started[W, R]) -> None:
        await started.handle.result()

    # -- settling and observing -------------------------------------------------------------

    async def _settle(self) -> bool:
        """Every operation ended, every repair ended, every replica where its region says:
        True when that happened within SETTLE_S."""
        deadline = time.monotonic() + SETTLE_S
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE_S):
                await asyncio.gather(*self.operations, return_exceptions=True)

        async def settled() -> bool:
            return not await self._open_operations() and await self._in_place()

        return await _holds_by(deadline, settled)

    async def _converge(self) -> bool:
        """Every region's replicas holding the same points, within CONVERGE_S. (Read at once,
        a run whose last fault cut a channel two seconds before the heal reported the writes
        still on it as lost, which the consistency check run next found on every replica.)"""
        return await _holds_by(time.monotonic() + CONVERGE_S, self._agree)

    async def _agree(self) -> bool:
        regions, unreachable = await self._describe()
        if unreachable:
            return False
        for region, infos in regions.items():
            try:
                digests = await self._digests(region, infos, ASK_TIMEOUT_S)
            except grpc.aio.AioRpcError:
                return False
            if len({(d.count, d.hash) for d in digests.values()}) > 1:
                return False
        return True

    async def _digests(
        self, region: int, nodes: Iterable[int], timeout: float
    ) -> dict[int, pb.DigestReply]:
        request = pb.RegionRequest(region=region)
        return {n: await self.stub(n).Digest(request, timeout=timeout) for n in sorted(nodes)}

    async def _in_place(self) -> bool:
        """No replica outside its region's member list, and every member active."""
        regions, unreachable = await self._describe()
        if unreachable:
            return False
        for replicas in regions.values():
            lists = {tuple(sorted(p.node_id for p in r.peers)) for r in replicas.values()}
            if len(lists) != 1 or any(not r.active or r.leaving for r in replicas.values()):
                return False
            (members,) = lists
            if set(replicas) != set(members):
                return False
        return True

    async def _describe(self) -> tuple[dict[int, dict[int, pb.RegionInfo]], list[int]]:
        regions: dict[int, dict[int, pb.RegionInfo]] = {r: {} for r in REGIONS}
        unreachable = []
        for node in NODES:
            try:
                reply = await self.stub(node).ListRegions(
                    pb.ListRegionsRequest(), timeout=ASK_TIMEOUT_S
                )
            except grpc.aio.AioRpcError:
                unreachable.append(node)
                continue
            for info in reply.regions:
                regions.setdefault(info.region, {})[node] = info
        return regions, unreachable

    async def _members(self) -> dict[int, list[int]]:
        """Each region's members as its active replicas list them now."""
        regions, _ = await self._describe()
        return {
            region: sorted({p.node_id for r in replicas.values() if r.active for p in r.peers})
            for region, replicas in regions.items()
            if replicas
        }

    async def _observe(self, out: Path) -> tuple[list[Region], list[int]]:
        described, unreachable = await self._describe()
        regions = []
        for region, infos in sorted(described.items()):
            replicas, missing, counts = {}, {}, {}
            digests = await self._digests(region, infos, 30)
            for node, info in sorted(infos.items()):
                digest = digests[node]
                replicas[node] = Replica(
                    node,
                    tuple(sorted(p.node_id for p in info.peers)),
                    info.active,
                    info.installed,
                    info.leaving,
                    digest.count,
                    digest.hash,
                )
            for level in LEVELS:
                acked = AckedLog.read(acked_log(out, level, region))
                lacking = {n: await missing_points(self.stub(n), region, acked) for n in replicas}
                missing[level] = {n: rows[:3] for n, rows in lacking.items()}
                counts[level] = {n: len(rows) for n, rows in lacking.items()}
            regions.append(Region(region, replicas, missing, counts))
        return regions, unreachable

    async def _open_operations(self) -> list[str]:
        query = "ExecutionStatus = 'Running'"
        return [
            w.id async for w in self.temporal.list_workflows(query) if w.id != AUTOPILOT_WORKFLOW_ID
        ]

    async def _check(self) -> dict[str, Any]:
        """The consistency check of every region (`airctl check --all`)."""
        handle = await start_check(
            self.temporal, CheckInput(rate_mb_s=1000, cpu_share=1), check_workflow_id("nemesis")
        )
        result = await handle.result()
        return {
            "checked": result.checked,
            "equal": result.equal,
            "diverged": [
                {"region": d.region, "detail": f"minority {d.minority}, {len(d.diffs)} diffs"}
                for d in result.diverged
            ],
            "unchecked": [{"region": r.region, "why": r.why} for r in result.unchecked],
        }


async def run(seed: int, seconds: float, slot: int | None = None) -> dict[str, Any]:
    """One run in a network of its own (its slot, or a free one), everything removed after
    but, when it found anomalies or failed, its directory: the nodes', worker's and Temporal
    server's logs and the Temporal database, named in the report (`kept`) to read."""
    schedule = plan(seed, seconds, NODES, DEAD_AFTER_S)
    network = Network.claim(len(NODES), prefer=slot, wait_s=60)
    tmp = Path(tempfile.mkdtemp(prefix="air-nemesis-"))
    report: dict[str, Any] = {}
    try:
        ports = free_ports(2)
        stack = LocalStack(tmp, len(NODES), ports[0], ports[1], free_ports(1)[0], network=network)
        stack.start()
        nemesis = Nemesis(schedule, stack, network)
        try:
            report = await nemesis.run(tmp)
        finally:
            await nemesis.clients.close()
            stack.stop()
    finally:
        if report and not report["anomalies"]:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"nemesis: the run's logs are kept in {tmp}", file=sys.stderr)
            report["kept"] = str(tmp)
    return report


async def _holds_by(deadline: float, check: Callable[[], Awaitable[bool]]) -> bool:
    """Whether `check` held before `deadline` (monotonic), asked every second."""
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(1.0)
    return False
