"""How long a migration takes through Temporal, next to the same steps run directly.

Prints JSON: (a) the end-to-end time of migrating an empty region (median of many runs)
through Temporal (a real dev server and worker process), beside a direct coordinator that
calls the same activity functions in the same order in-process, without Temporal, in the
same run; (b) 100 regions migrated at once by one worker: wall time and migrations/s.
Run: `python bench/migrate.py [--runs N] [--regions N]`.
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
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.testing import ActivityEnvironment

from activities.directory import NodeDirectory
from activities.membership import MembershipActivities
from bench.common import bench_stack, create_region
from node.killpoints import KillPoints
from workflows.add_peer import add_peer_steps
from workflows.models import MigrationInput
from workflows.options import Options
from workflows.planning import plan_migration
from workflows.progress import ChangeReporter, Offstage
from workflows.remove_peer import remove_peer_steps
from workflows.starter import start_change
from workflows.steps import Runner, Steps

R = TypeVar("R")


class InProcess(Runner):
    """Each step's activity called in this process, as a coordinator without Temporal would."""

    def __init__(self, activities: MembershipActivities) -> None:
        self.activities = activities
        self.env = ActivityEnvironment()

    def lean(self) -> bool:
        return True

    async def run(
        self, activity: Callable[[Any, Any], Awaitable[R]], arg: Any, summary: str, options: Options
    ) -> R:
        bound = getattr(self.activities, activity.__name__)
        result: R = await self.env.run(bound, arg)
        return result


class DirectCoordinator:
    """The migration's steps in the workflow's order, each activity called in-process."""

    def __init__(self, activities: MembershipActivities) -> None:
        self.runner = InProcess(activities)

    async def migrate(self, req: MigrationInput) -> None:
        reporter = ChangeReporter("direct", Offstage())
        reporter.begin(req.region, [req.from_node, req.to_node], req.stall_after_s)
        steps = Steps(reporter, req.region, self.runner)
        plan = plan_migration(await steps.describe(), req, random.Random(0))
        await add_peer_steps(steps, plan.addition)
        await remove_peer_steps(steps, plan.removal)


async def main(runs: int, regions: int) -> dict[str, object]:
    async with bench_stack() as (stack, client, clients):
        nodes = stack.nodes
        directory = NodeDirectory(stack.cluster_file)
        direct = DirectCoordinator(
            MembershipActivities(directory, clients, KillPoints(set(), stack.data_dir))
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
                    await (await start_change(client, req)).handle.result()
                else:
                    await direct.migrate(req)
                times.append(time.perf_counter() - began)

        first = 10_000
        for region in range(first, first + regions):
            await create_region(clients, nodes[:3], region)
        began = time.perf_counter()
        handles = [
            await start_change(client, MigrationInput(region=r, from_node=1, to_node=4))
            for r in range(first, first + regions)
        ]
        await asyncio.gather(*(h.handle.result() for h in handles))
        wall = time.perf_counter() - began
    t, d = statistics.median(temporal_s), statistics.median(direct_s)
    return {
        "empty_region_migration": {
            "runs": runs,
            "temporal_median_s": round(t, 4),
            "direct_median_s": round(d, 4),
            "temporal_p90_s": round(sorted(temporal_s)[int(0.9 * (runs - 1))], 4),
            "direct_p90_s": round(sorted(direct_s)[int(0.9 * (runs - 1))], 4),
            "ratio_temporal_vs_direct": round(t / d, 2),
        },
        "concurrent_migrations": {
            "regions": regions,
            "wall_s": round(wall, 2),
            "migrations_per_s": round(regions / wall, 1),
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--regions", type=int, default=100)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.runs, args.regions)), indent=2))
