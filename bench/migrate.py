"""How long a migration takes through Temporal, next to the same steps run directly.

Prints JSON: `single`, the end-to-end time of migrating an empty region (median of many runs)
through Temporal (a real dev server and worker process), beside a direct coordinator that
calls the same activity functions in the same order in-process, without Temporal, in the same
run; `concurrent`, 100 regions migrated at once by one worker: wall time, migrations/s, and the
CPU of the worker, the server and the nodes together per migration (from /proc); `sandbox`,
the worker's CPU per migration with our modules passed through the workflow sandbox beside a
worker that re-imports the workflows and pydantic for every run (as the earlier worker did).
Run: `python bench/migrate.py [--runs N] [--regions N] [--sandbox-regions N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.catalog import node_activities
from bench.common import bench_stack, cpu_s, create_region
from bench.reimport_worker import ReimportingWorkerProcess
from client.starter import start_change
from contracts.ids import TASK_QUEUE
from contracts.models import MigrationInput
from planning.placement import plan_migration
from runtime.clients import NodeClients
from runtime.directory import NodeDirectory
from runtime.killswitch import KillPoints
from stack.local import LocalStack
from stack.processes import ManagedProcess
from workflows.machinery.addition import add_peer_steps
from workflows.machinery.options import Options
from workflows.machinery.progress import ChangeReporter, NoWorkflow
from workflows.machinery.reading import describe_region
from workflows.machinery.removal import remove_peer_steps
from workflows.machinery.steps import Runner, Steps
from workflows.migration import RegionMigrationWorkflow

R = TypeVar("R")


class InProcess(Runner):
    """Each step's activity called in this process, as a coordinator without Temporal would."""

    def __init__(self, activities: list[Callable[..., Awaitable[object]]]) -> None:
        self.activities = {a.__name__: a for a in activities}
        self.env = ActivityEnvironment()

    async def run(
        self, activity: Callable[[Any, Any], Awaitable[R]], arg: Any, summary: str, options: Options
    ) -> R:
        bound = cast(Callable[[Any], Awaitable[R]], self.activities[activity.__name__])
        result: R = await self.env.run(bound, arg)
        return result


class DirectCoordinator:
    """The migration's steps in the workflow's order, each activity called in-process."""

    def __init__(self, activities: list[Callable[..., Awaitable[object]]]) -> None:
        self.runner = InProcess(activities)

    async def migrate(self, req: MigrationInput) -> None:
        reporter = ChangeReporter("direct", NoWorkflow())
        reporter.begin(req.region, [req.from_node, req.to_node], req.stall_after_s)
        steps = Steps(reporter, req.region, self.runner)
        plan = plan_migration(await describe_region(steps), req, random.Random(0))
        await add_peer_steps(steps, plan.addition)
        await remove_peer_steps(steps, plan.removal)


async def migrate_at_once(
    client: Client, clients: NodeClients, stack: LocalStack, regions: range, queue: str
) -> float:
    """Migrate `regions` (made here on nodes 1-3) from 1 to 4 all at once; the wall time."""
    for region in regions:
        await create_region(clients, stack.nodes[:3], region)
    began = time.perf_counter()
    started = await asyncio.gather(
        *(
            start_change(
                client,
                RegionMigrationWorkflow.run,
                MigrationInput(region=r, from_node=1, to_node=4),
                queue,
                None,
            )
            for r in regions
        )
    )
    await asyncio.gather(*(s.handle.result() for s in started))
    return time.perf_counter() - began


def pid(process: ManagedProcess) -> int:
    assert process.proc is not None
    return process.proc.pid


async def main(runs: int, regions: int, sandbox_regions: int) -> dict[str, object]:
    async with bench_stack() as (stack, client, clients):
        nodes = stack.nodes
        directory = NodeDirectory(stack.cluster_file)
        direct = DirectCoordinator(
            node_activities(directory, clients, KillPoints(set(), stack.data_dir))
        )
        temporal_s: list[float] = []
        direct_s: list[float] = []
        for run in range(runs):
            for path, times in (("temporal", temporal_s), ("direct", direct_s)):
                region = 2 * run + (path == "direct")
                await create_region(clients, nodes[:3], region)
                req = MigrationInput(region=region, from_node=1, to_node=4)
                began = time.perf_counter()
                if path == "temporal":
                    await (
                        await start_change(client, RegionMigrationWorkflow.run, req)
                    ).handle.result()
                else:
                    await direct.migrate(req)
                times.append(time.perf_counter() - began)

        parts = {
            "worker": [pid(stack.worker)],
            "server": [pid(stack.temporal)],
            "nodes": [pid(n) for n in stack.nodes],
        }
        before = {name: cpu_s(*pids) for name, pids in parts.items()}
        wall = await migrate_at_once(
            client, clients, stack, range(10_000, 10_000 + regions), TASK_QUEUE
        )
        cpu = {name: cpu_s(*pids) - before[name] for name, pids in parts.items()}

        # the same work on a worker whose sandbox imports the modules afresh for every run
        sandbox = await sandbox_cost(client, clients, stack, sandbox_regions)
    t, d = statistics.median(temporal_s), statistics.median(direct_s)
    return {
        "single": {
            "runs": runs,
            "temporal_median_s": round(t, 4),
            "direct_median_s": round(d, 4),
            "temporal_p90_s": round(sorted(temporal_s)[int(0.9 * (runs - 1))], 4),
            "direct_p90_s": round(sorted(direct_s)[int(0.9 * (runs - 1))], 4),
            "ratio": round(t / d, 2),
        },
        "concurrent": {
            "migrations": regions,
            "wall_s": round(wall, 2),
            "per_s": round(regions / wall, 2),
            "cpu_s_per_migration": round(sum(cpu.values()) / regions, 4),
            "cpu_s_per_migration_by_process": {k: round(v / regions, 4) for k, v in cpu.items()},
        },
        "sandbox": sandbox,
    }


async def sandbox_cost(
    client: Client, clients: NodeClients, stack: LocalStack, regions: int
) -> dict[str, float]:
    """Worker CPU per migration, modules passed through the sandbox (ours) beside re-imported
    for every run (the earlier worker), the same batch size each, in this run."""
    reimporting = ReimportingWorkerProcess(
        "worker-reimport",
        stack.data_dir / "worker-reimport.log",
        stack.temporal.address,
        stack.cluster_file,
        stack.data_dir / "worker-reimport-state",
        extra_args=["--task-queue", "reimport"],
    ).start()
    try:
        per_migration = {}
        first = 20_000
        for name, worker, queue in (
            ("passthrough", stack.worker, TASK_QUEUE),
            ("reimport", reimporting, "reimport"),
        ):
            before = cpu_s(pid(worker))
            batch = range(first, first + regions)
            await migrate_at_once(client, clients, stack, batch, queue)
            per_migration[name] = (cpu_s(pid(worker)) - before) / regions
            first += regions
    finally:
        reimporting.terminate()
    return {
        "migrations_each": regions,
        "worker_cpu_s_per_migration_passthrough": round(per_migration["passthrough"], 4),
        "worker_cpu_s_per_migration_reimport": round(per_migration["reimport"], 4),
        "ratio_reimport_vs_passthrough": round(
            per_migration["reimport"] / per_migration["passthrough"], 2
        ),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--regions", type=int, default=100)
    parser.add_argument("--sandbox-regions", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.runs, args.regions, args.sandbox_regions)), indent=2))
